"""Chapter 1: does overall accuracy hide the head/tail gap, and does the gap grow with imbalance?

The head-tail gap per seed (also chapter 2's and the verdicts'), Table 1 beside the blog (what
carries over and what does not, each of our numbers with its two-sided interval over seeds), the
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
from ..tables import ci_text, interval, pm
from ..uncertainty import mean_ci
from ..vocab import METHODS

#: The metrics of chapter 1's full table and of the chapters' downloadable tables, in the order
#: shown. Kang et al.'s many/medium/few groups (by training count) are stored but not shown: with
#: ten classes they hold one to eight classes each, and "few" is empty on CIFAR-10-LT.
REPORTED = ("overall", "balanced", "macro_f1", "worst_class", "head", "tail", "deployment")

#: The key columns of :func:`ltmpq.frames.metrics_frame`, in the order the downloads sort by.
KEYS = ["imbalance_factor", "seed", "method", "split", "metric"]


def tidy_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-seed metrics as a chapter offers them for download: the :data:`REPORTED` metrics of
    every run, method and split (percent), indexed by :data:`KEYS`; imbalance factors from the
    mildest, then seeds, methods in :data:`ltmpq.vocab.METHODS` order, validation before test,
    metrics in :data:`REPORTED` order."""
    d = frame[frame["metric"].isin(REPORTED)].copy()
    methods = [m for m in METHODS if m in set(d["method"])] + [
        m for m in dict.fromkeys(d["method"]) if m not in METHODS
    ]
    order = {
        "imbalance_factor": lambda s: -s,
        "method": lambda s: s.map({m: i for i, m in enumerate(methods)}),
        "split": lambda s: s.map({"val": 0, "test": 1}),
        "metric": lambda s: s.map({m: i for i, m in enumerate(REPORTED)}),
    }
    d = d.sort_values(KEYS, key=lambda s: order.get(s.name, lambda v: v)(s), kind="stable")
    return d.set_index(KEYS)[["value"]]


# --------------------------------------------------------------------------- intervals in words


def interval_text(values, signed: bool = False, digits: int = 1) -> str:
    """Mean and two-sided 95% t-interval over seeds, ``"10.1 [7.9, 12.3]"`` (``signed``:
    ``"+10.1 [+7.9, +12.3]"``); one seed has no interval and says so, no seed says that."""
    ev = verdicts.evidence(np.asarray(values, dtype=float))
    if ev["n"] == 0:
        return "no run"
    if ev["n"] < 2:
        return f"{ev['estimate']:{'+' if signed else ''}.{digits}f} (one seed, no interval)"
    return interval(ev["estimate"], ev["ci_low"], ev["ci_high"], digits=digits, signed=signed)


def side_text(values, positive: str, negative: str, neither: str = "no detectable difference") -> str:
    """Which side of zero the two-sided 95% interval over seeds of ``values`` lies on, in words
    (:func:`ltmpq.verdicts.side`): ``neither`` when it contains zero or there is no interval."""
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    m, h, _ = mean_ci(v) if v.size else (np.nan, np.nan, 0)
    return verdicts.side(m, h, positive, negative, neither)


#: How :func:`vs_blog_text` words :func:`ltmpq.verdicts.reproduces`.
VS_BLOG = {
    "yes": "our interval contains the blog's value",
    "no: ours lower": "ours below the blog's",
    "no: ours higher": "ours above the blog's",
}


def vs_blog_text(values, published: float | None) -> str:
    """Whether the two-sided 95% interval over seeds of ``values`` lies below, above or around the
    blog's ``published`` value, in words."""
    if published is None:
        return "the blog gives no value"
    ev = verdicts.evidence(np.asarray(values, dtype=float))
    return VS_BLOG.get(verdicts.reproduces(ev["ci_low"], ev["ci_high"], published), "one seed, no interval")


def seed_values(
    frame: pd.DataFrame, imbalance_factor: float, metric: str, method: str = "baseline"
) -> pd.Series:
    """One test metric of each seed's run (percent, indexed by seed) at one imbalance factor and method."""
    d = frame[
        (frame["split"] == "test")
        & (frame["imbalance_factor"] == imbalance_factor)
        & (frame["method"] == method)
        & (frame["metric"] == metric)
    ]
    if d.empty:
        raise ValueError(f"no {method!r} {metric!r} at imbalance factor {imbalance_factor!r}")
    return d.set_index("seed")["value"].sort_index()


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


