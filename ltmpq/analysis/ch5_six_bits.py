"""Chapter 5: why did the blog see a 6-bit tail drop?

Three kinds of evidence, each a function here: chapter 5's quantizer hypotheses (chapter 3's
sweeps with other quantizers) against the blog's Figs. 7/8 and claim 3's rule; the W8A8 model
through torch.ao's integer kernels against its simulation; and per-class curvature against the
per-class accuracy drop (the mechanism of Liu et al.). The runs are :func:`ltmpq.runs.quantized`
(``--stage hypotheses``) and :func:`ltmpq.runs.explain` (``--stage explain``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import claims, fairness, verdicts
from ..decoupling import METHOD_LABELS
from ..quantization import FLOAT
from ..tables import pm
from ..uncertainty import mean_ci
from .ch3_quantization import BLOG_MODELS, blog_drop, delta_per_seed

#: The blog's 6-bit pattern for the baseline, in accuracy points lost from float: the tail loses
#: at least ``TAIL_HIT`` while the head loses at most ``HEAD_SPARED`` (blog: 6.5 and 0.5).
TAIL_HIT, HEAD_SPARED = 5.0, 1.0
#: The bit-widths the chapter's tables show, and those of the blog's Figs. 7/8 (32 -> 8, 6).
SHOWN_BITS = ("8", "6", "4")
BLOG_BITS = ("8", "6")
#: The integer runtime's goal: its predictions agree with the simulation on this % of images.
INTEGER_GOAL = 99.5


# --------------------------------------------------------------------------- quantizer hypotheses


def hypothesis_drops(
    drops: pd.DataFrame, imbalance_factor: float, bits: Sequence[str] = SHOWN_BITS
) -> pd.DataFrame:
    """Per (variant, method, bits): head and tail drop from float (points), mean and 95% CI half
    width over seeds. ``drops``: :func:`ltmpq.frames.drop_frame` of every variant's sweeps."""
    d = drops[
        (drops["imbalance_factor"] == imbalance_factor)
        & drops["method"].isin(BLOG_MODELS)
        & drops["bits"].isin(bits)
        & drops["metric"].isin(["head", "tail"])
    ]
    if d.empty:
        raise ValueError(f"no sweeps at IF {imbalance_factor:g} and bits {list(bits)}")
    rows = []
    for (variant, method, b), g in d.groupby(["variant", "method", "bits"], sort=False):
        row = {"variant": variant, "method": method, "bits": b}
        for metric in ("head", "tail"):
            m, h, n = mean_ci(g.loc[g["metric"] == metric, "drop"].to_numpy(dtype=float))
            row |= {f"{metric}_drop": m, f"{metric}_ci": h, "n": n}
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(table: pd.DataFrame, variant: str, method: str, bits: str, metric: str) -> float:
    hit = table[(table["variant"] == variant) & (table["method"] == method) & (table["bits"] == bits)]
    return float(hit[f"{metric}_drop"].iloc[0]) if len(hit) else np.nan


def blog_distance(table: pd.DataFrame) -> pd.Series:
    """Per variant: the mean |our drop - the blog's drop| over the blog's Figs. 7/8 cells (head and
    tail of the baseline and cRT at 8 and 6 bits), in points."""
    out = {}
    for v in dict.fromkeys(table["variant"]):
        diffs = [
            abs(_cell(table, v, m, b, k) - blog_drop(m, k, int(b)))
            for m in BLOG_MODELS
            for b in BLOG_BITS
            for k in ("head", "tail")
        ]
        out[v] = float(np.nanmean(diffs)) if not np.all(np.isnan(diffs)) else np.nan
    return pd.Series(out, name="distance")


def blog_pattern(table: pd.DataFrame, bits: str = "6") -> pd.Series:
    """Per variant: does the baseline show the blog's pattern at ``bits`` (mean tail drop >=
    :data:`TAIL_HIT` while the mean head drop <= :data:`HEAD_SPARED`)?"""
    return pd.Series(
        {
            v: bool(
                _cell(table, v, "baseline", bits, "tail") >= TAIL_HIT
                and _cell(table, v, "baseline", bits, "head") <= HEAD_SPARED
            )
            for v in dict.fromkeys(table["variant"])
        },
        name="pattern",
    )


