"""Chapter 1: does overall accuracy hide the head/tail gap, and does the gap grow with imbalance?

The head-tail gap per seed (also chapter 2's and the verdicts'), Table 1 beside the blog, the
accuracy of a class against its training count, the metrics beyond overall accuracy, and how
much of a single run's number is test-set noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .. import blog, verdicts
from ..config import Stage1Config
from ..frames import gap_frame, gap_per_seed, summarize
from ..tables import ci_text, pm

#: The metrics of chapter 1's full table, in the order shown.
REPORTED = (
    "overall",
    "balanced",
    "macro_f1",
    "worst_class",
    "head",
    "tail",
    "many",
    "medium",
    "few",
    "deployment",
)


def recipe_facts(cfg: Stage1Config, n_seeds: int) -> dict:
    """The stage-1 training recipe as the setup paragraph states it (its schedule in words)."""
    if cfg.schedule == "onecycle":  # torch's OneCycleLR defaults: 30% up, cosine down, /25, /1e4
        schedule = (
            f"torch's one-cycle schedule: the learning rate rises from {cfg.lr / 25:g} to "
            f"{cfg.lr:g} over the first 30% of the steps and anneals to {cfg.lr / 25e4:.2g} while "
            f"the momentum cycles between 0.85 and {cfg.momentum:g}"
        )
    else:
        warmup = f"{cfg.warmup_epochs} epoch{'s' if cfg.warmup_epochs != 1 else ''}"
        schedule = f"peak learning rate {cfg.lr:g} after {warmup} of linear warm-up, then cosine decay"
    precision = {"bf16": "bfloat16 autocast", "fp32": "float32"}.get(cfg.precision, cfg.precision)
    return {
        "n_seeds": n_seeds,
        "profile_width": f"{cfg.width:g}",
        "epochs": cfg.epochs,
        "momentum": f"{cfg.momentum:g}",
        "batch": cfg.batch_size,
        "schedule": schedule,
        "precision": precision,
        "wd": f"{cfg.weight_decay:g}",
    }


# --------------------------------------------------------------------------- the head-tail gap


def gap_summary(
    frame: pd.DataFrame, split: str = "test", high: str = "head", low: str = "tail"
) -> pd.DataFrame:
    """Per (imbalance_factor, method): mean ``gap``, 95% t-interval half-width ``ci`` and ``n`` seeds."""
    s = summarize(gap_frame(frame, split, high, low), by=("imbalance_factor", "method"), value="gap")
    return s.rename(columns={"mean": "gap"})


def gap_growth(frame: pd.DataFrame, method: str = "baseline") -> list[dict]:
    """Between consecutive imbalance factors (less -> more imbalanced): the per-seed increase of
    the gap, judged by the verdict rule (:func:`ltmpq.verdicts.evidence`, > 0)."""
    ifs = sorted(frame["imbalance_factor"].unique(), reverse=True)
    return [
        {
            "from": a,
            "to": b,
            **verdicts.evidence((gap_per_seed(frame, b, method) - gap_per_seed(frame, a, method)).to_numpy()),
        }
        for a, b in zip(ifs[:-1], ifs[1:], strict=True)
    ]


def gap_facts(frame: pd.DataFrame, summary: pd.DataFrame) -> dict:
    """The gap at the mildest and the strongest imbalance, and whether it grows between them."""
    ifs = sorted(frame["imbalance_factor"].unique(), reverse=True)
    f_lo, f_hi = min(ifs), max(ifs)
    gaps = gap_summary(frame).query("method == 'baseline'").set_index("imbalance_factor")
    base = summary.query("method == 'baseline' and split == 'test'").set_index(["imbalance_factor", "metric"])
    published = blog.TABLE1.get((f_lo, "baseline"))
    steps = [s["verdict"] == verdicts.SUPPORTED for s in gap_growth(frame)]
    head = [base.loc[(f, "head"), "mean"] for f in ifs]
    tail = [base.loc[(f, "tail"), "mean"] for f in ifs]
    return {
        "if_lo": f"{f_lo:g}",
        "if_hi": f"{f_hi:g}",
        "gap_lo": f"{gaps.loc[f_lo, 'gap']:.1f}",
        "gap_hi": f"{gaps.loc[f_hi, 'gap']:.1f}",
        "gap_ci_lo": ci_text(gaps.loc[f_lo, "ci"]),
        "gap_ci_hi": ci_text(gaps.loc[f_hi, "ci"]),
        "overall_lo": f"{base.loc[(f_lo, 'overall'), 'mean']:.1f}",
        "blog_gap_lo": "no value" if published is None else f"{published['head'] - published['tail']:.1f}",
        "gap_grows": "grows" if steps and all(steps) else "does not grow consistently",
        "gap_grow_steps": f"{sum(steps)} of {len(steps)}",
        "head_range": f"{min(head):.1f}-{max(head):.1f}",
        "tail_range": f"{min(tail):.1f}-{max(tail):.1f}",
    }


# --------------------------------------------------------------------------- the blog's Table 1


def table1_vs_blog(summary: pd.DataFrame, methods: Sequence[str] = ("baseline", "crt")) -> pd.DataFrame:
    """Table 1 / Fig. 5 beside ours: blog value, our mean ± CI over seeds, and the difference."""
    ours = summary[(summary["split"] == "test") & summary["method"].isin(methods)]
    merged = blog.table1_frame().merge(ours, on=["imbalance_factor", "method", "metric"], how="inner")
    merged["difference"] = merged["mean"] - merged["blog"]
    merged["ours"] = [pm(m, c) for m, c in zip(merged["mean"], merged["ci"], strict=True)]
    return merged[["imbalance_factor", "method", "metric", "blog", "ours", "difference", "n"]]


def vs_blog_facts(comparison: pd.DataFrame) -> dict:
    """Whether our accuracies are lower than, higher than or close to (within 1 point) the blog's."""
    d = comparison["difference"].mean()
    word = "lower than" if d < -1 else "higher than" if d > 1 else "close to"
    return {"vs_blog": word, "vs_blog_points": f"{abs(d):.1f}"}


