"""The v2 training recipe, chosen on the validation split (appendix "The v2 model set").

Each candidate is a stage-1 config that differs from v1's recipe in one or two levers (schedule,
epochs, precision), trained at IF 0.01, seed 0, with the v2 validation split (300 images per
class, held out before the long-tailed draw). Only validation numbers are stored and judged; the
test split is not looked at. A candidate's result is ``results/<profile>/recipe/<tag>-<hash>.json``.

The rule (:func:`choose`): the highest validation balanced accuracy among the candidates whose
training of the profile's whole model set (its seeds x imbalance factors) fits the search's
budget on two one-thread processes, at the throughput the candidate itself measured. Stage 2's
candidates (:func:`choose_stage2`) are then fitted on the chosen model; the better cRT wins.
The chosen config's run is one of the model set's, reused as it is.

Run it with ``make recipe-search PROFILE=cpu`` (two one-thread processes), then
``python -m ltmpq.recipe stage2``.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace

from . import plan, results
from .config import DecoupleConfig, Stage1Config, get_profile
from .data import long_tail_counts


@dataclass(frozen=True)
class Search:
    """A recipe search: the base config (v1's recipe on the v2 split), the stage-1 candidates
    (name -> fields that differ from ``base``), the stage-2 candidates (name -> DecoupleConfig
    fields) and the wall-time budget of the model set's training."""

    base: Stage1Config
    recipes: dict
    stage2: dict
    budget_s: float
    processes: int = 2


SEARCHES: dict[str, Search] = {
    "cpu": Search(
        base=Stage1Config(imbalance_factor=0.01, seed=0, width=0.25, val_per_class=300),
        recipes={
            "v1: cosine, 30 ep, fp32": {},
            "cosine, 30 ep, bf16": {"precision": "bf16"},
            "one-cycle, 30 ep, bf16": {"precision": "bf16", "schedule": "onecycle"},
            "one-cycle, 40 ep, bf16": {"precision": "bf16", "schedule": "onecycle", "epochs": 40},
            "one-cycle, 60 ep, bf16": {"precision": "bf16", "schedule": "onecycle", "epochs": 60},
            "one-cycle, 40 ep, fp32": {"schedule": "onecycle", "epochs": 40},
        },
        stage2={
            "fixed features (v1)": {},
            "10 augmented views": {"augment_views": 10},
            "lr 0.05": {"lr": 0.05},
            "weight decay 5e-3": {"weight_decay": 5e-3},
            "90 epochs": {"epochs": 90},
        },
        budget_s=75 * 60,
    ),
    # the same machinery on the smoke profile's tiny data, for the tests and the smoke book
    "smoke": Search(
        base=get_profile("smoke").stage1_config(0.01, 0),
        recipes={"cosine (smoke)": {}, "one-cycle (smoke)": {"schedule": "onecycle"}},
        stage2={"fixed features (v1)": {}, "2 augmented views": {"augment_views": 2}},
        budget_s=math.inf,
    ),
}


def search_for(profile: str) -> Search:
    """The recipe search of ``profile`` (an error names the profiles that have one)."""
    if profile not in SEARCHES:
        raise ValueError(f"profile {profile!r} has no recipe search; these do: {sorted(SEARCHES)}")
    return SEARCHES[profile]


def config(profile: str, name: str) -> Stage1Config:
    """The stage-1 config of candidate ``name`` of ``profile``'s search."""
    s = search_for(profile)
    if name not in s.recipes:
        raise ValueError(f"unknown recipe {name!r}; choose from {list(s.recipes)}")
    return replace(s.base, **s.recipes[name])


def model_set_images(profile: str, cfg: Stage1Config) -> int:
    """Training images ``profile``'s model set sees with ``cfg``'s recipe: every epoch of every
    seed at each imbalance factor (the long-tailed counts do not depend on the seed)."""
    prof = get_profile(profile)
    per_class = 5000 - cfg.val_per_class if cfg.n_max is None else cfg.n_max
    ifs = prof.imbalance_factors
    one_seed = sum(sum(long_tail_counts(per_class, f, profile=cfg.lt_profile)) for f in ifs)
    return one_seed * len(prof.seeds) * cfg.epochs


def projected_seconds(profile: str, cfg: Stage1Config, images_per_second: float) -> float:
    """Wall time of the model set's training on the search's one-thread processes at the
    throughput the candidate's own run measured."""
    return model_set_images(profile, cfg) / (images_per_second * search_for(profile).processes)


def run(profile: str, name: str, *, compute: bool = True, progress: bool = True) -> dict:
    """The stored result of candidate ``name``, trained (and stored) first when missing."""
    cfg = config(profile, name)
    path = plan.result_path(profile, "recipe", cfg)
    stored = results.load(path, cfg)
    if stored is not None:
        return stored
    if not compute or path.is_file():  # a stored file that cannot be read is never trained over
        results.require(path, cfg, f"make recipe-search PROFILE={profile}")
    import torch  # training: only here, so that the appendix reads the search without torch

    from . import artifacts, provenance
    from .metrics import evaluate
    from .training import predict

    t0 = time.perf_counter()
    data = artifacts.dataset()
    splits = artifacts.splits_for(cfg, data)
    outcome = artifacts.trained_model(cfg, data, progress=progress)
    _, logits = predict(outcome.model, torch.from_numpy(data.train_x[splits.val]), device="cpu")
    labels, pred = data.train_y[splits.val], logits.argmax(1).numpy()
    counts = list(splits.train_counts)
    payload = {
        "kind": "recipe",
        "name": name,
        "changes": search_for(profile).recipes[name],
        "train_counts": counts,
        "split_sizes": {"train": len(splits.train), "val": len(splits.val)},
        "history": outcome.history,
        "train_seconds": outcome.train_seconds,
        "train_images_per_second": outcome.images_per_second,
        "val": {**evaluate(labels, pred, counts), "predictions": pred.tolist()},
    }
    return results.save(path, cfg, payload, provenance.record(cfg, data.source, time.perf_counter() - t0))


def results_of(profile: str, *, compute: bool = False, progress: bool = True) -> dict[str, dict]:
    """``{candidate: stored result}`` of the whole search (computing only if allowed)."""
    return {n: run(profile, n, compute=compute, progress=progress) for n in search_for(profile).recipes}


def table(profile: str, stored: dict[str, dict]) -> list[dict]:
    """One row per candidate: validation overall / head / tail / balanced accuracy (points), its
    training throughput and the projected wall time of the whole model set with it."""
    rows = []
    for name, r in stored.items():
        m = r["val"]["metrics"]
        cfg = config(profile, name)
        rows.append({
            "recipe": name,
            "epochs": cfg.epochs,
            "val overall": 100 * m["overall"],
            "val head": 100 * m["head"],
            "val tail": 100 * m["tail"],
            "val balanced": 100 * m["balanced"],
            "img/s": r["train_images_per_second"],
            "model set (min)": projected_seconds(profile, cfg, r["train_images_per_second"]) / 60,
        })  # fmt: skip
    return rows


def choose(rows: list[dict], budget_s: float) -> str:
    """The rule: the best validation balanced accuracy among candidates whose model set fits
    ``budget_s`` (ties: the cheaper). Raises when none fits."""
    fits = [r for r in rows if r["model set (min)"] * 60 <= budget_s]
    if not fits:
        names = [r["recipe"] for r in rows]
        raise ValueError(f"no recipe's model set fits {budget_s / 60:.0f} min; candidates: {names}")
    best = max(fits, key=lambda r: (round(r["val balanced"], 6), -r["model set (min)"]))
    return best["recipe"]


def chosen_config(profile: str, *, compute: bool = False) -> Stage1Config:
    """The stage-1 config the search chooses (from its stored results)."""
    rows = table(profile, results_of(profile, compute=compute))
    return config(profile, choose(rows, search_for(profile).budget_s))


def stage2_run(profile: str, name: str, *, compute: bool = True, progress: bool = True) -> dict:
    """The decoupled result of stage-2 candidate ``name`` on the chosen stage-1 model."""
    from . import runs

    s = search_for(profile)
    if name not in s.stage2:
        raise ValueError(f"unknown stage-2 candidate {name!r}; choose from {list(s.stage2)}")
    dcfg = DecoupleConfig(**s.stage2[name])  # v1's stage 2 with the candidate's changes
    cfg = chosen_config(profile, compute=compute)
    return runs.decoupled(cfg, dcfg, profile, compute=compute, progress=progress)


def stage2_table(stored: dict[str, dict], methods: tuple[str, ...] = ("crt", "lws")) -> list[dict]:
    """One row per (stage-2 candidate, method): validation overall / head / tail (points)."""
    rows = []
    for name, r in stored.items():
        for m in methods:
            v = r["methods"][m]["val"]["metrics"]
            rows.append({"stage 2": name, "method": m, "val overall": 100 * v["overall"],
                         "val head": 100 * v["head"], "val tail": 100 * v["tail"]})  # fmt: skip
    return rows


def choose_stage2(rows: list[dict], method: str = "crt") -> str:
    """The stage-2 candidate whose ``method`` (the blog's decoupled model: cRT) has the best
    validation accuracy (the split is balanced: overall = balanced); ties: the first listed."""
    mine = [r for r in rows if r["method"] == method]
    if not mine:
        raise ValueError(f"no row of method {method!r}")
    best = max(r["val overall"] for r in mine)
    return next(r["stage 2"] for r in mine if r["val overall"] == best)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltmpq.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--profile", default="cpu", choices=sorted(SEARCHES))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("names", help="print the stage-1 candidates, one per line")
    sub.add_parser("stage2", help="fit the stage-2 candidates on the chosen recipe's model")
    r = sub.add_parser("run", help="train the stage-1 candidates that have no stored result")
    r.add_argument("--only", nargs="+", help="these candidates only (names as `names` prints them)")
    r.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    s = search_for(args.profile)
    if args.command == "names":
        print("\n".join(s.recipes))
        return 0
    import torch

    torch.set_num_threads(1)  # one thread per process: run two (make recipe-search)
    if args.command == "stage2":
        for name in s.stage2:
            out = stage2_run(args.profile, name)
            print(name, {m: round(out["methods"][m]["val"]["metrics"]["overall"], 3) for m in ("crt", "lws")})
        return 0
    unknown = [n for n in args.only or () if n not in s.recipes]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {list(s.recipes)}")
    for name in args.only or list(s.recipes):
        out = run(args.profile, name, progress=not args.quiet)
        m = out["val"]["metrics"]
        print(f"{name}: val overall {m['overall']:.3f} head {m['head']:.3f} tail {m['tail']:.3f} "
              f"balanced {m['balanced']:.3f} ({out['train_images_per_second']:.0f} img/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