def hypothesis_table(table: pd.DataFrame, descriptions: Mapping[str, str]) -> pd.DataFrame:
    """The chapter's main table: per variant (closest to the blog first, the default on top), the
    head/tail drops (mean ± CI) of both models at each shown bit-width, the distance to the blog's
    cells and whether the baseline shows its 6-bit pattern; the blog's own row first."""
    dist, pat = blog_distance(table), blog_pattern(table)
    order = ["default"] + [v for v in dist.sort_values().index if v != "default"]
    present = set(table["bits"])  # most bits first, as the blog's figures read
    bits = [b for b in SHOWN_BITS if b in present] + sorted(present - set(SHOWN_BITS), key=int, reverse=True)
    cols = [(METHOD_LABELS[m], f"{b} bits") for m in BLOG_MODELS for b in bits]
    blog_row = {"what": "the blog's Figs. 7/8 (one run)"}
    for m in BLOG_MODELS:
        for b in bits:
            blog_row[(METHOD_LABELS[m], f"{b} bits")] = (
                f"{blog_drop(m, 'head', int(b)):.1f} / {blog_drop(m, 'tail', int(b)):.1f}"
                if b in BLOG_BITS
                else "–"
            )
    rows = {"blog": blog_row | {"distance to blog": 0.0, "blog's 6-bit pattern": "yes"}}
    for v in order:
        if v not in dist.index:
            continue
        default = "chapter 3's default quantizer (weights only)" if v == "default" else v
        row = {"what": descriptions.get(v, default)}
        for m in BLOG_MODELS:
            for b in bits:
                hit = table[(table["variant"] == v) & (table["method"] == m) & (table["bits"] == b)]
                row[(METHOD_LABELS[m], f"{b} bits")] = (
                    f"{pm(hit['head_drop'].iloc[0], hit['head_ci'].iloc[0])} / "
                    f"{pm(hit['tail_drop'].iloc[0], hit['tail_ci'].iloc[0])}"
                    if len(hit)
                    else "–"
                )
        rows[v] = row | {"distance to blog": dist[v], "blog's 6-bit pattern": "yes" if pat[v] else "no"}
    out = pd.DataFrame.from_dict(rows, orient="index")
    return out[["what", *cols, "distance to blog", "blog's 6-bit pattern"]]


def hypothesis_facts(table: pd.DataFrame) -> dict:
    """What the prose says of the hypotheses: how many, which reproduce the pattern, the closest
    one and its distance, the default's distance, and the largest baseline 6-bit tail drop."""
    dist, pat = blog_distance(table), blog_pattern(table)
    hyps = [v for v in dist.index if v != "default"]
    closest = dist[hyps].idxmin()
    base6 = table[(table["method"] == "baseline") & (table["bits"] == "6")].set_index("variant")
    worst = base6["tail_drop"].idxmax()
    yes = [v for v in hyps if pat[v]]
    base4 = table[(table["method"] == "baseline") & (table["bits"] == "4")].set_index("variant")
    worst4 = base4["tail_drop"].idxmax() if len(base4) else None
    return {
        "n_hypotheses": len(hyps),
        "pattern_variants": ", ".join(yes) if yes else f"none of the {len(hyps)}",
        "n_pattern": len(yes),
        "closest": closest,
        "closest_distance": f"{dist[closest]:.1f}",
        "default_distance": f"{dist['default']:.1f}",
        "worst6_tail": pm(base6.loc[worst, "tail_drop"], base6.loc[worst, "tail_ci"]),
        "worst6_head": pm(base6.loc[worst, "head_drop"], base6.loc[worst, "head_ci"]),
        "worst6_variant": worst,
        "worst4_variant": worst4 or "n/a",
        "worst4_tail": pm(base4.loc[worst4, "tail_drop"], base4.loc[worst4, "tail_ci"]) if worst4 else "n/a",
        "worst4_head": pm(base4.loc[worst4, "head_drop"], base4.loc[worst4, "head_ci"]) if worst4 else "n/a",
        "tail_hit": f"{TAIL_HIT:g}",
        "head_spared": f"{HEAD_SPARED:g}",
    }


def delta_by_imbalance(
    drops: pd.DataFrame, bits: Sequence[str] = ("6", "4"), method: str = "baseline"
) -> pd.DataFrame:
    """Per variant (rows; the chapter orders them) and (IF, bits) (columns, strongest imbalance first):
    Δ = tail drop − head drop of ``method``, mean ± 95% CI over seeds (points; chapter 3's Δ)."""
    d = delta_per_seed(drops)
    d = d[(d["method"] == method) & d["bits"].isin(bits)]
    rows: dict = {}
    for (v, f, b), g in d.groupby(["variant", "imbalance_factor", "bits"], sort=False):
        m, h, _ = mean_ci(g["delta"].to_numpy(dtype=float))
        rows.setdefault(v, {})[(f"IF {f:g}", f"{b} bits")] = pm(m, h)
    out = pd.DataFrame.from_dict(rows, orient="index")
    order = sorted(out.columns, key=lambda c: (float(c[0].split()[1]), -int(c[1].split()[0])))
    return out[order]