def precision_note(cfg: Stage1Config) -> dict:
    """The training arithmetic explained for a reader who does not know torch's autocast."""
    note = {
        "bf16": "torch's autocast runs convolutions and matrix products in bfloat16, a 16-bit floating-point "
        "format with float32's range and fewer digits, and the rest in float32",
        "fp32": "every operation in 32-bit floating point",
    }.get(cfg.precision, cfg.precision)
    return {"precision_note": note}


def kang_group_facts(s1: dict) -> dict:
    """At the strongest imbalance: how many classes Kang et al.'s many / medium / few groups hold
    (the stored ``groups`` of the first run there), e.g. ``"8, 2 and 0"``."""
    f_lo = min(c.imbalance_factor for c in s1)
    groups = next(r["groups"] for c, r in s1.items() if c.imbalance_factor == f_lo)
    many, medium, few = (len(groups[g]) for g in ("many", "medium", "few"))
    return {"kang_sizes": f"{many}, {medium} and {few}"}


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


def blog_gaps_table(frame: pd.DataFrame, method: str = "baseline") -> pd.DataFrame:
    """Per imbalance factor (mildest first): head minus tail accuracy, ours (mean and two-sided
    95% interval over seeds) beside the blog's, and where ours lies against it."""
    ifs = sorted(frame["imbalance_factor"].unique(), reverse=True)
    rows = []
    for f in ifs:
        g = gap_per_seed(frame, f, method)
        rows.append({"IF": f, "ours": interval_text(g), "blog": blog.gap(f, method),
                     "ours against the blog": vs_blog_text(g, blog.gap(f, method))})  # fmt: skip
    return pd.DataFrame(rows).set_index("IF")


def _change(frame: pd.DataFrame, metric: str, f_from: float, f_to: float) -> pd.Series:
    return seed_values(frame, f_to, metric) - seed_values(frame, f_from, metric)


def _blog_change(metric: str, f_from: float, f_to: float) -> float | None:
    a, b = blog.TABLE1.get((f_from, "baseline")), blog.TABLE1.get((f_to, "baseline"))
    return None if a is None or b is None else round(b[metric] - a[metric], 6)


def _published(value: float | None) -> str:
    return "no value" if value is None else f"{value:+.1f}"


def blog_shape_facts(frame: pd.DataFrame) -> dict:
    """What carries over from the blog's Fig. 5 and what does not, from the mildest imbalance
    (``hi``) to the strongest (``lo``), each of ours as mean [two-sided 95% interval] over seeds:

    - the gap at both ends and its growth, beside the blog's and where ours lies against it;
    - how the head's and the tail's accuracy change (and in which direction, by the interval);
    - the tail and the head at both ends against the blog's (where the gaps differ)."""
    ifs = sorted(frame["imbalance_factor"].unique(), reverse=True)
    f_hi, f_lo = ifs[0], ifs[-1]
    out: dict = {}
    for end, f in (("hi", f_hi), ("lo", f_lo)):
        g = gap_per_seed(frame, f, "baseline")
        out[f"gap_{end}_ci"] = interval_text(g)
        out[f"blog_gap_{end}"] = (
            "no value" if blog.gap(f, "baseline") is None else f"{blog.gap(f, 'baseline'):.1f}"
        )
        out[f"gap_{end}_vs_blog"] = vs_blog_text(g, blog.gap(f, "baseline"))
        out[f"gap_{end}_side"] = side_text(g, "the head ahead", "the tail ahead")
        for metric in ("head", "tail"):
            v = seed_values(frame, f, metric)
            published = blog.TABLE1.get((f, "baseline"), {}).get(metric)
            out[f"{metric}_{end}_ci"] = interval_text(v)
            out[f"blog_{metric}_{end}"] = "no value" if published is None else f"{published:.1f}"
            out[f"{metric}_{end}_vs_blog"] = vs_blog_text(v, published)
    growth = (
        gap_per_seed(frame, f_lo, "baseline") - gap_per_seed(frame, f_hi, "baseline")
        if f_lo != f_hi
        else pd.Series(dtype=float)
    )
    blog_growth = (
        None
        if blog.gap(f_lo, "baseline") is None or blog.gap(f_hi, "baseline") is None
        else round(blog.gap(f_lo, "baseline") - blog.gap(f_hi, "baseline"), 6)
    )
    out |= {
        "growth_ci": interval_text(growth, signed=True),
        "blog_growth": _published(blog_growth),
        "growth_vs_blog": vs_blog_text(growth, blog_growth),
    }
    for metric in ("head", "tail"):
        change = _change(frame, metric, f_hi, f_lo) if f_lo != f_hi else pd.Series(dtype=float)
        published = _blog_change(metric, f_hi, f_lo)
        out |= {
            f"{metric}_change": interval_text(change, signed=True),
            f"{metric}_change_side": side_text(change, "rises", "falls", "no detectable change"),
            f"blog_{metric}_change": _published(published),
            f"{metric}_change_vs_blog": vs_blog_text(change, published),
        }
    return out


