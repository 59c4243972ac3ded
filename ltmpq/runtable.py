"""Every stored run's headline metrics as one tidy table: a row per evaluated classifier (a run's
stage-2 method, bit-width or mixed-precision allocation), its run's config in columns. The book
publishes it as CSV and Parquet (landing page), for readers who would rather query than read.

Built from :func:`ltmpq.plan.grid` (the one list of runs) and the stored results, so it has every
run the chapters read and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from . import plan, results
from .frames import allocation_label, pct
from .results import MissingResultError, ResultError

#: the test metrics every row carries (percent), in this order
METRICS = ("overall", "head", "tail", "worst_class", "many", "medium", "few", "macro_f1")
#: the run's identity and config columns, then what was evaluated, then the metrics
COLUMNS = (
    "profile", "kind", "stage", "family", "rung", "variant", "run", "config_hash",
    "arch", "width", "loss", "precision", "epochs", "imbalance_factor", "seed",
    "method", "bits", "allocation", "k", "budget", "draw", "average_bits", *METRICS,
)  # fmt: skip


def _metrics(entry: dict) -> dict:
    m = entry["test"]["metrics"]
    return {k: pct(m.get(k)) for k in METRICS}


def _evaluated(stored: dict) -> list[dict]:
    """What one stored result evaluated: ``method``/``bits``/``allocation``... and its metrics."""
    kind = stored["kind"]
    if kind == "stage1":
        return [{"method": "baseline", "bits": "float", **_metrics(stored)}]
    if kind == "decoupled":
        return [{"method": m, "bits": "float", **_metrics(r)} for m, r in stored["methods"].items()]
    if kind == "quantized":
        return [
            {"method": m, "bits": bits, **_metrics(r)}
            for bits, entry in stored["entries"].items()
            for m, r in entry["methods"].items()
        ]
    if kind == "mpq":
        return [
            {"method": a["head"], "bits": "mixed" if a["kind"] in ("rule", "budget", "random") else "uniform",
             "allocation": allocation_label(a), "k": a.get("k"), "budget": a.get("budget"),
             "draw": a.get("draw"), "average_bits": a["average_bits"], **_metrics(a)}
            for a in stored["allocations"]
        ]  # fmt: skip
    return []  # chapter 5's curvature measurements have no accuracy of their own


def rows(run: plan.Run, stored: dict, profile: str) -> list[dict]:
    """The table's rows of one run (``stored``: its result, as :func:`ltmpq.results.fetch` gives it)."""
    c = run.stage1
    ident = {
        "profile": profile, "kind": run.kind, "stage": run.stage, "family": run.family, "rung": run.rung,
        "variant": run.variant, "run": run.key, "config_hash": stored["config_hash"], "arch": c.arch,
        "width": c.width, "loss": c.loss, "precision": c.precision, "epochs": c.epochs,
        "imbalance_factor": c.imbalance_factor, "seed": c.seed,
    }  # fmt: skip
    return [ident | e for e in _evaluated(stored)]


def run_table(profile: str, runs: Iterable[plan.Run] | None = None) -> tuple[pd.DataFrame, list[plan.Run]]:
    """Every stored run of ``profile`` (or of ``runs``) as rows, and the runs not stored (yet).
    A stored result that is not ok (damaged, outdated) is an error, as in the chapters."""
    out, missing = [], []
    for run in plan.unique(plan.grid(profile) if runs is None else runs):
        try:
            stored = results.fetch(run, profile)
        except ResultError:  # stored but not ok: the chapters refuse it, so does the table
            raise
        except MissingResultError:
            missing.append(run)
            continue
        out += rows(run, stored, profile)
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    # one type per column whatever the rows (Parquet refuses a column of mixed objects)
    for col in ("k", "draw"):
        frame[col] = frame[col].astype("Int64")
    for col in ("budget", "average_bits"):
        frame[col] = frame[col].astype("float64")
    return frame, missing