def claim3_by_variant(
    drops: pd.DataFrame, quant_bits: Sequence[int], variants: Sequence[str]
) -> pd.DataFrame:
    """Claim 3's verdict table under each quantizer ``variant`` (the rule of chapter 4), with a
    ``variant`` column."""
    return pd.concat(
        [claims.verdict_table(claims.claim3(drops, quant_bits, v)).assign(variant=v) for v in variants],
        ignore_index=True,
    )


def claim3_conditions(table: pd.DataFrame) -> dict[str, str]:
    """``claim3_conditions``: the (variant, bits) under which claim 3 holds for both models, and
    ``claim3_default``: its verdict under the default quantizer, for the verdict table's entry."""
    t = table.assign(bits=table["statement"].str.extract(r"at (\d+) bits", expand=False))
    held: dict[str, list[str]] = {}
    for (v, b), g in t.groupby(["variant", "bits"], sort=False):
        if verdicts.combine(g["verdict"]) == verdicts.SUPPORTED:
            held.setdefault(v, []).append(b)
    held = [f"{v} ({', '.join(bs)} bits)" for v, bs in held.items()]
    default = t[t["variant"] == "default"]
    by_bits = {b: verdicts.combine(g["verdict"]) for b, g in default.groupby("bits", sort=False)}
    return {
        "claim3_conditions": "; ".join(held) if held else "none of them",
        "claim3_default": ", ".join(f"{v} at {b} bits" for b, v in by_bits.items()),
    }


# --------------------------------------------------------------------------- the integer runtime


def integer_frame(eres: Mapping) -> pd.DataFrame:
    """Per (IF, seed, head): the integer runtime's agreement with the simulation (%), the same
    with the simulation fed the integer model's rounded input, both accuracies and the largest
    logit difference. ``eres``: ``{config: stored explain result}``."""
    rows = []
    for cfg, r in eres.items():
        for h, c in r["integer"].items():
            rows.append(
                {
                    "imbalance_factor": cfg.imbalance_factor,
                    "seed": cfg.seed,
                    "head": h,
                    "agreement": 100 * c["agreement"],
                    "rounded input": 100 * c["agreement_rounded_input"],
                    "simulated": 100 * c["sim_accuracy"],
                    "integer": 100 * c["int_accuracy"],
                    "max |Δ logit|": c["max_abs_logit_difference"],
                    "worst class Δ": 100 * np.nanmax(np.abs(c["per_class_difference"])),
                }
            )
    return pd.DataFrame(rows)


def integer_facts(frame: pd.DataFrame) -> dict:
    """The agreement the prose states, against :data:`INTEGER_GOAL`."""
    lo = frame["agreement"].min()
    return {
        "int_goal": f"{INTEGER_GOAL:g}",
        "int_agree_min": f"{lo:.2f}",
        "int_agree_mean": f"{frame['agreement'].mean():.2f}",
        "int_goal_met": "meets" if lo >= INTEGER_GOAL else "misses",
        "int_rounded_min": f"{frame['rounded input'].min():.2f}",
        "int_acc_diff": f"{(frame['integer'] - frame['simulated']).abs().max():.2f}",
        "int_class_diff": f"{frame['worst class Δ'].max():.1f}",
        "int_runs": len(frame[["imbalance_factor", "seed"]].drop_duplicates()),
        "int_conclusion": (
            "So the simulated numbers stand for what this deployed integer model does."
            if lo >= INTEGER_GOAL
            else "The gap is the input rounding that the simulation lacks: fed the same rounded "
            "image, the two agree beyond the goal."
            if frame["rounded input"].min() >= INTEGER_GOAL
            else "The kernels themselves compute something else than the simulation on some "
            "images: the table shows where."
        ),
    }


# --------------------------------------------------------------------------- the mechanism


def curvature_frame(eres: Mapping, default: Mapping, bits: Sequence[int]) -> pd.DataFrame:
    """Per (IF, seed, images, head, class): the stored curvature (trace, gradient norm², HAWQ term
    per bit-width), the class's training count, and its test-accuracy drop (points) at each of
    ``bits`` under the default quantizer (chapter 3's sweep of the same run). ``default``:
    ``{config: stored default sweep}``."""
    rows = []
    for cfg, r in eres.items():
        counts = np.asarray(r["train_counts"], dtype=float)
        entries = default[cfg]["entries"]
        for images, by_head in r["curvature"].items():
            for h, cols in by_head.items():
                f = np.asarray(entries[FLOAT]["methods"][h]["test"]["per_class"])
                c = pd.DataFrame(cols).assign(
                    imbalance_factor=cfg.imbalance_factor,
                    seed=cfg.seed,
                    images_from=images,
                    head=h,
                    train_count=counts,
                    neg_log_count=-np.log(counts),
                )
                for b in bits:
                    q = np.asarray(entries[str(b)]["methods"][h]["test"]["per_class"])
                    c[f"drop_{b}"] = 100 * (f - q)
                rows.append(c)
    return pd.concat(rows, ignore_index=True)


