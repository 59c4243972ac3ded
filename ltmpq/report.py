"""What chapters read: stored results as tidy tables, summaries over seeds, blog comparisons.

Used by chapters 0-3 (and later chapters through the same tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import blog
from .config import Profile, get_profile
from .experiments import decode_predictions, decoupled, quant_variants_for, quantized, stage1
from .quantization import FLOAT
from .stats import mean_ci


@dataclass(frozen=True)
class ChapterParams:
    """A notebook's parameters cell, frozen and checked as soon as it has run."""

    profile: str = "cpu"
    compute: bool = False
    imbalance_factors: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        get_profile(self.profile)  # raises with the allowed names
        for name, kind in (("imbalance_factors", float), ("seeds", int)):
            v = getattr(self, name)
            if v is not None:
                v = tuple(kind(x) for x in v)  # plain numbers: numpy scalars do not hash as JSON
                object.__setattr__(self, name, v)
                if not v:
                    raise ValueError(f"{name} must be None (the profile's) or non-empty, got {v!r}")

    @property
    def prof(self) -> Profile:
        return get_profile(self.profile)

    @property
    def ifs(self) -> tuple[float, ...]:
        return self.imbalance_factors or self.prof.imbalance_factors

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or self.prof.seeds

    def configs(self):
        return self.prof.stage1_configs(self.ifs, self.seed_list)


def pct(v: float | None) -> float:
    """A stored fraction as percent; null (an empty group) becomes NaN."""
    return float("nan") if v is None else 100 * v


def _metric_rows(result: dict, split: str, method: str, cfg) -> list[dict]:
    m = result[split]["metrics"]
    return [
        {
            "imbalance_factor": cfg.imbalance_factor,
            "seed": cfg.seed,
            "method": method,
            "split": split,
            "metric": k,
            "value": pct(v),
        }  # fmt: skip
        for k, v in m.items()
    ]


def stage1_results(params: ChapterParams) -> dict:
    """``{config: stored stage-1 result}`` for the chapter's runs (computing only if allowed)."""
    return {c: stage1(c, params.profile, compute=params.compute) for c in params.configs()}


def decoupled_results(params: ChapterParams) -> dict:
    """``{config: stored decoupled result}`` for the chapter's runs."""
    d = params.prof.decouple
    return {c: decoupled(c, d, params.profile, compute=params.compute) for c in params.configs()}


def metrics_frame(s1: dict, dec: dict | None = None) -> pd.DataFrame:
    """Long table: imbalance_factor, seed, method, split, metric, value (percent)."""
    rows = []
    for cfg, r in s1.items():
        for split in ("val", "test"):
            rows += _metric_rows(r, split, "baseline", cfg)
    for cfg, r in (dec or {}).items():
        for method, mr in r["methods"].items():
            for split in ("val", "test"):
                rows += _metric_rows(mr, split, method, cfg)
    return pd.DataFrame(rows)


def per_class_frame(s1: dict, dec: dict | None = None, split: str = "test") -> pd.DataFrame:
    """Long table of per-class accuracy (percent) with each class's training count."""
    rows = []
    for cfg, r in s1.items():
        entries = {"baseline": r[split]}
        if dec:
            entries |= {m: mr[split] for m, mr in dec[cfg]["methods"].items()}
        for method, e in entries.items():
            for c, acc in enumerate(e["per_class"]):
                rows.append({
                    "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed, "method": method,
                    "class": c, "train_count": r["train_counts"][c], "accuracy": pct(acc),
                })  # fmt: skip
    return pd.DataFrame(rows)


def summarize(
    df: pd.DataFrame,
    by: Sequence[str] = ("imbalance_factor", "method", "split", "metric"),
    value: str = "value",
) -> pd.DataFrame:
    """Mean, 95% t-interval half-width and number of seeds for each group."""
    out = df.groupby(list(by), sort=False)[value].apply(
        lambda s: pd.Series(mean_ci(s.to_numpy()), index=["mean", "ci", "n"])
    )
    return out.unstack(-1).reset_index()


