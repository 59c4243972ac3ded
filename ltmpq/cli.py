"""Command line: ``python -m ltmpq run|status|bench`` (the Makefile's ``runs`` and ``bench``)."""

from __future__ import annotations

import argparse
import sys

from .config import PROFILES, QUANT_ABLATIONS, get_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltmpq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="produce a profile's results (trains what is missing)")
    status = sub.add_parser("status", help="list which results of a profile exist")
    for p in (run, status):
        p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
        p.add_argument(
            "--if",
            dest="imbalance_factors",
            type=float,
            nargs="+",
            metavar="IF",
            help="imbalance factors (default: the profile's)",
        )
        p.add_argument("--seed", dest="seeds", type=int, nargs="+", help="seeds (default: the profile's)")
    run.add_argument("--stage", choices=["stage1", "decoupled", "quantized", "mpq", "all"], default="all")
    run.add_argument(
        "--variant",
        dest="variants",
        nargs="+",
        choices=list(QUANT_ABLATIONS),
        metavar="NAME",
        help=f"chapter 3's quantizer variants (default: all): {', '.join(map(repr, QUANT_ABLATIONS))}",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's). With other work on the machine, "
        "1 thread per process avoids OpenMP threads stalling on a busy core",
    )
    sub.add_parser(
        "bench", help="training throughput vs raw forward+backward, chapter 4 sweep speed-up (make bench)"
    )
    args = parser.parse_args(argv)

    if args.command == "bench":
        from .tools.bench import main as bench_main

        return bench_main()
    prof = get_profile(args.profile)
    if args.command == "status":
        from . import results
        from .config import DecoupledRun, MPQRun, QuantizedRun
        from .runs import quant_variants_for

        missing = 0
        variants = quant_variants_for(prof.name)
        for cfg in prof.stage1_configs(args.imbalance_factors, args.seeds):
            cells = []
            runs = [("stage1", cfg), ("decoupled", DecoupledRun(cfg, prof.decouple))]
            runs += [("quantized", QuantizedRun(cfg, prof.decouple, q, prof.quant_bits, keep))
                     for q, keep in variants.values()]  # fmt: skip
            if cfg.imbalance_factor in prof.mpq_ifs:
                runs.append(("mpq", MPQRun(cfg, prof.decouple, prof.quant, prof.mpq)))
            states = {}
            for kind, run in runs:
                state = results.status(results.result_path(prof.name, kind, run), run)
                missing += state in ("missing", "unreadable")
                states.setdefault(kind, []).append(state)
            for kind, found in states.items():
                ok = sum(st.startswith("ok") for st in found)
                shown = found[0] if len(set(found)) == 1 else f"{ok}/{len(found)} ok"
                cells.append(f"{kind}: {shown}" + (f" ({len(found)} variants)" if len(found) > 1 else ""))
            print(f"{cfg.tag:>16}  " + "  ".join(cells))
        return 1 if missing else 0
    from .runs import run_profile

    if args.threads is not None:
        import torch

        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    stages = ("stage1", "decoupled", "quantized", "mpq") if args.stage == "all" else (args.stage,)
    run_profile(prof.name, args.imbalance_factors, args.seeds, stages=stages, progress=not args.quiet,
                variants=args.variants)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