#: The per-class predictors of the drop, by label: curvature (Liu et al.) and training-set size.
def predictors(bits: int) -> dict[str, str]:
    return {
        "Hessian trace": "trace",
        "gradient norm²": "grad_norm2",
        "HAWQ term": f"hawq_{bits}",  # at the row's bit-width
        "−log(training count)": "neg_log_count",
    }


def mechanism_table(frame: pd.DataFrame, bits: Sequence[int], n_boot: int = 2000) -> pd.DataFrame:
    """Per (images, head, bits): each predictor's Spearman rho with the per-class drop over
    classes (mean over seeds, pigeonhole-bootstrap CI), its partial rho given the training count,
    and |rho| minus the training count's |rho| (:func:`ltmpq.fairness.compare_predictors`).
    A drop that is the same for every class of a seed (nothing to rank: a model too small, or a
    bit-width that changes nothing) gives NaN rows rather than an error."""
    out = []
    for (images, head), g in frame.groupby(["images_from", "head"], sort=False):
        for b in bits:
            target = f"drop_{b}"
            # nothing to rank (a drop equal for every class of a seed) or no interval (one seed)
            if (g.groupby("seed")[target].nunique() < 2).any() or g["seed"].nunique() < 2:
                t = pd.DataFrame(
                    {
                        "kind": "spearman",
                        "predictor": list(predictors(b)),
                        "versus": None,
                        "estimate": np.nan,
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                        "pvalue": np.nan,
                    }
                )
            else:
                t = fairness.compare_predictors(
                    g, target, predictors(b), control="−log(training count)",
                    reference="−log(training count)", n_boot=n_boot,
                )  # fmt: skip
            out.append(t.assign(images=images, head=head, bits=b))
    return pd.concat(out, ignore_index=True)


def mechanism_view(table: pd.DataFrame) -> pd.DataFrame:
    """The mechanism table as the chapter shows it: rows (images, head, bits, predictor),
    columns per kind of statistic as 'estimate [low, high]'."""
    t = table.assign(
        cell=[
            "–" if np.isnan(e) else f"{e:+.2f} [{lo:+.2f}, {hi:+.2f}]"
            for e, lo, hi in table[["estimate", "ci_low", "ci_high"]].itertuples(index=False)
        ]
    )
    t["head"] = t["head"].map(METHOD_LABELS)
    v = t.pivot_table(
        index=["images", "head", "bits", "predictor"],
        columns="kind",
        values="cell",
        aggfunc="first",
        sort=False,
    )
    return v.rename(
        columns={
            "spearman": "ρ with the drop",
            "partial": "partial ρ | count",
            "difference": "|ρ| − |ρ(count)|",
        }
    ).fillna("–")


def mechanism_facts(table: pd.DataFrame, head: str = "baseline", images: str = "val") -> dict:
    """The prose's numbers: at the fewest and the second-fewest bits, the trace's and the count's
    rho with the drop, the trace's partial rho and the paired difference, for one head."""
    d = table[(table["head"] == head) & (table["images"] == images)]
    out = {}
    for i, b in enumerate(sorted(d["bits"].unique())[:2]):  # the fewest and the second-fewest bits
        g = d[d["bits"] == b]

        def cell(kind: str, pred: str, g=g) -> str:
            r = g[(g["kind"] == kind) & (g["predictor"] == pred)]
            if r.empty or np.isnan(r["estimate"].iloc[0]):
                return "n/a"
            e, lo, hi = r[["estimate", "ci_low", "ci_high"]].iloc[0]
            return f"{e:+.2f} [{lo:+.2f}, {hi:+.2f}]"

        key = "lo" if i == 0 else "hi"
        out |= {
            f"mech_bits_{key}": int(b),
            f"mech_trace_{key}": cell("spearman", "Hessian trace"),
            f"mech_grad_{key}": cell("spearman", "gradient norm²"),
            f"mech_count_{key}": cell("spearman", "−log(training count)"),
            f"mech_partial_{key}": cell("partial", "Hessian trace"),
            f"mech_diff_{key}": cell("difference", "Hessian trace"),
        }
    return out