def blog_comparison(summary: pd.DataFrame, methods: Sequence[str] = ("baseline", "crt")) -> pd.DataFrame:
    """Table 1 / Fig. 5 beside ours: blog value, our mean +- CI over seeds, and the difference."""
    ours = summary[(summary["split"] == "test") & summary["method"].isin(methods)]
    merged = blog.table1_frame().merge(ours, on=["imbalance_factor", "method", "metric"], how="inner")
    merged["difference"] = merged["mean"] - merged["blog"]
    merged["ours"] = [pm(m, c) for m, c in zip(merged["mean"], merged["ci"], strict=True)]
    return merged[["imbalance_factor", "method", "metric", "blog", "ours", "difference", "n"]]


def pm(mean: float, ci: float) -> str:
    """``"mean ± ci"`` to one decimal (just the mean when the interval is undefined)."""
    return f"{mean:.1f}" if np.isnan(ci) else f"{mean:.1f} ± {ci:.1f}"


def wide(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    split: str = "test",
    index: Sequence[str] = ("imbalance_factor", "method"),
) -> pd.DataFrame:
    """Readable table: one row per (IF, method), one 'mean ± CI' column per metric."""
    s = summary[(summary["split"] == split) & summary["metric"].isin(metrics)].copy()
    s["cell"] = ["—" if np.isnan(m) else pm(m, c) for m, c in zip(s["mean"], s["ci"], strict=True)]
    t = s.pivot_table(index=list(index), columns="metric", values="cell", aggfunc="first", sort=False)
    return t[[m for m in metrics if m in t.columns]]


def data_sources(*stored: dict) -> list[dict]:
    """Distinct data sources recorded in the provenance of stored results."""
    seen = {}
    for group in stored:
        for r in group.values():
            src = r["provenance"]["data_source"]
            seen[(src["kind"], src.get("sha256"))] = src
    return list(seen.values())


def gap_summary(
    frame: pd.DataFrame, split: str = "test", high: str = "head", low: str = "tail"
) -> pd.DataFrame:
    """Per (IF, method): mean and 95% CI over seeds of the per-seed ``high - low`` accuracy gap.

    The gap is taken within each run first, so its interval shows how consistently a method
    narrows it (chapters 1 and 2).
    """
    per = frame[(frame["split"] == split) & frame["metric"].isin([high, low])]
    per = per.pivot_table(index=["imbalance_factor", "method", "seed"], columns="metric", values="value")
    per = (per[high] - per[low]).rename("gap").reset_index()
    rows = []
    for (f, m), g in per.groupby(["imbalance_factor", "method"], sort=False):
        mean, half, n = mean_ci(g["gap"].to_numpy())
        rows.append({"imbalance_factor": f, "method": m, "gap": mean, "ci": half, "n": n})
    return pd.DataFrame(rows)


