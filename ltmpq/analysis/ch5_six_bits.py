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

from .. import claims, correlation, verdicts
from ..frames import delta_per_seed
from ..tables import pm
from ..uncertainty import mean_ci
from ..vocab import BLOG_MODELS, FLOAT, METHOD_LABELS
from .ch3_quantization import blog_drop

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
    and |rho| minus the training count's |rho| (:func:`ltmpq.correlation.compare_predictors`).
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
                t = correlation.compare_predictors(
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


# --------------------------------------------------------------------------- the scale ladder


def ladder_drops(qres: Mapping[str, Mapping]) -> pd.DataFrame:
    """:func:`ltmpq.frames.drop_frame` of every rung's sweeps, with a ``rung`` column (the ladder's
    order kept). ``qres``: ``{rung: {variant: {config: stored sweep}}}``."""
    from ..frames import drop_frame, quant_frame

    if not qres:
        raise ValueError("no rungs: the ladder's results are empty")
    return pd.concat(
        [drop_frame(quant_frame(by_variant)).assign(rung=rung) for rung, by_variant in qres.items()],
        ignore_index=True,
    )


def ladder_deltas(drops: pd.DataFrame, bits: Sequence[str] = ("6", "4")) -> pd.DataFrame:
    """Per (rung, variant, method, bits, seed): head and tail drop and Δ = tail − head (points)."""
    keep = drops["method"].isin(BLOG_MODELS) & drops["bits"].isin(bits)
    keep &= drops["metric"].isin(["head", "tail"])
    d = drops[keep]
    if d.empty:
        raise ValueError(f"the ladder has no sweeps at bits {list(bits)}")
    w = d.pivot_table(index=["rung", "variant", "method", "bits", "seed"], columns="metric", values="drop",
                      sort=False).reset_index()  # fmt: skip
    w = w.assign(delta=w["tail"] - w["head"])
    # the ladder's, the variants' and the methods' own order; most bits first, as the blog reads
    order = {k: {v: i for i, v in enumerate(dict.fromkeys(w[k]))} for k in ("rung", "variant", "method")}
    key = w[["rung", "variant", "method"]].apply(lambda c: c.map(order[c.name]))
    key["bits"] = -w["bits"].astype(int)
    return w.loc[key.sort_values(["variant", "method", "bits", "rung"], kind="stable").index].reset_index(
        drop=True
    )


def ladder_table(deltas: pd.DataFrame) -> pd.DataFrame:
    """The chapter's ladder table: rows (quantizer, model, bits), columns per rung: head / tail
    drop and Δ, each mean ± 95% CI over seeds."""
    rows: dict = {}
    for (r, v, m, b), g in deltas.groupby(["rung", "variant", "method", "bits"], sort=False):
        cells = [pm(*mean_ci(g[k].to_numpy(dtype=float))[:2]) for k in ("head", "tail", "delta")]
        row = rows.setdefault((v, METHOD_LABELS[m], f"{b} bits"), {})
        row[(r, "head / tail")] = f"{cells[0]} / {cells[1]}"
        row[(r, "Δ")] = cells[2]
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = out.index.set_names(["quantizer", "model", "bits"])
    return out


def ladder_trend(deltas: pd.DataFrame, base: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per (variant, method, bits, rung other than ``base``): Δ of the rung minus Δ of ``base``
    with a Welch 95% interval over seeds (scipy's ``ttest_ind``), and the word for it: ``grows``
    or ``shrinks`` when the interval excludes 0, else ``no detectable change``."""
    from scipy import stats

    if base not in set(deltas["rung"]):
        have = list(dict.fromkeys(deltas["rung"]))
        raise ValueError(f"base rung {base!r} not in the ladder's rungs {have}")
    rows = []
    for (v, m, b), g in deltas.groupby(["variant", "method", "bits"], sort=False):
        ref = g.loc[g["rung"] == base, "delta"].to_numpy(dtype=float)
        for r in dict.fromkeys(g["rung"]):
            if r == base:
                continue
            x = g.loc[g["rung"] == r, "delta"].to_numpy(dtype=float)
            diff = float(x.mean() - ref.mean())
            if min(len(x), len(ref)) < 2 or (np.var(x) == 0 and np.var(ref) == 0):
                lo = hi = np.nan
            else:
                ci = stats.ttest_ind(x, ref, equal_var=False).confidence_interval(confidence)
                lo, hi = float(ci.low), float(ci.high)
            word = "grows" if lo > 0 else "shrinks" if hi < 0 else "no detectable change"
            rows.append({"variant": v, "method": m, "bits": b, "rung": r, "base_delta": float(ref.mean()),
                         "rung_delta": float(x.mean()), "difference": diff, "ci_low": lo, "ci_high": hi,
                         "change": word})  # fmt: skip
    cols = ["variant", "method", "bits", "rung", "base_delta", "rung_delta", "difference",
            "ci_low", "ci_high", "change"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)  # no rung but the first: no rows, the same columns


def ladder_facts(trend: pd.DataFrame, variants: Sequence[str], method: str = "baseline") -> dict:
    """The prose's sentence per ladder variant (``ladder_trend_0``, ``ladder_trend_1``, ...): for
    ``method``, at each bit-width and rung, Δ at the base and at the rung and the change."""
    out = {}
    for i, v in enumerate(variants):
        t = trend[(trend["variant"] == v) & (trend["method"] == method)]
        parts = [
            f"at {r.bits} bits, {r.rung}: Δ {r.base_delta:+.1f} → {r.rung_delta:+.1f} ({r.change}; "
            f"difference {r.difference:+.1f}"
            + ("" if np.isnan(r.ci_low) else f" [{r.ci_low:+.1f}, {r.ci_high:+.1f}]")
            + ")"
            for r in t.itertuples(index=False)
        ]
        out[f"ladder_trend_{i}"] = (
            "; ".join(parts) if parts else "nothing to compare (no wider rung computed)"
        )
    changes = trend.loc[trend["method"] == method, "change"]
    n = int((changes != "no detectable change").sum())
    out["ladder_detected"] = "none" if n == 0 else str(n)
    out["ladder_cells"] = len(changes)
    out["ladder_comparison"] = (
        f"Of {len(changes)} comparisons, {out['ladder_detected']} show a change the seeds can detect."
        if len(changes)
        else "With no wider rung computed there is no comparison yet."
    )
    return out


def ladder_models(
    s1res: Mapping[str, Mapping], rungs: Mapping[str, object], missing: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per rung (``rungs``: name -> one of its stage-1 configs, the first rung first): the model's
    shape (width, fully connected width, dropout, parameters), its forward multiply-accumulates per
    image and their ratio to the first rung's, the first rung's recorded training time scaled by
    that ratio (what the rung should cost on the machine the first rung trained on), and for a
    computed rung (in ``s1res``) its float test accuracy (overall / head / tail, mean ± CI over
    seeds) and recorded training time; a rung in ``missing`` says what is missing instead."""
    from ..models import VGG16

    missing = missing or {}
    first = next(iter(rungs))
    if first not in s1res:
        raise ValueError(f"the first rung {first!r} has no stage-1 results; it anchors the cost scale")
    base_seconds = float(np.mean([r["train_seconds"] for r in s1res[first].values()]))
    base_macs = None
    rows = []
    for rung, c0 in rungs.items():
        model = VGG16(width=c0.width, hidden=c0.hidden, dropout=c0.dropout)
        macs = model.macs_per_image()
        base_macs = base_macs or macs
        row = {
            "rung": rung,
            "width": f"{c0.width:g}",
            "L14/L15 width": model.feature_dim,
            "dropout": f"{c0.dropout:g}",
            "parameters (M)": sum(p.numel() for p in model.parameters()) / 1e6,
            "MMAC / image": macs / 1e6,
            "× first rung": macs / base_macs,
            "projected min / model": base_seconds * macs / base_macs / 60,
        }
        by_cfg = s1res.get(rung)
        if by_cfg:
            cfgs = list(by_cfg)
            for k in ("overall", "head", "tail"):
                row[f"float {k}"] = pm(*mean_ci([100 * by_cfg[c]["test"]["metrics"][k] for c in cfgs])[:2])
            row["trained min / model"] = float(np.mean([by_cfg[c]["train_seconds"] for c in cfgs])) / 60
            row["status"] = f"{len(cfgs)} seeds"
        else:
            row["status"] = missing.get(rung, "not computed")
        rows.append(row)
    return pd.DataFrame(rows).set_index("rung")


def ladder_summary(trend: pd.DataFrame, missing: Mapping[str, str], base: str) -> str:
    """One sentence on what the ladder can say: which rungs are missing, or that it has nothing
    but the first rung to compare."""
    if trend.empty:
        gone = ", ".join(missing) if missing else "none beyond the first"
        return (
            f"Only the first rung ({base}) is computed here (missing: {gone}), so this version of the "
            "chapter cannot say whether the asymmetry grows or shrinks with scale."
        )
    if missing:
        return f"Computed rungs are compared with the first ({base}); not computed: {', '.join(missing)}."
    return f"Every rung is computed; each is compared with the first ({base})."


def ladder_variant_check(closest: str, variants: Sequence[str]) -> str:
    """Whether the ladder ran the hypothesis that is closest to the blog (the profile fixes it
    before the results exist; this says whether the results still agree)."""
    hyps = [v for v in variants if v != "default"]
    if closest in hyps:
        return f"the ladder's hypothesis, {closest}, is the closest to the blog's cells in the table above"
    return (
        f"the ladder ran {', '.join(hyps) or 'no hypothesis'}, but the closest to the blog's cells above is "
        f"now {closest}: set the profile's ladder_variants to include it and rerun --stage ladder"
    )
