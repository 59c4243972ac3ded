"""Chapter 2: does re-balancing only the classifier (cRT, tau-norm, LWS, NCM) close the gap?

Table 1 with the decoupled model beside the blog's, the gap each method leaves, what the
validation split chose, and the stage-1 classifier's norms and biases that tau-norm acts on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .. import blog, verdicts
from ..config import DecoupleConfig
from ..frames import gap_per_seed, per_class_frame
from ..tables import ci_text, wide
from ..vocab import BLOG_MODELS, LOGIT_ADJ, METHOD_LABELS, methods_in
from .ch1_evaluation import gap_summary, interval_text, seed_values, side_text, table1_vs_blog, vs_blog_text

#: Table 1's two models as the chapter labels them.
TABLE1_MODELS = {"baseline": "base", "crt": "dec (cRT)"}


def setup_facts(dcfg: DecoupleConfig, val_per_class: int, train_counts: Sequence[int] | None = None) -> dict:
    """How stage 2 is run: epochs, weight decay, the hold-out and the tau grid; with
    ``train_counts`` (of the strongest imbalance) also the largest and smallest class's count."""
    grid = dcfg.tau_grid
    facts = {
        "dec_epochs": dcfg.epochs,
        "dec_wd": f"{dcfg.weight_decay:g}",
        "val_per_class": val_per_class,
        "tau_grid": f"{min(grid):g}, {grid[1]:g}, ..., {max(grid):g}" if len(grid) > 1 else f"{grid[0]:g}",
    }
    if train_counts is not None:
        facts |= {"n_largest": int(max(train_counts)), "n_rarest": int(min(train_counts))}
    return facts


def table1(summary: pd.DataFrame) -> pd.DataFrame:
    """The blog's Table 1: rows (IF, metric), columns (model, blog | ours | difference)."""
    cmp = table1_vs_blog(summary, methods=tuple(TABLE1_MODELS))
    cmp["method"] = cmp["method"].map(TABLE1_MODELS)
    t = cmp.pivot_table(
        index=["imbalance_factor", "metric"],
        columns="method",
        values=["blog", "ours", "difference"],
        aggfunc="first",
    )
    t = t.swaplevel(axis=1)[[(m, v) for m in TABLE1_MODELS.values() for v in ("blog", "ours", "difference")]]
    order = {"overall": 0, "head": 1, "tail": 2}
    return t.sort_index(
        level=[0, 1], ascending=[False, True], key=lambda i: i.map(order.get) if i.name == "metric" else i
    )


def methods_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Every method's test metrics (mean ± CI) per imbalance factor."""
    labelled = summary.assign(method=summary["method"].map(METHOD_LABELS))
    return wide(labelled, ["overall", "head", "tail", "worst_class", "balanced", "macro_f1", "deployment"])


def narrowing(frame: pd.DataFrame, method: str = "crt") -> list[dict]:
    """Per imbalance factor: gap(baseline) - gap(method) per seed, by the verdict rule (> 0)."""
    ifs = sorted(frame["imbalance_factor"].unique(), reverse=True)
    return [
        {
            "imbalance_factor": f,
            **verdicts.evidence(
                (gap_per_seed(frame, f, "baseline") - gap_per_seed(frame, f, method)).to_numpy()
            ),
        }
        for f in ifs
    ]