def fig5_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Rows (imbalance factor, metric), columns blog | ours | difference (one method)."""
    t = comparison.pivot_table(
        index=["imbalance_factor", "metric"],
        values=["blog", "ours", "difference"],
        aggfunc="first",
        sort=False,
    )
    return t[["blog", "ours", "difference"]]


# --------------------------------------------------------------------------- per class, other metrics, noise


def count_accuracy_fit(per_class: pd.DataFrame, imbalance_factor: float) -> dict:
    """Spearman rho and a line in log10(training count) of the seed-mean per-class accuracy."""
    means = per_class.groupby(["imbalance_factor", "class"])[["train_count", "accuracy"]].mean().reset_index()
    lo = means[means["imbalance_factor"] == imbalance_factor]
    rho = stats.spearmanr(lo["train_count"], lo["accuracy"]).statistic
    fit = stats.linregress(np.log10(lo["train_count"]), lo["accuracy"])
    return {"rho_lo": f"{rho:.2f}", "slope_lo": f"{fit.slope:.0f}", "r2_lo": f"{fit.rvalue**2:.2f}"}


def metrics_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The baseline's every metric (rows) per imbalance factor (columns), mean ± CI."""
    from ..tables import wide

    return wide(summary[summary["method"] == "baseline"], list(REPORTED), index=("imbalance_factor",)).T


def _baseline_means(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.query("method == 'baseline' and split == 'test'").set_index(["imbalance_factor", "metric"])


def deployment_facts(summary: pd.DataFrame) -> dict:
    """At the strongest imbalance: worst-class and deployment-weighted accuracy."""
    base = _baseline_means(summary)
    f_lo = min(summary["imbalance_factor"])
    deploy, overall = base.loc[(f_lo, "deployment"), "mean"], base.loc[(f_lo, "overall"), "mean"]
    return {
        "worst_lo": f"{base.loc[(f_lo, 'worst_class'), 'mean']:.1f}",
        "deploy_lo": f"{deploy:.1f}",
        "deploy_minus_overall": f"{deploy - overall:.1f}",
    }


def noise_facts(s1: dict, summary: pd.DataFrame) -> dict:
    """The 95% binomial half-width of one run's accuracy at the strongest imbalance (points):
    overall (every test image), tail (its images) and one class (its images)."""
    from ..uncertainty import binomial_half_width

    first = next(iter(s1.values()))
    n_test, n_classes = len(first["test_labels"]), len(first["train_counts"])
    n_tail = round(n_test * len(first["groups"]["tail"]) / n_classes)
    base = _baseline_means(summary)
    f_lo = min(summary["imbalance_factor"])
    acc = {k: base.loc[(f_lo, k), "mean"] / 100 for k in ("overall", "tail", "balanced")}
    return {
        "noise_overall": f"{100 * binomial_half_width(acc['overall'], n_test):.1f}",
        "noise_tail": f"{100 * binomial_half_width(acc['tail'], n_tail):.1f}",
        "noise_class": f"{100 * binomial_half_width(acc['balanced'], n_test // n_classes):.1f}",
    }


def seed_spread(frame: pd.DataFrame, metrics: Sequence[str] = ("overall", "head", "tail", "worst_class")):
    """Per imbalance factor (rows) and metric: min, max, standard deviation and range over seeds, of
    the baseline's test accuracy."""
    d = frame[
        (frame["split"] == "test") & (frame["method"] == "baseline") & frame["metric"].isin(list(metrics))
    ]
    spread = d.groupby(["imbalance_factor", "metric"])["value"].agg(["min", "max", "std"])
    spread["range"] = spread["max"] - spread["min"]
    return spread.unstack("metric").swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)
