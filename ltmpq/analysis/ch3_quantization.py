"""Chapter 3: do fewer weight bits hurt the tail more than the head?

Accuracy against bit-width beside the blog's Figs. 7/8, the paired drop-gap tests, which classes
and which images change, compression-identified exemplars, and the quantizer ablations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .. import blog, verdicts
from ..config import QuantConfig
from ..frames import cost_frame, delta_per_seed, quant_per_class, quant_predictions, summarize
from ..tables import pm, wide
from ..uncertainty import benjamini_hochberg, mean_ci, paired_drop_gap, per_class_mcnemar
from ..vocab import BLOG_MODELS, CLASSES, FLOAT, METHOD_LABELS, METHODS

#: The two models the blog quantizes (and chapter 3's per-class and flip analyses show).
#: Significance level of the paired tests, after Benjamini-Hochberg.
ALPHA = 0.05


def setup_facts(qcfg: QuantConfig, s1: dict, qbits: Sequence[str], n_variants: int, n_boot: int) -> dict:
    """The default quantizer and the sweep, as the method section states them."""
    first = next(iter(s1.values()))
    return {
        "bits_list": ", ".join(qbits),
        "n_seeds": len({c.seed for c in s1}),
        "if_lo": f"{min(c.imbalance_factor for c in s1):g}",
        "n_test_class": f"{len(first['test_labels']) // len(first['train_counts']):,}",
        "granularity": "one scale per output channel"
        if qcfg.granularity == "channel"
        else "one scale per layer",
        "clipping": "the largest magnitude" if qcfg.clipping == "minmax" else "an MSE-optimal clipping",
        "n_variants": n_variants,
        "n_boot": n_boot,
        "calib_size": qcfg.calibration_size,
        "much_more": f"{verdicts.MUCH_MORE:g}",
    }


def blog_bits(qbits: Sequence[str]) -> str:
    """The blog's 6 bits, or the middle of the swept bit-widths when 6 was not run."""
    return "6" if "6" in qbits else qbits[len(qbits) // 2]


def blog_if(ifs: Sequence[float]) -> float:
    """The blog's IF 0.01, or the strongest imbalance run when 0.01 was not."""
    return 0.01 if 0.01 in ifs else min(ifs)


# --------------------------------------------------------------------------- accuracy against bits


def accuracy_summary(frame: pd.DataFrame, variant: str = "default") -> pd.DataFrame:
    """Mean ± CI over seeds per (IF, method, bits, metric) of one quantizer variant (test split)."""
    d = frame[frame["variant"] == variant].assign(split="test")
    return summarize(d, by=("imbalance_factor", "method", "bits", "split", "metric"))


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows (IF, method, bits), columns overall | head | tail | worst_class, 'mean ± CI'."""
    labelled = summary.assign(method=summary["method"].map(METHOD_LABELS))
    return wide(
        labelled, ["overall", "head", "tail", "worst_class"], index=("imbalance_factor", "method", "bits")
    )


def fig78_table(summary: pd.DataFrame, imbalance_factor: float) -> pd.DataFrame:
    """The blog's Figs. 7/8 cells: blog, ours (mean ± CI) and ours - blog."""
    cell = summary[summary["imbalance_factor"] == imbalance_factor].set_index(["method", "bits", "metric"])
    rows = []
    for (method, b), published in blog.FIG7_8.items():
        key = FLOAT if b == 32 else str(b)
        for metric in ("head", "tail"):
            have = (method, key, metric) in cell.index
            mean, ci = cell.loc[(method, key, metric), ["mean", "ci"]] if have else (np.nan, np.nan)
            rows.append(
                {
                    "model": METHOD_LABELS[method],
                    "bits": "float (32)" if b == 32 else str(b),
                    "metric": metric,
                    "blog": published[metric],
                    "ours": pm(mean, ci) if have else "—",
                    "difference": mean - published[metric],
                }
            )
    return pd.DataFrame(rows).set_index(["model", "metric", "bits"])


def blog_drop(method: str, metric: str, bits: int = 6) -> float:
    """The blog's drop from 32 to ``bits`` bits (Figs. 7/8, IF 0.01), in points."""
    return blog.FIG7_8[(method, 32)][metric] - blog.FIG7_8[(method, bits)][metric]


def drop_facts(drops: pd.DataFrame, qbits: Sequence[str], f_blog: float) -> dict:
    """Our drops at the blog's bit-width beside its own, the largest mean drops over models, and
    the largest tail drop at that bit-width over every quantizer variant."""
    b6 = blog_bits(qbits)
    dd = drops[(drops["variant"] == "default") & (drops["imbalance_factor"] == f_blog)]
    out: dict = {"b6": b6, "f_blog": f"{f_blog:g}"}
    for m in BLOG_MODELS:
        for k in ("head", "tail"):
            vals = dd[(dd["method"] == m) & (dd["metric"] == k) & (dd["bits"] == b6)]["drop"].to_numpy()
            mean, half, _ = mean_ci(vals)
            out[f"drop6_{m}_{k}"] = pm(mean, half)
            out[f"blog_drop6_{m}_{k}"] = f"{blog_drop(m, k):.1f}"
    mean_drop = (
        drops[(drops["variant"] == "default") & (drops["metric"] == "overall")]
        .groupby(["imbalance_factor", "method", "bits"])["drop"]
        .mean()
    )
    out["max_drop_8"] = f"{mean_drop.xs('8', level='bits').max():.1f}" if "8" in qbits else "n/a"
    out["max_drop_b6"] = f"{mean_drop.xs(b6, level='bits').max():.1f}"
    tail6 = (
        drops[
            (drops["imbalance_factor"] == f_blog)
            & (drops["metric"] == "tail")
            & (drops["bits"] == b6)
            & drops["method"].isin(BLOG_MODELS)
        ]
        .groupby(["variant", "method"])["drop"]
        .mean()
    )
    worst = tail6.idxmax()
    out["worst6_drop"] = f"{tail6.max():.1f}"
    out["worst6_where"] = f"{worst[0]}, {METHOD_LABELS[worst[1]]}"
    return out


# --------------------------------------------------------------------------- paired drop-gap tests


def reading(ci_low: float, ci_high: float, much_more: float = verdicts.MUCH_MORE) -> str:
    """What a two-sided 95% interval of Δ = tail drop - head drop says, in words that name both
    directions and the practical threshold (claim 3's "much more"): ``tail pays ≥ 1 point more``
    (the interval above the threshold), ``tail pays more, < 1 point`` (above 0, below the
    threshold), ``tail pays more`` (above 0, the threshold inside), ``head pays more`` (below 0),
    ``no detectable difference`` (0 inside)."""
    if np.isnan(ci_low) or np.isnan(ci_high):
        return "no interval"
    if ci_low > much_more:
        return f"tail pays ≥ {much_more:g} point more"
    if ci_low > 0:
        return f"tail pays more, < {much_more:g} point" if ci_high < much_more else "tail pays more"
    return "head pays more" if ci_high < 0 else "no detectable difference"


def paired_tests(default: dict, s1: dict, qbits: Sequence[str], head, tail, n_boot: int) -> pd.DataFrame:
    """Δ = tail drop - head drop from float to each bit-width, per IF and method, by the paired
    bootstrap over test images (:func:`ltmpq.uncertainty.paired_drop_gap`): two-sided 95% interval
    and p-value, Benjamini-Hochberg over the whole family (``q``), and the interval in words
    (:func:`reading`)."""
    rows = []
    for f in sorted({c.imbalance_factor for c in default}, reverse=True):
        for m in METHODS:
            labels, ref = quant_predictions(default, s1, f, m, FLOAT)
            for b in qbits:
                _, new = quant_predictions(default, s1, f, m, b)
                res = paired_drop_gap(labels, ref == labels, new == labels, head, tail, n_boot=n_boot, seed=0)
                rows.append({"imbalance_factor": f, "method": m, "bits": b, **res})
    paired = pd.DataFrame(rows)
    paired["q"] = benjamini_hochberg(paired["pvalue_two_sided"])
    paired["reading"] = [reading(lo, hi) for lo, hi in zip(paired["ci_low"], paired["ci_high"], strict=True)]
    paired["survives BH"] = np.where(paired["q"] < ALPHA, "yes", "no")
    return paired


def paired_table(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired tests as the chapter tabulates them."""
    shown = paired.assign(method=paired["method"].map(METHOD_LABELS))
    shown = shown.set_index(["imbalance_factor", "method", "bits"])
    cols = {
        "drop_high": "head drop",
        "drop_low": "tail drop",
        "estimate": "Δ",
        "ci_low": "Δ low",
        "ci_high": "Δ high",
        "pvalue_two_sided": "p (two-sided)",
        "q": "q (BH)",
        "reading": "the 95% interval says",
        "survives BH": "q < 0.05",
    }
    return shown[list(cols)].rename(columns=cols)


def paired_facts(paired: pd.DataFrame, qbits: Sequence[str]) -> dict:
    """How the paired comparisons read (tail more, head more, no difference; after BH), where the
    tail first pays more, and Δ at the blog's and at our lowest bit-width for the baseline and cRT."""
    f_lo, b6, lowest = min(paired["imbalance_factor"]), blog_bits(qbits), qbits[-1]
    sig = paired[paired["q"] < ALPHA]
    tail_sig, head_sig = sig[sig["estimate"] > 0], sig[sig["estimate"] < 0]
    much_more = int((paired["ci_low"] > verdicts.MUCH_MORE).sum())
    out: dict = {"n_tests": len(paired), "n_sig": len(tail_sig), "n_sig_head": len(head_sig),
                 "n_much_more": much_more, "lowest_bits": lowest}  # fmt: skip
    for m in BLOG_MODELS:
        at = paired[(paired["imbalance_factor"] == f_lo) & (paired["method"] == m)].set_index("bits")
        r, r6 = at.loc[lowest], at.loc[b6]
        out[f"delta_low_{m}"] = f"{r['estimate']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]"
        out[f"q_low_{m}"] = f"{r['q']:.3g}"
        out[f"delta_b6_{m}"] = f"{r6['estimate']:.1f} [{r6['ci_low']:.1f}, {r6['ci_high']:.1f}]"
    sig_bits = sorted({int(b) for b in tail_sig["bits"]}, reverse=True)
    first = max(sig_bits) if sig_bits else None
    out["sig_bits"] = ", ".join(map(str, sig_bits)) if sig_bits else "none"
    out["first_sig_bits"] = f"{first} bits" if first else "no bit-width tested"
    out["first_sig_max"] = (
        f"{tail_sig[tail_sig['bits'] == str(first)]['estimate'].max():.1f}" if first else "–"
    )
    rng = paired.groupby("bits")["estimate"].agg(["min", "max"])
    out["delta_range_table"] = ", ".join(
        f"{b} bits {rng.loc[b, 'min']:+.1f} to {rng.loc[b, 'max']:+.1f}" for b in qbits
    )
    return out


def seed_deltas(drops: pd.DataFrame, variant: str = "default") -> pd.DataFrame:
    """Δ = tail drop - head drop per (IF, method, bits): mean, two-sided 95% t-interval over seeds
    (one trained model per seed) and the interval in words (:func:`reading`): the chapter's headline."""
    d = delta_per_seed(drops)
    d = d[d["variant"] == variant]
    rows = []
    for (f, m, b), g in d.groupby(["imbalance_factor", "method", "bits"], sort=False):
        mean, half, n = mean_ci(g["delta"].to_numpy())
        lo, hi = mean - half, mean + half
        rows.append({"imbalance_factor": f, "method": m, "bits": b, "delta": mean, "ci_low": lo,
                     "ci_high": hi, "n": n, "reading": reading(lo, hi)})  # fmt: skip
    return pd.DataFrame(rows)


def seed_delta_facts(deltas: pd.DataFrame, qbits: Sequence[str]) -> dict:
    """The headline numbers: Δ over seeds for the baseline and cRT at the strongest imbalance, at
    every swept bit-width (and the lowest again as ``low``), with its interval and its reading."""
    f_lo = min(deltas["imbalance_factor"])
    out = {}
    # every swept bit-width by name, and the lowest also as "low" so prose reads on any profile
    for b, name in [*((b, b) for b in qbits), (qbits[-1], "low")]:
        for m in BLOG_MODELS:
            r = deltas[(deltas["imbalance_factor"] == f_lo) & (deltas["method"] == m) & (deltas["bits"] == b)]
            if r.empty:
                continue
            r = r.iloc[0]
            out[f"seed_delta_{m}_{name}"] = f"{r['delta']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
            out[f"seed_reading_{m}_{name}"] = r["reading"]
    return out


# --------------------------------------------------------------------------- which classes, which images


def per_class_change(default: dict, imbalance_factor: float) -> pd.DataFrame:
    """Per run, method, bit-width and class: accuracy, its float accuracy and the change (points)."""
    pcq = quant_per_class(default)
    pcq = pcq[pcq["imbalance_factor"] == imbalance_factor]
    ref = pcq[pcq["bits"] == FLOAT].set_index(["seed", "method", "class"])["accuracy"]
    pcq = pcq.join(ref.rename("float"), on=["seed", "method", "class"])
    return pcq.assign(change=pcq["accuracy"] - pcq["float"])


def change_grid(change: pd.DataFrame, method: str, qbits: Sequence[str]) -> pd.DataFrame:
    """Seed-mean change from float: bit-widths (rows) x classes (columns), one method."""
    h = change[(change["method"] == method) & (change["bits"] != FLOAT)]
    return h.groupby(["bits", "class"])["change"].mean().unstack("class").reindex(list(qbits))


def class_drop_tests(
    default: dict,
    s1: dict,
    imbalance_factor: float,
    qbits: Sequence[str],
    methods: Sequence[str] = BLOG_MODELS,
) -> pd.DataFrame:
    """Per method, bit-width, seed and class: an exact McNemar test of float against quantized;
    BH within each (method, seed) over classes x bit-widths. ``dropped``: q < 0.05 and more
    images lost than gained."""
    frames = []
    for m in methods:
        labels, ref = quant_predictions(default, s1, imbalance_factor, m, FLOAT)
        for b in qbits:
            _, new = quant_predictions(default, s1, imbalance_factor, m, b)
            t = per_class_mcnemar(labels, ref == labels, new == labels, len(CLASSES))
            frames.append(t.rename(columns={"run": "seed_index"}).assign(method=m, bits=b))
    mc = pd.concat(frames, ignore_index=True)
    mc["q"] = mc.groupby(["method", "seed_index"])["pvalue"].transform(benjamini_hochberg)
    mc["dropped"] = (mc["q"] < ALPHA) & (mc["a_only"] > mc["b_only"])
    return mc


def class_drop_counts(mc: pd.DataFrame, qbits: Sequence[str], n_seeds: int) -> pd.DataFrame:
    """In how many seeds each class dropped significantly: (method, bits) x class, as 'k/n'."""
    methods = list(dict.fromkeys(mc["method"]))
    counts = mc.groupby(["method", "bits", "class"])["dropped"].sum().unstack("class")
    counts = counts.reindex(pd.MultiIndex.from_product([methods, list(qbits)]))
    counts.index = counts.index.set_levels(
        [counts.index.levels[0].map(METHOD_LABELS), counts.index.levels[1]]
    )
    return counts.astype(str) + f"/{n_seeds}"


def flips(
    default: dict,
    s1: dict,
    imbalance_factor: float,
    qbits: Sequence[str],
    head,
    tail,
    methods: Sequence[str] = BLOG_MODELS,
) -> pd.DataFrame:
    """Per method, bit-width and group, pooled over seeds: float accuracy, absolute and relative
    drop, the share of images whose prediction flips, of correct ones that become wrong (c→w)
    and of wrong ones that become right (w→c)."""
    rows = []
    for m in methods:
        labels, ref = quant_predictions(default, s1, imbalance_factor, m, FLOAT)
        for b in qbits:
            _, new = quant_predictions(default, s1, imbalance_factor, m, b)
            for g, classes in (("head", head), ("tail", tail)):
                mask = np.isin(labels, classes)
                ok_f, ok_q = ref[:, mask] == labels[mask], new[:, mask] == labels[mask]
                acc_f, acc_q = 100 * ok_f.mean(), 100 * ok_q.mean()
                rows.append(
                    {
                        "method": METHOD_LABELS[m],
                        "bits": b,
                        "group": g,
                        "float": acc_f,
                        "abs. drop": acc_f - acc_q,
                        "rel. drop %": 100 * (acc_f - acc_q) / acc_f if acc_f else np.nan,
                        "flipped %": 100 * (ref[:, mask] != new[:, mask]).mean(),
                        "c→w %": 100 * (ok_f & ~ok_q).sum() / ok_f.sum() if ok_f.any() else np.nan,
                        "w→c %": 100 * (~ok_f & ok_q).sum() / max(1, (~ok_f).sum()),
                    }
                )
    return pd.DataFrame(rows).set_index(["method", "bits", "group"])


def flip_facts(table: pd.DataFrame, bits: str) -> dict:
    """The flips table at one bit-width, for the prose; is the tail's correct set more fragile?"""
    out: dict = {}
    by_model = {m: table.xs((METHOD_LABELS[m], bits), level=("method", "bits")) for m in BLOG_MODELS}
    for m, ff in by_model.items():
        for g in ("head", "tail"):
            out[f"cw_{m}_{g}"] = f"{ff.loc[g, 'c→w %']:.1f}"
            out[f"rel_{m}_{g}"] = f"{ff.loc[g, 'rel. drop %']:.1f}"
            out[f"abs_{m}_{g}"] = f"{ff.loc[g, 'abs. drop']:.1f}"
            out[f"flip_{m}_{g}"] = f"{ff.loc[g, 'flipped %']:.1f}"
    base = by_model["baseline"]
    fragile = base.loc["tail", "c→w %"] > base.loc["head", "c→w %"]
    out["fragile_word"] = "more" if fragile else "less"
    out["fragile_reading"] = (
        "the tail's larger loss is not only its lower starting point"
        if fragile
        else "the tail's larger absolute loss, where there is one, comes from where it started"
    )
    return out


def exemplars(default: dict, s1: dict, imbalance_factor: float, bits: str, method: str = "baseline") -> dict:
    """Compression-identified exemplars (Hooker et al.): test images whose most common prediction
    over the seeds' float models differs from that of their quantized versions.

    Returns ``positions`` (into the stored test split), ``float`` and ``quantized`` modal
    predictions and ``labels``, all over the stored test split.
    """
    labels, ref = quant_predictions(default, s1, imbalance_factor, method, FLOAT)
    _, new = quant_predictions(default, s1, imbalance_factor, method, bits)
    mode_f, mode_q = sps.mode(ref, axis=0).mode, sps.mode(new, axis=0).mode
    return {
        "positions": np.flatnonzero(mode_f != mode_q),
        "float": mode_f,
        "quantized": mode_q,
        "labels": labels,
    }


def exemplar_table(default: dict, s1: dict, imbalance_factor: float, qbits: Sequence[str], head, tail):
    """CIEs per class at each bit-width (baseline), with the head and tail totals."""
    rows = []
    for b in qbits:
        ex = exemplars(default, s1, imbalance_factor, b)
        cie = np.zeros(len(ex["labels"]), bool)
        cie[ex["positions"]] = True
        rows += [
            {"bits": b, "class": c, "CIEs": int(cie[ex["labels"] == c].sum())} for c in range(len(CLASSES))
        ]
    t = pd.DataFrame(rows).pivot_table(index="bits", columns="class", values="CIEs").reindex(list(qbits))
    t["head"] = t[list(head)].sum(axis=1)
    t["tail"] = t[list(tail)].sum(axis=1)
    return t


def exemplar_facts(ex: dict, bits: str, tail) -> dict:
    """How many CIEs there are at ``bits``, which share is from the tail, and the tail's share of
    the test set."""
    labels, idx = ex["labels"], ex["positions"]
    return {
        "cie_bits": bits,
        "cie_n": len(idx),
        "cie_tail_share": f"{100 * np.isin(labels[idx], list(tail)).mean():.0f}" if len(idx) else "n/a",
        "tail_share_test": f"{100 * np.isin(labels, list(tail)).mean():.0f}",
    }


def exemplar_picks(ex: dict, n: int = 8, seed: int = 0) -> np.ndarray:
    """The CIEs shown as images: up to ``n`` positions drawn without replacement."""
    idx = ex["positions"]
    return np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False) if len(idx) else idx


# --------------------------------------------------------------------------- ablations


def ablations(drops: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Per variant, IF, method and bits: Δ's mean ± CI over seeds, who pays (``tail``, ``head``
    or ``–`` when the interval contains 0), and whether that differs from the default quantizer."""
    rows = []
    keys = ["variant", "imbalance_factor", "method", "bits"]
    for key, g in delta_per_seed(drops).groupby(keys, sort=False):
        mean, half, _ = mean_ci(g["delta"].to_numpy())
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "delta": mean,
                "ci": half,
                "conclusion": verdicts.side(mean, half, positive="tail", negative="head"),
            }
        )
    abl = pd.DataFrame(rows)
    ref = abl[abl["variant"] == "default"].set_index(["imbalance_factor", "method", "bits"])["conclusion"]
    abl["changed"] = [
        ref.get((f, m, b)) != w
        for f, m, b, w in abl[["imbalance_factor", "method", "bits", "conclusion"]].itertuples(index=False)
    ]
    abl["cell"] = [
        f"{pm(d, c)} {w}{' ★' if ch else ''}"
        for d, c, w, ch in abl[["delta", "ci", "conclusion", "changed"]].itertuples(index=False)
    ]
    abl["mark"] = [
        f"{d:+.1f}{'' if w == '–' else '*'}{'★' if ch else ''}"
        for d, w, ch in abl[["delta", "conclusion", "changed"]].itertuples(index=False)
    ]
    abl["variant"] = pd.Categorical(abl["variant"], categories=list(variants), ordered=True)
    abl["column"] = [
        f"IF {f:g}\n{b}-bit" for f, b in abl[["imbalance_factor", "bits"]].itertuples(index=False)
    ]
    return abl


#: Variants that equal the default quantizer by construction (per-channel min-max scales move with
#: BatchNorm's per-channel factor): run and checked (``bn_same``), left out of tables and figures.
SAME_AS_DEFAULT = ("BN not folded",)


def variant_label(name: str) -> str:
    """A quantizer variant as the chapter writes it out (its config name abbreviates)."""
    return (
        name.replace("act.", "activations")
        .replace("LT calib.", "long-tailed calibration")
        .replace("calib.", "calibration")
    )


def shown_variants(names: Sequence[str]) -> list[str]:
    """The quantizer variants a table or figure shows: all but :data:`SAME_AS_DEFAULT`."""
    return [v for v in names if v not in SAME_AS_DEFAULT]


def ablation_grid(abl: pd.DataFrame, method: str, ifs: Sequence[float], qbits: Sequence[str]):
    """One model's ablation heatmap: Δ and its cell mark, variants (rows) x (IF, bits) columns."""
    columns = [f"IF {f:g}\n{b}-bit" for f in ifs for b in qbits]
    sub = abl[abl["method"] == method]
    return tuple(sub.pivot_table(index="variant", columns="column", values=k, aggfunc="first",
                                 observed=True)[columns] for k in ("delta", "mark"))  # fmt: skip


def ablation_table(abl: pd.DataFrame) -> pd.DataFrame:
    """Rows (method, variant), columns (IF, bits) from the mildest IF and most bits: 'Δ ± CI who'."""
    full = abl.assign(method=abl["method"].map(METHOD_LABELS)).pivot_table(
        index=["method", "variant"],
        columns=["imbalance_factor", "bits"],
        values="cell",
        aggfunc="first",
        observed=True,
    )
    return full.reindex(columns=sorted(full.columns, key=lambda c: (-c[0], -int(c[1]))))


def variant_accuracy(frame: pd.DataFrame, imbalance_factor: float, methods: Sequence[str] = BLOG_MODELS):
    """Overall, head and tail accuracy of every variant at one IF (rows of the long frame)."""
    return frame[
        (frame["imbalance_factor"] == imbalance_factor)
        & frame["method"].isin(list(methods))
        & frame["metric"].isin(["overall", "head", "tail"])
    ]


def variant_accuracy_table(acc: pd.DataFrame, bits: Sequence[str]) -> pd.DataFrame:
    """Seed means: rows (variant, method, metric), columns bit-widths from float down."""
    t = acc.groupby(["variant", "method", "metric", "bits"], sort=False)["value"].mean().unstack("bits")
    return t[list(bits)].rename(index=METHOD_LABELS, level="method")


def ablation_facts(frame: pd.DataFrame, abl: pd.DataFrame, variants: Sequence[str]) -> dict:
    """Which quantizer choice moves tail accuracy most (mean absolute change against the default
    over IFs, methods and quantized bit-widths, of seed means), which change a conclusion, and
    how close folding BatchNorm is to not folding it."""
    tail_means = (
        frame[(frame["metric"] == "tail") & (frame["bits"] != FLOAT)]
        .groupby(["variant", "imbalance_factor", "method", "bits"])["value"]
        .mean()
    )
    ref = tail_means.xs("default", level="variant")
    effect = {
        v: float((tail_means.xs(v, level="variant") - ref).abs().mean()) for v in variants if v != "default"
    }
    if not effect:
        keys = ("top_variant", "top_effect", "n_changed_variants", "changed_variants", "bn_same")
        return dict.fromkeys(keys, "no variant beside the default was run")
    changed = abl[abl["variant"] != "default"].groupby("variant", observed=False)["changed"].sum()
    top = max(effect, key=effect.get)
    return {
        "top_variant": variant_label(top),
        "top_effect": f"{effect[top]:.1f}",
        "n_changed_variants": int((changed > 0).sum()),
        "changed_variants": ", ".join(f"{variant_label(v)} ({n} cells)" for v, n in changed.items() if n)
        or "none of them",
        "bn_same": f"{effect['BN not folded']:.2f}" if "BN not folded" in effect else "not measured",
    }


def calibration_counts(qres: dict[str, dict]) -> pd.DataFrame | None:
    """Calibration images per class of the activation variants (first seed), or None."""
    rows = [
        {
            "calibration": r["quant"]["calibration"],
            "imbalance_factor": c.imbalance_factor,
            "seed": c.seed,
            **{str(k): n for k, n in enumerate(r["calibration_counts"])},
        }
        for by_cfg in qres.values()
        for c, r in by_cfg.items()
        if r.get("calibration_counts")
    ]
    if not rows:
        return None
    cal = pd.DataFrame(rows)
    first = cal[cal["seed"] == cal["seed"].min()].drop(columns="seed")
    return first.set_index(["calibration", "imbalance_factor"])


def cost(qres: dict[str, dict]) -> tuple[pd.DataFrame, dict]:
    """Wall time of every sweep (table per variant) and the totals the prose states."""
    wall = cost_frame(qres).rename(columns={"group": "variant"})
    facts = {
        "wall_min": f"{wall['seconds'].sum() / 60:.0f}",
        "wall_default_min": f"{wall[wall['variant'] == 'default']['seconds'].sum() / 60:.1f}",
        "n_sweeps": len(wall),
        "threads": ", ".join(map(str, sorted(wall["threads"].unique()))),
    }
    table = wall.groupby("variant", sort=False)["seconds"].agg(["count", "sum", "mean"])
    return table.rename(columns={"count": "runs", "sum": "total (s)", "mean": "per run (s)"}), facts


def clipping_facts(profiles: Sequence[dict], frame: pd.DataFrame, imbalance_factor: float, bits: str) -> dict:
    """Why MSE clipping loses more than min-max at few bits, for the prose: over the models of
    ``profiles`` (each :func:`ltmpq.quantization.clipping_profile`, layer -> alpha and relative weight
    errors), the mean clipping ratio the MSE search picks, both weight errors, and the baseline's
    tail accuracy at ``bits`` under each clipping (mean over seeds, at ``imbalance_factor``)."""
    cells = [v for p in profiles for v in p.values()]
    tail = frame[(frame["metric"] == "tail") & (frame["bits"] == bits) & (frame["method"] == "baseline")
                 & (frame["imbalance_factor"] == imbalance_factor)]  # fmt: skip
    by = tail.groupby("variant")["value"].mean()
    return {
        "mse_bits": bits,
        "mse_alpha": f"{np.mean([c['alpha'] for c in cells]):.2f}",
        "mse_err_minmax": f"{100 * np.mean([c['error_minmax'] for c in cells]):.1f}",
        "mse_err_mse": f"{100 * np.mean([c['error_mse'] for c in cells]):.1f}",
        "mse_tail_default": f"{by.get('default', np.nan):.1f}",
        "mse_tail_mse": f"{by.get('MSE clipping', np.nan):.1f}",
    }
