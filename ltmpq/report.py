"""What chapters read: stored results as tidy tables, summaries over seeds, blog comparisons.

Used by chapters 0-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import blog
from .config import Profile, get_profile
from .experiments import decode_predictions, decoupled, mpq, mpq_tables, quant_variants_for, quantized, stage1
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


def mpq_results(params: ChapterParams) -> dict:
    """``{config: stored chapter-4 result}`` for the runs at the profile's MPQ imbalance factors."""
    prof = params.prof
    cfgs = [c for c in params.configs() if c.imbalance_factor in prof.mpq_ifs]
    if not cfgs:
        raise ValueError(
            f"chapter 4 runs at imbalance factors {list(prof.mpq_ifs)}; "
            f"the parameters ask for {list(params.ifs)}"
        )
    return {
        c: mpq(c, prof.decouple, prof.quant, prof.mpq, params.profile, compute=params.compute) for c in cfgs
    }


#: How each kind of allocation is named in chapter 4's figures and tables.
ALLOCATION_LABELS = {"overall": "norm-driven", "tail": "tail-driven", "kl": "KL-driven",
                     "kl_tail": "tail-KL-driven", "hessian": "Hessian-driven",
                     "hessian_tail": "tail-Hessian-driven",
                     "rule-random": "random", "budget-random": "random", "uniform": "uniform",
                     "float": "float"}  # fmt: skip


def allocation_label(a: dict) -> str:
    """``norm-driven``, ``tail-driven``, ..., ``random``, ``uniform`` or ``float``."""
    return ALLOCATION_LABELS[a["metric"] if a["kind"] in ("rule", "budget") else a["kind"]]


def mpq_frame(mres: dict, split: str = "test") -> pd.DataFrame:
    """Long table of every evaluated allocation: seed, head, kind, allocation, k, budget, draw,
    average_bits, megabytes, metric, value (percent)."""
    rows = []
    for cfg, r in mres.items():
        for a in r["allocations"]:
            base = {"seed": cfg.seed, "head": a["head"], "kind": a["kind"], "allocation": allocation_label(a),
                    "k": a.get("k"), "budget": a.get("budget"), "draw": a.get("draw"),
                    "bits": a.get("bits"), "average_bits": a["average_bits"],
                    "megabytes": a["size"]["total_bytes"] / 1e6}  # fmt: skip
            for k, v in a[split]["metrics"].items():
                rows.append({**base, "metric": k, "value": pct(v)})
    return pd.DataFrame(rows)


def mpq_select(r: dict, **match) -> list[dict]:
    """The allocations of one stored result whose fields equal ``match`` (e.g. kind="rule", k=8)."""
    return [a for a in r["allocations"] if all(a.get(k) == v for k, v in match.items())]


def mpq_correct(mres: dict, **match) -> tuple[np.ndarray, np.ndarray]:
    """Test labels and (seeds, images) correctness of the one allocation per seed matching ``match``."""
    labels, rows = None, []
    for cfg, r in mres.items():
        found = mpq_select(r, **match)
        if len(found) != 1:
            raise ValueError(f"{cfg.tag}: {len(found)} allocations match {match}, expected exactly one")
        lab = decode_predictions(r["test_labels"])
        if labels is not None and not np.array_equal(lab, labels):
            raise ValueError(f"{cfg.tag} was tested on other images than the first run")
        labels = lab
        rows.append(decode_predictions(found[0]["test"]["predictions"]) == lab)
    return labels, np.stack(rows)


def sensitivity_frame(
    mres: dict, head: str, metrics=("overall", "tail"), images_by_seed=None
) -> pd.DataFrame:
    """Long table of per-layer sensitivities (points lost, or KL): seed, metric, layer, bits, value."""
    rows = []
    for cfg, r in mres.items():
        images = None if images_by_seed is None else images_by_seed[cfg.seed]
        groups = {k: tuple(v) for k, v in _groups(r).items()}
        tables = mpq_tables(r["sweep"][head], r["val_labels"], r["train_counts"], groups, metrics, images)
        for m, t in tables.items():
            scale = 100 if m not in ("kl", "kl_head", "kl_tail") else 1
            for layer, by_bits in t.iterrows():
                for b, v in by_bits.items():
                    rows.append(
                        {"seed": cfg.seed, "metric": m, "layer": layer, "bits": int(b), "value": scale * v}
                    )
    return pd.DataFrame(rows)


def _groups(r: dict) -> dict:
    from .data import class_groups

    return class_groups(r["train_counts"])


def split_halves(labels, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the images, split within each class (chapter 4's rank stability)."""
    labels = np.asarray(labels)
    a, b = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a.append(idx[: len(idx) // 2])
        b.append(idx[len(idx) // 2 :])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def layer_losses(r: dict, head: str, bits: int, classes=None, images: np.ndarray | None = None) -> pd.Series:
    """Accuracy points lost by quantizing each layer alone at ``bits`` (one stored chapter-4 run),
    over the validation images of ``classes`` (None: all) among ``images`` (None: all).

    The numpy twin of :func:`ltmpq.experiments.mpq_tables` for the overall and group metrics
    (a test checks they agree), fast enough for hundreds of resamples.
    """
    labels = decode_predictions(r["val_labels"])
    keep = np.ones(labels.size, bool) if classes is None else np.isin(labels, list(classes))
    if images is not None:
        mask = np.zeros(labels.size, bool)
        mask[images] = True
        keep &= mask
    sweep = r["sweep"][head]
    base = np.mean(decode_predictions(sweep["float"])[keep] == labels[keep])
    return pd.Series(
        {
            layer: 100
            * (base - np.mean(decode_predictions(e[str(bits)]["predictions"])[keep] == labels[keep]))
            for layer, e in sweep["layers"].items()
        }  # fmt: skip
    )


def rank_stability(r: dict, head: str, bits: int, tail, n_splits: int = 200, seed: int = 0) -> pd.DataFrame:
    """Is the tail metric's layer ranking different beyond measurement noise? (chapter 4)

    For each of ``n_splits`` random split-halves (A, B) of the validation images, Kendall's tau-b
    between the tail ranking on B and (i) the tail ranking on A (``same``: agreement of one
    metric with itself on independent images, the noise ceiling) and (ii) the overall ranking on
    A (``cross``). A genuinely different tail ranking shows as ``cross`` below ``same``.
    """
    from scipy.stats import kendalltau

    rng = np.random.default_rng(seed)
    labels = decode_predictions(r["val_labels"])
    rows = []
    for i in range(n_splits):
        a, b = split_halves(labels, rng)
        tail_b = layer_losses(r, head, bits, tail, b)
        same = kendalltau(layer_losses(r, head, bits, tail, a), tail_b).statistic
        cross = kendalltau(layer_losses(r, head, bits, None, a), tail_b).statistic
        rows.append({"split": i, "same": same, "cross": cross})
    return pd.DataFrame(rows)
