"""Command line: ``python -m ltmpq run|status|bench`` (the Makefile's ``runs``, ``status``, ``bench``).

A mistake in what was asked (a bad value, missing data, a stage with nothing to do) is one line on
stderr and exit status 2; ``--debug`` (or ``LTMPQ_DEBUG=1``) shows the traceback instead. Ctrl-C
stops a run cleanly (exit 130): the same command resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import PROFILES, QUANT_ABLATIONS, QUANT_HYPOTHESES, get_profile


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
        raise argparse.ArgumentTypeError(f"a seed is an int >= 0, got {text!r}") from None
    if s < 0:
        raise argparse.ArgumentTypeError(f"a seed is an int >= 0, got {text}")
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
    run.add_argument("--stage", choices=[*CLI_STAGES, "all"], default="all")
    names = ", ".join(map(repr, QUANT_ABLATIONS))
    run.add_argument(
        "--variant",
        dest="variants",
        nargs="+",
        action="extend",
        choices=[*QUANT_ABLATIONS, *QUANT_HYPOTHESES],
        metavar="NAME",
        help=f"chapter 3's quantizer variants (default: all of them): {names}; or chapter 5's "
        f"hypotheses: {', '.join(map(repr, QUANT_HYPOTHESES))}",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--retrain", action="store_true",
                     help="train the stage-1 models again although their weights are published "
                     "(with --stage stage1 or all; what the old weights gave is remade)")  # fmt: skip
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


#: ``ltmpq.runs.STAGES``, spelled out so that ``--help`` does not import torch (a test checks it).
CLI_STAGES = ("stage1", "decoupled", "quantized", "mpq", "hypotheses", "explain", "ladder")


def _status(args) -> int:
    from . import results
    from .config import DecoupledRun, ExplainRun, MPQRun, QuantizedRun
    from .data import cached_digest
    from .runs import STAGE_VERSIONS, quant_variants_for

    prof = get_profile(args.profile)
    missing = 0
    variants = quant_variants_for(prof.name)

    def model_runs(cfg, variants) -> list:
        """A model's stage-1 and stage-2 runs and its sweeps with ``variants``."""
        runs = [("stage1", cfg), ("decoupled", DecoupledRun(cfg, prof.decouple))]
        return runs + [("quantized", QuantizedRun(cfg, prof.decouple, q, prof.quant_bits, keep))
                       for q, keep in variants.values()]  # fmt: skip

    digest = cached_digest()  # results computed on another copy are not ok here
    print(
        f"data here: {digest[:12]}"
        if digest
        else "data here: not decoded yet (results not checked against it)"
    )
    for cfg in prof.stage1_configs(args.imbalance_factors, args.seeds):
        cells = []
        runs = model_runs(cfg, variants)
        if cfg.imbalance_factor in prof.mpq_ifs:
            runs.append(("mpq", MPQRun(cfg, prof.decouple, prof.quant, prof.mpq)))
        if cfg.imbalance_factor in prof.hypothesis_ifs:
            hyps = quant_variants_for(prof.name, list(QUANT_HYPOTHESES)).values()
            runs += [
                ("hypotheses", QuantizedRun(cfg, prof.decouple, q, prof.quant_bits, keep)) for q, keep in hyps
            ]
        if cfg.imbalance_factor in prof.explain_ifs:
            runs.append(("explain", ExplainRun(cfg, prof.decouple, prof.quant, prof.explain)))
        states = {}
        for label, run in runs:
            kind = "quantized" if label == "hypotheses" else label  # chapter 5's are chapter 3's kind
            state = results.status(results.result_path(prof.name, kind, run), run, digest, STAGE_VERSIONS)
            missing += not state.startswith("ok")
            states.setdefault(label, []).append(state)
        for kind, found in states.items():
            ok = sum(st.startswith("ok") for st in found)
            shown = found[0] if len(set(found)) == 1 else f"{ok}/{len(found)} ok"
            cells.append(f"{kind}: {shown}" + (f" ({len(found)} variants)" if len(found) > 1 else ""))
        print(f"{cfg.tag:>16}  " + "  ".join(cells))
    ladder = [c for c in prof.stage1_configs(args.imbalance_factors, args.seeds) if prof.on_ladder(c)]
    for cfg in ladder:  # chapter 5's scale ladder: the wider rungs' own models and sweeps
        for rung, rcfg in list(prof.ladder_rungs(cfg).items())[1:]:
            runs = model_runs(rcfg, quant_variants_for(prof.name, prof.ladder_variants))
            states = [results.status(results.result_path(prof.name, k, r), r, digest, STAGE_VERSIONS)
                      for k, r in runs]  # fmt: skip
            missing += sum(not st.startswith("ok") for st in states)
            cells = [f"{k}: {st}" for (k, _), st in zip(runs[:2], states, strict=False)]
            ok = sum(st.startswith("ok") for st in states[2:])
            cells.append(f"quantized: {ok}/{len(states) - 2} ok ({len(states) - 2} variants)")
            print(f"{rcfg.tag:>16}  ({rung})  " + "  ".join(cells))
    return 1 if missing else 0


def _run(args, parser, debug: bool) -> int:
    from .engine import run_grid
    from .runs import STAGES

    if args.threads is not None:
        import torch

        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    stages = STAGES if args.stage == "all" else (args.stage,)
    if args.retrain and "stage1" not in stages:
        parser.error("--retrain trains stage 1: use it with --stage stage1 or --stage all")
    report = run_grid(args.profile, args.imbalance_factors, args.seeds, stages=stages, variants=args.variants,
                      retrain=args.retrain, jobs=args.jobs, scheduler=args.scheduler, progress=not args.quiet,
                      threads=args.threads, stop_on_error=debug)  # fmt: skip
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
            return _status(args)
        return _run(args, parser, debug)
    except KeyboardInterrupt:
        if debug:
            raise
        print(
            "\ninterrupted: finished epochs and results are kept; the same command resumes", file=sys.stderr
        )
        return 130
    except (ValueError, DataNotFoundError, DataError, MissingResultError, EngineError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