def gap_facts(frame: pd.DataFrame, summary: pd.DataFrame) -> dict:
    """The gap every method leaves at the strongest imbalance, what cRT trades, and whether it
    narrows the gap (and leaves one) by the verdict rule."""
    f_lo = min(frame["imbalance_factor"])
    gl = gap_summary(frame).query("imbalance_factor == @f_lo").set_index("method")
    out: dict = {"if_lo": f"{f_lo:g}"}
    methods = methods_in(frame["method"])
    for m in methods:
        out[f"gap_lo_{m}"] = f"{gl.loc[m, 'gap']:.1f}"
        out[f"gap_lo_ci_{m}"] = ci_text(gl.loc[m, "ci"])
    # "smallest gap" in absolute value: a method that over-corrects (tail above head) does not win
    best = min((m for m in methods if m != "baseline"), key=lambda m: abs(gl.loc[m, "gap"]))
    out["best_method"] = METHOD_LABELS[best]
    out["gap_lo_best"] = f"{gl.loc[best, 'gap']:.1f} ± {ci_text(gl.loc[best, 'ci'])}"
    lo = summary.query("imbalance_factor == @f_lo and split == 'test'").pivot_table(
        index="method", columns="metric", values="mean"
    )
    out["tail_gain_crt"] = f"{lo.loc['crt', 'tail'] - lo.loc['baseline', 'tail']:.1f}"
    out["head_loss_crt"] = f"{lo.loc['baseline', 'head'] - lo.loc['crt', 'head']:.1f}"
    out["overall_gain_crt"] = f"{lo.loc['crt', 'overall'] - lo.loc['baseline', 'overall']:.1f}"
    # the blog's claim 2 is about IF 0.01, so its own number is taken there whatever our profile's IFs
    blog_gap = blog.TABLE1[(0.01, "crt")]["head"] - blog.TABLE1[(0.01, "crt")]["tail"]
    out["blog_gap_dec"] = f"{blog_gap:.1f}"
    out["blog_gap_claim_consistent"] = (
        "consistent with"
        if blog_gap > verdicts.GAP_REMAINS
        else f"below the {verdicts.GAP_REMAINS:g} points of"
    )
    steps = narrowing(frame)
    out["crt_narrow_n"] = f"{sum(s['verdict'] == verdicts.SUPPORTED for s in steps)} of {len(steps)}"
    remains = verdicts.evidence(gap_per_seed(frame, f_lo, "crt").to_numpy())
    if remains["n"] < 2:  # no interval: say so rather than judge one run
        out["crt_gap_lower"], out["crt_gap_closed"] = "n/a", "cannot be judged from one seed"
    else:
        out["crt_gap_lower"] = f"{remains['ci_low']:.1f}"
        half = remains["estimate"] - remains["ci_low"]
        out["crt_gap_closed"] = verdicts.side(remains["estimate"], half, "does not close",
                                              "reverses (the tail ends above the head)",
                                              "is not distinguishable from zero")  # fmt: skip
    return out


def choices_frame(dec: dict) -> pd.DataFrame:
    """What the validation split chose per run and method (tau, epoch) and its balanced accuracy."""
    rows = []
    for cfg, r in dec.items():
        for m, mr in r["methods"].items():
            rows.append(
                {
                    "imbalance_factor": cfg.imbalance_factor,
                    "seed": cfg.seed,
                    "method": METHOD_LABELS[m],
                    **{k: v for k, v in mr["choice"].items() if k != "val_balanced"},
                    "val balanced acc (%)": 100 * mr["choice"]["val_balanced"],
                }
            )
    return pd.DataFrame(rows)


def choices_table(choices: pd.DataFrame) -> pd.DataFrame:
    """Rows (IF, seed), columns (tau | epoch, method)."""
    return choices.pivot_table(
        index=["imbalance_factor", "seed"],
        columns="method",
        values=[c for c in ("tau", "epoch") if c in choices],
    )


def tau_curves(dec: dict, tau_grid) -> pd.DataFrame:
    """tau-norm's validation balanced accuracy (%) against tau, per run, and its change from
    tau = 0 (the stage-1 weights without the bias; points)."""
    c = pd.DataFrame(
        [
            {
                "imbalance_factor": cfg.imbalance_factor,
                "seed": cfg.seed,
                "tau": t,
                "val balanced accuracy (%)": 100 * a,
            }
            for cfg, r in dec.items()
            for t, a in zip(tau_grid, r["methods"]["tau_norm"]["val_curve"], strict=True)
        ]
    )
    at0 = c["val balanced accuracy (%)"].where(c["tau"] == 0)  # NaN for a grid without tau = 0
    at0 = at0.groupby([c["imbalance_factor"], c["seed"]]).transform("max")
    return c.assign(**{"change from tau = 0 (points)": c["val balanced accuracy (%)"] - at0})


