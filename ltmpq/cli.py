"""Command line: ``python -m ltmpq run|status|bench`` (the Makefile's ``runs``, ``status``, ``bench``).

A mistake in what was asked (a bad value, missing data, a stage with nothing to do) is one line on
stderr and exit status 2; ``--debug`` (or ``LTMPQ_DEBUG=1``) shows the traceback instead. Ctrl-C
stops a run cleanly (exit 130): the same command resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import MITIGATIONS, PROFILES, QUANT_ABLATIONS, QUANT_HYPOTHESES, get_profile
from .params import MAX_SEED
from .plan import STAGES


def imbalance_factor_arg(text: str) -> float:
    """argparse type: an imbalance factor in (0, 1]."""
    try:
        f = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an imbalance factor is a number in (0, 1], got {text!r}") from None
    if not 0 < f <= 1:
        raise argparse.ArgumentTypeError(f"an imbalance factor is in (0, 1] (n_min / n_max), got {text}")
    return f


def seed_arg(text: str) -> int:
    """argparse type: a seed, an int >= 0."""
    try:
        s = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is an int in [0, {MAX_SEED}], got {text!r}") from None
    if not 0 <= s <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is an int in [0, {MAX_SEED}], got {text}")
    return s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltmpq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="produce a profile's results (trains what is missing)")
    status = sub.add_parser("status", help="list which results of a profile exist")
    for p in (run, status):
        p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
        # also after the subcommand (make runs RUN_ARGS='--debug'); SUPPRESS keeps the top-level value
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback")
        # "extend": --if 0.1 --if 0.01 means both, not only the last one
        p.add_argument(
            "--if",
            dest="imbalance_factors",
            type=imbalance_factor_arg,
            nargs="+",
            action="extend",
            metavar="IF",
            help="imbalance factors (default: the profile's)",
        )
        p.add_argument("--seed", dest="seeds", type=seed_arg, nargs="+", action="extend",
                       help="seeds (default: the profile's)")  # fmt: skip
    run.add_argument("--stage", choices=[*STAGES, "all"], default="all")
    names = ", ".join(map(repr, QUANT_ABLATIONS))
    run.add_argument(
        "--variant",
        dest="variants",
        nargs="+",
        action="extend",
        choices=[*QUANT_ABLATIONS, *QUANT_HYPOTHESES, *MITIGATIONS],
        metavar="NAME",
        help=f"chapter 3's quantizer variants (default: all of them): {names}; or chapter 5's "
        f"hypotheses: {', '.join(map(repr, QUANT_HYPOTHESES))}; or chapter 7's mitigations: "
        f"{', '.join(map(repr, MITIGATIONS))}",
    )
    run.add_argument("--family", dest="families", nargs="+", action="extend", metavar="NAME",
                     help="with --stage families: only these model sets (default: all)")  # fmt: skip
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--retrain", action="store_true",
                     help="train the stage-1 models again although their weights are published "
                     "(with --stage stage1 or all; what the old weights gave is remade)")  # fmt: skip
    run.add_argument("--remake", action="store_true",
                     help="replace stored results that are not ok (damaged, outdated or made from other "
                     "weights: `ltmpq status` lists them); without it such a result is an error")  # fmt: skip
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes on this machine, one torch thread each (a Dask LocalCluster)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run the tasks on the Dask scheduler at ADDRESS (e.g. tcp://host:8786)",
    )
    run.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (default: torch's). With other work on the machine, "
        "1 thread per process avoids OpenMP threads stalling on a busy core",
    )  # fmt: skip
    sub.add_parser(
        "bench", help="training throughput vs raw forward+backward, chapter 4 sweep speed-up (make bench)"
    )
    return parser


def _status(args) -> int:
    from . import plan, results
    from .data import cached_digest
    from .paths import data_candidates

    prof = get_profile(args.profile)
    data_candidates()  # a bad LTMPQ_DATA is an error here too, not "not decoded yet"
    digest = cached_digest()  # results computed on another copy are not ok here
    print(
        f"data here: {digest[:12]}"
        if digest
        else "data here: not decoded yet (results not checked against it)"
    )
    runs = plan.grid(prof.name, args.imbalance_factors, args.seeds)
    ifs, seeds = list(args.imbalance_factors or prof.imbalance_factors), list(args.seeds or prof.seeds)
    groups = [None, *prof.ladder, *prof.families]

    def order(run) -> tuple:  # the profile's own models first, as asked (IF, then seed), then the ladder's
        group = run.rung or run.family  # and the model sets'
        return (group is not None, run.family is not None, ifs.index(run.stage1.imbalance_factor),
                seeds.index(run.stage1.seed), groups.index(group))  # fmt: skip

    runs = sorted(runs, key=order)
    rows: dict[tuple, dict[str, list[str]]] = {}  # (model, rung) -> stage -> states
    seen, missing = set(), 0
    for run in runs:
        if run.id in seen:  # one result, two names (a hypothesis equal to a chapter-3 variant)
            continue
        seen.add(run.id)
        state = results.run_state(run, prof.name, digest)
        missing += state != "ok"
        rows.setdefault((run.stage1.tag, run.rung or run.family), {}).setdefault(run.stage, []).append(state)
    for (tag, rung), by_stage in rows.items():
        cells = []
        for stage, found in by_stage.items():
            ok = sum(st == "ok" for st in found)
            shown = found[0] if len(set(found)) == 1 else f"{ok}/{len(found)} ok"
            cells.append(f"{stage}: {shown}" + (f" ({len(found)} variants)" if len(found) > 1 else ""))
        print(f"{tag:>16}  " + (f"({rung})  " if rung else "") + "  ".join(cells))
    return 1 if missing else 0


def _cpus() -> int:
    """The CPUs this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run(args, parser, debug: bool) -> int:
    from .engine import run_grid

    cpus = _cpus()
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads)):
        # more one-thread processes than cores only slows them all (and --jobs 1000 starts 1000 workers)
        if value is not None and not 1 <= value <= cpus and not (flag == "--jobs" and args.scheduler):
            parser.error(f"{flag} must be in [1, {cpus}] (the CPUs of this machine), got {value}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    stages = STAGES if args.stage == "all" else (args.stage,)
    if args.retrain and "stage1" not in stages:
        parser.error("--retrain trains stage 1: use it with --stage stage1 or --stage all")
    report = run_grid(args.profile, args.imbalance_factors, args.seeds, stages=stages, variants=args.variants,
                      families=args.families, retrain=args.retrain, remake=args.remake, jobs=args.jobs,
                      scheduler=args.scheduler, progress=not args.quiet, threads=args.threads,
                      stop_on_error=debug)  # fmt: skip
    if report.failed:
        for o in report.failed:
            print(f"{o.state}: {o.task.describe()}: {o.error}", file=sys.stderr)
        print(f"error: {len(report.failed)} of {len(report.outcomes)} tasks did not finish (see above); the "
              "others' results are stored, and the same command resumes", file=sys.stderr)  # fmt: skip
        return 1
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("LTMPQ_DEBUG"))
    from .data import DataError, DataNotFoundError
    from .engine import EngineError
    from .results import MissingResultError

    try:
        if args.command == "bench":
            from .tools.bench import main as bench_main

            return bench_main()
        if args.command == "status":
            code = _status(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
            return code
        return _run(args, parser, debug)
    except KeyboardInterrupt:
        if debug:
            raise
        print(
            "\ninterrupted: finished epochs and results are kept; the same command resumes", file=sys.stderr
        )
        return 130
    except BrokenPipeError:
        # `ltmpq status | head -1`: the reader has gone. End quietly, as coreutils do: point stdout at
        # /dev/null so that the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a program ended by a closed pipe
    except (ValueError, DataNotFoundError, DataError, MissingResultError, EngineError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