def _negated(value: float | None) -> float | None:
    return None if value is None else -value


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def carry_over_facts(frame: pd.DataFrame) -> dict:
    """What of the blog's Fig. 5 holds on our runs and what does not, as two phrases for the prose.

    Holds: the gap at the mildest imbalance, its growth, and the tail's fall, each where our
    two-sided 95% interval over seeds lies on the same side of zero as the blog's value. Does not:
    each of those with the opposite or an undetectable sign, and the gap's size at either end and
    its growth where our interval excludes the blog's value (the blog's values have no interval)."""
    ifs = sorted(frame["imbalance_factor"].unique(), reverse=True)
    f_hi, f_lo = ifs[0], ifs[-1]
    gap_hi, gap_lo = gap_per_seed(frame, f_hi, "baseline"), gap_per_seed(frame, f_lo, "baseline")
    growth = gap_lo - gap_hi if f_lo != f_hi else pd.Series(dtype=float)
    tail = _change(frame, "tail", f_hi, f_lo) if f_lo != f_hi else pd.Series(dtype=float)
    b_hi, b_lo = blog.gap(f_hi, "baseline"), blog.gap(f_lo, "baseline")
    b_growth = None if b_hi is None or b_lo is None else b_lo - b_hi
    signs = [  # (what, our per-seed values, the blog's value)
        (f"a head–tail gap at IF {f_hi:g}", gap_hi, b_hi),
        ("the gap's growth with the imbalance", growth, b_growth),
        ("the tail's fall with the imbalance", -tail, _negated(_blog_change("tail", f_hi, f_lo))),
    ]
    holds, differs = [], []
    for what, values, published in signs:
        if published is None:
            continue
        ours = side_text(values, "+", "-", "0")
        (holds if ours == ("+" if published > 0 else "-") else differs).append(what)
    sizes = [
        (f"the gap's size at IF {f_hi:g}", gap_hi, b_hi),
        (f"the gap's size at IF {f_lo:g}", gap_lo, b_lo),
        ("its growth", growth, b_growth),
    ]
    for what, values, published in sizes:
        reading = vs_blog_text(values, published)
        if reading in (VS_BLOG["no: ours lower"], VS_BLOG["no: ours higher"]):
            differs.append(f"{what} ({reading})")
    return {
        "carries_over": _listed(holds) if holds else "no part of the pattern with a clear sign in our runs",
        "does_not_carry_over": _listed(differs) if differs else "no size that our intervals can tell apart",
    }


def vs_blog_cells(summary: pd.DataFrame, methods: Sequence[str] = ("baseline",)) -> dict:
    """Over the blog's Table 1 cells (IF x overall/head/tail) that we also measured: in how many our
    two-sided 95% interval over seeds lies below the blog's value, contains it, or lies above it."""
    ours = summary[(summary["split"] == "test") & summary["method"].isin(methods)]
    m = blog.table1_frame().merge(ours, on=["imbalance_factor", "method", "metric"], how="inner")
    found = [
        verdicts.reproduces(a - h, a + h, b) for a, h, b in zip(m["mean"], m["ci"], m["blog"], strict=True)
    ]
    n = len(found)
    return {
        "vs_blog_n": n,
        "vs_blog_below": f"{found.count('no: ours lower')} of {n}",
        "vs_blog_within": f"{found.count('yes')}",
        "vs_blog_above": f"{found.count('no: ours higher')}",
    }


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


def deployment_gain_facts(frame: pd.DataFrame) -> dict:
    """At the strongest imbalance: deployment-weighted minus balanced overall accuracy, per seed
    (points, mean [two-sided 95% interval]), and on which side of zero its interval lies."""
    f_lo = min(frame["imbalance_factor"])
    d = seed_values(frame, f_lo, "deployment") - seed_values(frame, f_lo, "overall")
    return {
        "deploy_vs_overall": interval_text(d, signed=True),
        "deploy_side": side_text(
            d, "higher on the training distribution", "lower on the training distribution"
        ),
    }


def headline_facts(frame: pd.DataFrame) -> dict:
    """The answer's numbers at the strongest imbalance: overall, head and tail accuracy of the
    baseline, each as mean [two-sided 95% interval] over seeds."""
    f_lo = min(frame["imbalance_factor"])
    return {f"{m}_lo_ci": interval_text(seed_values(frame, f_lo, m)) for m in ("overall", "head", "tail")}


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