def classifier_norms(dec: dict) -> pd.DataFrame:
    """The stage-1 classifier's per-class weight norm and bias, per run."""
    rows = []
    for cfg, r in dec.items():
        norms, biases = r["stage1_classifier"]["weight_norm"], r["stage1_classifier"]["bias"]
        for c, (n, b) in enumerate(zip(norms, biases, strict=True)):
            rows.append(
                {
                    "imbalance_factor": cfg.imbalance_factor,
                    "seed": cfg.seed,
                    "class": c,
                    "weight norm": n,
                    "bias": b,
                }
            )
    return pd.DataFrame(rows)


def norm_facts(norms: pd.DataFrame, choices: pd.DataFrame) -> dict:
    """At the strongest imbalance: the first class's norm over the last's, the bias difference,
    and the taus chosen."""
    f_lo = min(norms["imbalance_factor"])
    lo = norms[norms["imbalance_factor"] == f_lo]
    norm, bias = lo.groupby("class")["weight norm"].mean(), lo.groupby("class")["bias"].mean()
    taus = choices[(choices["imbalance_factor"] == f_lo) & (choices["method"] == METHOD_LABELS["tau_norm"])][
        "tau"
    ]
    return {
        "norm_ratio_lo": f"{norm.iloc[0] / norm.iloc[-1]:.2f}",
        "bias_diff_lo": f"{bias.iloc[0] - bias.iloc[-1]:.2f}",
        "tau_lo": ", ".join(f"{t:g}" for t in taus),
    }


def per_class_means(s1: dict, dec: dict, imbalance_factor: float) -> pd.DataFrame:
    """Seed-mean test accuracy per method (rows, labelled, in :data:`ALL_METHODS` order) and class."""
    pc = per_class_frame(s1, dec)
    pc = pc[pc["imbalance_factor"] == imbalance_factor]
    t = pc.groupby(["method", "class"])["accuracy"].mean().unstack("class")
    t.index = t.index.map(METHOD_LABELS)
    return t.loc[[METHOD_LABELS[m] for m in methods_in(pc["method"])]]


# --------------------------------------------------------------------------- against the baseline, per seed


def _by_run(rows: list[dict]) -> pd.DataFrame:
    """One row per run, the mildest imbalance first, then by seed."""
    return pd.DataFrame(rows).sort_values(
        ["imbalance_factor", "seed"], ascending=[False, True], ignore_index=True
    )


def blog_gaps(imbalance_factors) -> dict[tuple[str, float], float]:
    """The blog's head-tail gap (points, its Table 1) of each model it reports, keyed by (method
    label, imbalance factor), at those of ``imbalance_factors`` it reports (the gap figure's markers)."""
    return {
        (METHOD_LABELS[m], f): blog.gap(f, m)
        for m in BLOG_MODELS
        for f in imbalance_factors
        if blog.gap(f, m) is not None
    }


def change_facts(frame: pd.DataFrame, method: str) -> dict:
    """At the strongest imbalance: ``method`` minus the baseline per seed (same stage-1 model) in
    head, tail, overall and worst-class test accuracy, each as mean [two-sided 95% interval] and
    as ``higher`` / ``lower`` / ``no detectable difference`` by that interval. Keys
    ``<method>_<metric>_change`` and ``<method>_<metric>_side``, and ``<method>_trade``: the head
    and tail sides together in words (:data:`TRADES`)."""
    f_lo = min(frame["imbalance_factor"])
    out = {}
    for metric in ("head", "tail", "overall", "worst_class"):
        d = seed_values(frame, f_lo, metric, method) - seed_values(frame, f_lo, metric, "baseline")
        out[f"{method}_{metric}_change"] = interval_text(d, signed=True)
        out[f"{method}_{metric}_side"] = side_text(d, "higher", "lower")
    out[f"{method}_trade"] = TRADES[(out[f"{method}_head_side"], out[f"{method}_tail_side"])]
    return out


#: What a method does to the head and the tail, in words, by the sides of its two intervals
#: (head, tail) against the baseline (:func:`change_facts`).
TRADES = {
    ("lower", "higher"): "moves accuracy from the head to the tail",
    ("no detectable difference", "higher"): "raises tail accuracy with no detectable change on the head",
    ("higher", "higher"): "raises both head and tail accuracy",
    ("lower", "no detectable difference"): "lowers head accuracy with no detectable change on the tail",
    ("higher", "no detectable difference"): "raises head accuracy with no detectable change on the tail",
    (
        "no detectable difference",
        "no detectable difference",
    ): "changes neither head nor tail accuracy detectably",
    ("lower", "lower"): "lowers both head and tail accuracy",
    ("no detectable difference", "lower"): "lowers tail accuracy with no detectable change on the head",
    ("higher", "lower"): "moves accuracy from the tail to the head",
}