def difference_ci(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Difference of two independent (mean, CI half-width) estimates, half-widths added in quadrature."""
    return a[0] - b[0], float(np.hypot(a[1], b[1]))


def table(df: pd.DataFrame, precision: int = 1):
    """How the chapters display a table: fixed decimals, '—' for missing, cells that do not wrap."""

    def fmt(v):
        if isinstance(v, float | np.floating):
            if np.isnan(v):
                return "—"
            text = f"{v:.0f}" if float(v).is_integer() else f"{v:.{precision}f}"
            return text.lstrip("-") if float(text) == 0 else text  # "-0.0" reads as a loss
        return v

    def fmt_index(v):
        return f"{v:g}" if isinstance(v, float | np.floating) else v  # 0.1, not 0.100000

    styler = df.style.format(fmt).format_index(fmt_index, axis=0).format_index(fmt_index, axis=1)
    return styler.set_table_styles(
        [{"selector": "td, th", "props": "white-space: nowrap; padding: 2px 8px;"}]
    )


def data_note(*stored: dict) -> str:
    """What the book says the numbers were computed on (the JPEG copy is lossy: say so)."""
    lossy = any(src["lossy"] for src in data_sources(*stored))
    return "the lossy JPEG copy (quality 75) of CIFAR-10" if lossy else "the original CIFAR-10"


def quantized_results(params: ChapterParams, variants: Sequence[str] | None = None) -> dict[str, dict]:
    """``{variant: {config: stored quantized sweep}}`` for chapter 3's quantizer variants."""
    prof = params.prof
    return {
        name: {
            c: quantized(
                c,
                prof.decouple,
                q,
                prof.quant_bits,
                params.profile,
                keep_predictions=keep,
                compute=params.compute,
            )
            for c in params.configs()
        }  # fmt: skip
        for name, (q, keep) in quant_variants_for(params.profile, variants).items()
    }


def bits_order(labels) -> list[str]:
    """Bit-width labels from float down to the fewest bits: ``["float", "8", "6", ...]``."""
    labels = set(labels)
    ints = sorted((int(b) for b in labels if b != FLOAT), reverse=True)
    return ([FLOAT] if FLOAT in labels else []) + [str(b) for b in ints]


def quant_frame(qres: dict[str, dict], split: str = "test") -> pd.DataFrame:
    """Long table: variant, imbalance_factor, seed, method, bits, metric, value (percent)."""
    rows = []
    for variant, by_cfg in qres.items():
        for cfg, r in by_cfg.items():
            for bits, entry in r["entries"].items():
                for method, mr in entry["methods"].items():
                    for k, v in mr[split]["metrics"].items():
                        rows.append({"variant": variant, "imbalance_factor": cfg.imbalance_factor,
                                     "seed": cfg.seed, "method": method, "bits": bits, "metric": k,
                                     "value": pct(v)})  # fmt: skip
    return pd.DataFrame(rows)


def quant_per_class(by_cfg: dict, split: str = "test") -> pd.DataFrame:
    """Long table of per-class accuracy (percent) of one quantizer variant's sweeps."""
    rows = []
    for cfg, r in by_cfg.items():
        for bits, entry in r["entries"].items():
            for method, mr in entry["methods"].items():
                for c, acc in enumerate(mr[split]["per_class"]):
                    rows.append({"imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
                                 "method": method, "bits": bits, "class": c,
                                 "accuracy": pct(acc)})  # fmt: skip
    return pd.DataFrame(rows)


def quant_predictions(by_cfg: dict, s1: dict, imbalance_factor: float, method: str, bits: str):
    """Test labels and a (seeds, images) array of predictions at one IF, method and bit-width.

    Seeds are in the order of ``by_cfg``; every run is evaluated on the same test images.
    """
    cfgs = [c for c in by_cfg if c.imbalance_factor == imbalance_factor]
    if not cfgs:
        have = sorted({c.imbalance_factor for c in by_cfg})
        raise ValueError(f"no run at imbalance factor {imbalance_factor!r}; the results have {have}")
    labels = np.asarray(s1[cfgs[0]]["test_labels"])
    preds = []
    for c in cfgs:
        if not np.array_equal(s1[c]["test_labels"], labels):
            raise ValueError(f"{c.tag} was tested on other images than {cfgs[0].tag}")
        stored = by_cfg[c]["entries"][bits]["methods"][method]["test"].get("predictions")
        if stored is None:
            raise ValueError(f"the sweep of {c.tag} did not keep its predictions (keep_predictions)")
        preds.append(decode_predictions(stored))
    return labels, np.stack(preds)


def drop_frame(frame: pd.DataFrame, reference: str = FLOAT) -> pd.DataFrame:
    """Per run: each metric's drop from ``reference`` bits (points; positive = worse), and the
    relative drop (percent of the reference accuracy)."""
    key = ["variant", "imbalance_factor", "seed", "method", "metric"]
    ref = frame[frame["bits"] == reference].set_index(key)["value"].rename("reference")
    out = frame.join(ref, on=key)
    out["drop"] = out["reference"] - out["value"]
    out["relative_drop"] = 100 * out["drop"] / out["reference"]
    return out