def best_gap_facts(frame: pd.DataFrame) -> dict:
    """At the strongest imbalance: the decoupled method whose mean gap is closest to zero, and
    every other decoupled method's gap minus its gap per seed (points, mean [two-sided 95%
    interval]; ``larger`` / ``smaller`` / ``no detectable difference`` by that interval)."""
    f_lo = min(frame["imbalance_factor"])
    gaps = {m: gap_per_seed(frame, f_lo, m) for m in methods_in(frame["method"]) if m != "baseline"}
    best = min(gaps, key=lambda m: abs(gaps[m].mean()))
    items = []
    for m, g in gaps.items():
        if m != best:
            d = g - gaps[best]
            items.append(
                f"{METHOD_LABELS[m]}'s {interval_text(d, signed=True)} ({side_text(d, 'larger', 'smaller')})"
            )
    return {
        "best_method": METHOD_LABELS[best],
        "others_vs_best": "; ".join(items),
    }


# --------------------------------------------------------------------------- tau-norm


def norm_table(norms: pd.DataFrame) -> pd.DataFrame:
    """Per run (imbalance factor, seed): the stage-1 classifier's largest per-class weight norm over
    its smallest, and Spearman's rank correlation of the norms with the classes' training counts
    (classes are numbered from the most training images, so it is minus the correlation with
    the class number)."""
    rows = []
    for (f, seed), g in norms.groupby(["imbalance_factor", "seed"], sort=False):
        g = g.sort_values("class")
        n = g["weight norm"].to_numpy(dtype=float)
        rows.append({"imbalance_factor": f, "seed": seed, "norm max/min": n.max() / n.min(),
                     "rho(norm, count)": -stats.spearmanr(g["class"], n).statistic})  # fmt: skip
    return pd.DataFrame(rows).sort_values(
        ["imbalance_factor", "seed"], ascending=[False, True], ignore_index=True
    )


def tau_table(dec: dict, s1: dict, tau_grid) -> pd.DataFrame:
    """Per run: tau-norm's validation balanced accuracy (points) over ``tau_grid``: its spread
    (max - min), the chosen tau's gain over tau = 0, and what dropping the stage-1 classifier's
    bias alone does (tau = 0, the same weights, against the stage-1 model's own validation
    balanced accuracy; these two are NaN for a grid without tau = 0), and the stage-1 bias's mean
    over the head classes minus its mean over the tail classes (the stage-1 result's groups)."""
    grid = [float(t) for t in tau_grid]
    rows = []
    for cfg, r in dec.items():
        tn = r["methods"]["tau_norm"]
        curve = 100 * np.asarray(tn["val_curve"], dtype=float)
        if len(curve) != len(grid):
            raise ValueError(f"{len(curve)} validation accuracies stored for a tau grid of {len(grid)}")
        at0 = curve[grid.index(0.0)] if 0.0 in grid else float("nan")
        bias = r["stage1_classifier"]["bias"]
        rows.append({
            "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed, "tau": tn["choice"]["tau"],
            "spread": curve.max() - curve.min(),
            "gain over tau 0": 100 * tn["choice"]["val_balanced"] - at0,
            "bias dropped": at0 - 100 * s1[cfg]["val"]["metrics"]["balanced"],
            "head - tail bias": np.mean([bias[c] for c in s1[cfg]["groups"]["head"]])
            - np.mean([bias[c] for c in s1[cfg]["groups"]["tail"]]),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values(
        ["imbalance_factor", "seed"], ascending=[False, True], ignore_index=True
    )


def _values_text(values, digits: int) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def tau_facts(norm_t: pd.DataFrame, tau_t: pd.DataFrame, frame: pd.DataFrame) -> dict:
    """Why tau-norm does little here, at the strongest imbalance per seed (and over all runs):
    the weight-norm ratio max/min, its rank correlation with the training counts, the spread of
    the validation curve over tau and the chosen tau's gain over tau = 0 (points), the stage-1
    bias's head-minus-tail difference and what dropping the bias does on validation, and what
    tau-norm does to the test gap against the baseline."""
    f_lo = min(norm_t["imbalance_factor"])
    n_lo, t_lo = norm_t[norm_t["imbalance_factor"] == f_lo], tau_t[tau_t["imbalance_factor"] == f_lo]
    narrowed = gap_per_seed(frame, f_lo, "baseline") - gap_per_seed(frame, f_lo, "tau_norm")
    rho = norm_t["rho(norm, count)"]
    return {
        "norm_ratio_seeds": _values_text(n_lo["norm max/min"], 2),
        "norm_ratio_range": f"{norm_t['norm max/min'].min():.2f}-{norm_t['norm max/min'].max():.2f}",
        "norm_rho_seeds": _values_text(n_lo["rho(norm, count)"], 2),
        "norm_rho_range": f"{rho.min():+.2f} to {rho.max():+.2f}",
        "tau_spread_seeds": _values_text(t_lo["spread"], 1),
        "tau_spread_max": f"{tau_t['spread'].max():.1f}",
        "tau_gain_lo": interval_text(t_lo["gain over tau 0"], signed=True),
        "tau_gain_side": side_text(t_lo["gain over tau 0"], "a gain", "a loss"),
        "bias_gap_lo": interval_text(t_lo["head - tail bias"], signed=True, digits=2),
        "bias_gap_side": side_text(t_lo["head - tail bias"], "larger for the head", "larger for the tail"),
        "bias_drop_lo": interval_text(t_lo["bias dropped"], signed=True),
        "bias_drop_side": side_text(t_lo["bias dropped"], "higher", "lower"),
        "tau_narrowing_lo": interval_text(narrowed, signed=True),
        "tau_narrowing_side": side_text(narrowed, "narrower", "wider"),
    }


# --------------------------------------------------------------------------- the epoch cRT and LWS keep


def epoch_table(dec: dict, method: str = "crt") -> pd.DataFrame:
    """Per run: the epoch ``method`` kept on validation and its validation balanced accuracy
    (points) at epoch 1, at the kept epoch and at the last one, the kept minus the last, the
    spread (max - min) over all epochs, at how many epochs the maximum is reached (the rule
    keeps the earliest of them), and whether the kept epoch is the curve's first maximum."""
    rows = []
    for cfg, r in dec.items():
        mr = r["methods"][method]
        curve = 100 * np.asarray(mr["val_curve"], dtype=float)
        e = int(mr["choice"]["epoch"])
        rows.append({
            "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed, "kept epoch": e,
            "epoch 1": curve[0], "kept": curve[e - 1], "last": curve[-1],
            "kept - last": curve[e - 1] - curve[-1], "spread": curve.max() - curve.min(),
            "epochs at the maximum": int(np.isclose(curve, curve.max(), rtol=0, atol=1e-6).sum()),
            "first maximum": e == int(np.argmax(curve)) + 1,
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values(
        ["imbalance_factor", "seed"], ascending=[False, True], ignore_index=True
    )


def epoch_facts(table: pd.DataFrame, s1: dict, dcfg: DecoupleConfig, n_val: int, prefix: str = "crt") -> dict:
    """Why the validation split keeps an early epoch (``table``: :func:`epoch_table` of the method
    named by ``prefix``, which starts every key): in how many runs it kept epoch 1 and where, how
    many of those were ties with a later epoch, the epochs kept at the strongest imbalance, the
    kept epoch's margin over the last one, epoch 1's difference from the last one and the curves'
    spread (points, range over runs), in how many runs the kept epoch is the curve's first
    maximum, and whether the largest margin is smaller than the sampling noise below; and,
    unprefixed, stage 2's learning rate and batch, the steps of one epoch at the strongest
    imbalance and the 95% sampling noise of one validation accuracy (Wilson half-width at the mean
    kept accuracy on ``n_val`` images)."""
    from ..uncertainty import binomial_half_width

    first = table[table["kept epoch"] == 1]
    where = "; ".join(
        f"IF {f:g} seed{'s' if len(g) > 1 else ''} {', '.join(str(s) for s in g['seed'])}"
        for f, g in first.groupby("imbalance_factor", sort=False)
    )
    f_lo = min(c.imbalance_factor for c in s1)
    n_train = sum(next(r["train_counts"] for c, r in s1.items() if c.imbalance_factor == f_lo))
    margin, spread, early = table["kept - last"], table["spread"], table["epoch 1"] - table["last"]
    ties = int((first["epochs at the maximum"] > 1).sum())
    noise = 100 * binomial_half_width(table["kept"].mean() / 100, n_val)
    return {
        f"{prefix}_epoch1": f"{len(first)} of {len(table)} run{'s' if len(table) > 1 else ''}"
        + (f" ({where})" if where else ""),
        f"{prefix}_epoch1_ties": (
            "no run kept epoch 1"
            if first.empty
            else f"the one epoch-1 choice was {'' if ties else 'not '}such a tie"
            if len(first) == 1
            else f"{ties} of the {len(first)} epoch-1 choices {'was' if ties == 1 else 'were'} such a tie"
        ),
        f"{prefix}_kept_lo": ", ".join(
            str(e) for e in table.loc[table["imbalance_factor"] == f_lo, "kept epoch"]
        ),
        f"{prefix}_kept_minus_last": f"{margin.min():.1f}-{margin.max():.1f}",
        f"{prefix}_curve_spread": f"{spread.min():.1f}-{spread.max():.1f}",
        f"{prefix}_epoch1_minus_last": f"{early.min():+.1f} to {early.max():+.1f}",
        f"{prefix}_rule_ok": f"{int(table['first maximum'].sum())} of {len(table)}",
        f"{prefix}_kept_vs_noise": "smaller than" if margin.max() < noise else "not smaller than",
        "dec_lr": f"{dcfg.lr:g}",
        "dec_batch": dcfg.batch_size,
        "steps_lo": math.ceil(n_train / dcfg.batch_size),
        "n_val": n_val,
        "val_noise": f"{noise:.1f}",
    }


def answer_facts(frame: pd.DataFrame) -> dict:
    """The chapter's answer at the strongest imbalance: the baseline's and cRT's gaps as mean
    [two-sided 95% interval] over seeds, cRT's against the blog's own value there, and the number
    of seeds."""
    f_lo = min(frame["imbalance_factor"])
    crt = gap_per_seed(frame, f_lo, "crt")
    return {
        "n_seeds": int(frame["seed"].nunique()),
        "gap_lo_baseline_ci": interval_text(gap_per_seed(frame, f_lo, "baseline")),
        "gap_lo_crt_ci": interval_text(crt),
        "crt_gap_vs_blog": vs_blog_text(crt, blog.gap(f_lo, "crt")),
        "la_sentence": logit_adjustment_sentence(frame),
    }


def logit_adjustment_sentence(frame: pd.DataFrame) -> str:
    """What post-hoc logit adjustment does at the strongest imbalance, against cRT on the same
    networks (per-seed differences, mean [two-sided 95% interval]); empty where it did not run."""
    if LOGIT_ADJ not in set(frame["method"]):
        return ""
    f_lo = min(frame["imbalance_factor"])
    la = gap_per_seed(frame, f_lo, LOGIT_ADJ)
    test = frame[(frame["split"] == "test") & (frame["imbalance_factor"] == f_lo)]

    def per_seed(method: str, metric: str) -> pd.Series:
        d = test[(test["method"] == method) & (test["metric"] == metric)]
        return d.set_index("seed")["value"].sort_index()

    overall = per_seed(LOGIT_ADJ, "overall") - per_seed("crt", "overall")
    tail = per_seed(LOGIT_ADJ, "tail") - per_seed("crt", "tail")
    return (
        f"Post-hoc logit adjustment (the baseline's logits minus τ·log of the class prior, τ chosen "
        f"on the validation split) leaves a gap of {interval_text(la)} points; against cRT on the "
        f"same networks it changes overall accuracy by {interval_text(overall, signed=True)} points "
        f"({side_text(overall, 'higher', 'lower')}) and tail accuracy by "
        f"{interval_text(tail, signed=True)} ({side_text(tail, 'higher', 'lower')})."
    )
