"""Chapter 5: why did the blog see a 6-bit tail drop?

Three kinds of evidence, each a function here: chapter 5's quantizer hypotheses (chapter 3's
sweeps with other quantizers) against the blog's Figs. 7/8 and claim 3's rule; the W8A8 model
through torch.ao's integer kernels against its simulation; and per-class curvature against the
per-class accuracy drop (the mechanism of Liu et al.); and the scale ladder (larger models, or
what is missing of them). The runs are :func:`ltmpq.runs.quantized` (``--stage hypotheses``),
:func:`ltmpq.runs.explain` (``--stage explain``) and the ladder's (``--stage ladder``). Every
sentence the chapter glues is built here, in the chapter's names for the quantizers
(:data:`HYPOTHESIS_LABELS`), with its verdict words read from two-sided intervals over seeds.
"""

from __future__ import annotations

import re
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

#: What the chapter calls each quantizer of :data:`ltmpq.config.QUANT_HYPOTHESES` (the names there
#: are the command line's, e.g. ``--variants``): plain words instead of "W=A" (activations at the
#: weights' bit-width), "affine" (asymmetric), "LT calib." (calibration on long-tailed training
#: images, which every hypothesis uses) and "naive" (every simple choice at once).
HYPOTHESIS_LABELS = {
    "default": "default",
    "W=A, LT calib.": "activations at the weights' bits",
    "W=A affine, min-max": "asymmetric activations, min-max",
    "W=A affine, histogram": "asymmetric activations, histogram",
    "W=A affine, 99.99th pct.": "asymmetric activations, 99.99th percentile",
    "affine per-tensor weights": "asymmetric per-tensor weights",
    "per-tensor weights, BN folded": "per-tensor weights",
    "W=A, first/last at 8 bits": "activations at the weights' bits, first and last layers at 8 bits",
    "logits at 8 bits": "8-bit logits",
    "W=A + logits at same bits": "activations and logits at the weights' bits",
    "naive: per-tensor affine W=A + logits": "everything per tensor and asymmetric",
}
#: What a reading of a two-sided interval is called in the chapter's sentences.
NO_DIFFERENCE = "no detectable difference"


def hypothesis_label(variant: str) -> str:
    """The chapter's name of a quantizer variant (:data:`HYPOTHESIS_LABELS`); a name it does not
    know, or one that is already a label, is returned as it is."""
    return HYPOTHESIS_LABELS.get(variant, variant)


def label_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``variant`` column in the chapter's words (:func:`hypothesis_label`)."""
    return frame.assign(variant=frame["variant"].map(hypothesis_label))


def and_list(items: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def tail_head_reading(mean: float, half: float) -> str:
    """Which of tail and head loses more, from Δ = tail drop − head drop (mean ± half-width over
    seeds, two-sided): ``the tail pays more``, ``the head pays more`` or :data:`NO_DIFFERENCE`."""
    return verdicts.side(mean, half, "the tail pays more", "the head pays more", NO_DIFFERENCE)


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


#: How :func:`pattern_reading` words each verdict on the blog's 6-bit pattern.
PATTERN_WORDS = {
    verdicts.SUPPORTED: "yes",
    verdicts.NOT_SUPPORTED: "no",
    verdicts.INCONCLUSIVE: "cannot tell",
}


def pattern_reading(table: pd.DataFrame, bits: str = "6") -> pd.Series:
    """Per variant: does the baseline show the blog's pattern at ``bits``, judged on the two-sided
    95% intervals over seeds (:mod:`ltmpq.verdicts`' rule): ``yes`` when the tail drop's interval
    lies above :data:`TAIL_HIT` and the head drop's below :data:`HEAD_SPARED`, ``no`` when either
    lies wholly on the other side, else ``cannot tell`` (also without an interval: one seed, or no
    sweep at ``bits``)."""
    out = {}
    for v in dict.fromkeys(table["variant"]):
        hit = table[(table["variant"] == v) & (table["method"] == "baseline") & (table["bits"] == bits)]
        if hit.empty:
            out[v] = PATTERN_WORDS[verdicts.INCONCLUSIVE]
            continue
        r = hit.iloc[0]
        tail = verdicts.verdict(
            r["tail_drop"] - r["tail_ci"], r["tail_drop"] + r["tail_ci"], TAIL_HIT, "greater"
        )
        head = verdicts.verdict(
            r["head_drop"] - r["head_ci"], r["head_drop"] + r["head_ci"], HEAD_SPARED, "less"
        )
        out[v] = PATTERN_WORDS[verdicts.combine([tail, head])]
    return pd.Series(out, name="pattern")


def hypothesis_table(table: pd.DataFrame, descriptions: Mapping[str, str]) -> pd.DataFrame:
    """The chapter's main table: per variant (closest to the blog first, the default on top), the
    head/tail drops (mean ± CI) of both models at each shown bit-width, the distance to the blog's
    cells and whether the baseline shows its 6-bit pattern (:func:`pattern_reading`, on the
    intervals); the blog's own row first. ``descriptions``: variant -> what it is."""
    dist, pat = blog_distance(table), pattern_reading(table)
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
        rows[v] = row | {"distance to blog": dist[v], "blog's 6-bit pattern": pat[v]}
    out = pd.DataFrame.from_dict(rows, orient="index")
    return out[["what", *cols, "distance to blog", "blog's 6-bit pattern"]]


def _quoted(variant: str) -> str:
    return f"“{variant}”"


def _under(variant: str) -> str:
    """A quantizer as the prose names it after "under": the default, or the hypothesis quoted."""
    name = hypothesis_label(variant)
    return "the default quantizer" if name == "default" else _quoted(name)


def pattern_text(table: pd.DataFrame) -> str:
    """The sentence on the blog's 6-bit pattern under the hypotheses (not the default), from
    :func:`pattern_reading`: under which the baseline shows it, under which it does not, and
    where the seeds cannot tell."""
    read = pattern_reading(table).drop("default", errors="ignore")
    yes = [v for v, w in read.items() if w == "yes"]
    unsure = [v for v, w in read.items() if w == "cannot tell"]
    no = [v for v, w in read.items() if w == "no"]
    if not yes and not unsure:
        return (
            "No hypothesis reproduces the blog's 6-bit pattern: under each, the whole 95% interval of the "
            f"baseline's 6-bit tail loss lies at or below {TAIL_HIT:g} points, or that of its head loss at "
            f"or above {HEAD_SPARED:g}."
        )
    out = []
    if yes:
        out.append(
            f"The baseline shows the blog's 6-bit pattern (the whole 95% interval of its tail loss above "
            f"{TAIL_HIT:g} points, that of its head loss below {HEAD_SPARED:g}) under "
            f"{and_list(list(map(_quoted, yes)))}."
        )
    else:
        out.append("No hypothesis shows the blog's 6-bit pattern beyond the seeds' doubt.")
    if unsure:
        out.append(f"For {and_list(list(map(_quoted, unsure)))} the seeds cannot tell.")
    if no:
        out.append("Under the others it does not.")
    return " ".join(out)


def hypothesis_facts(table: pd.DataFrame) -> dict:
    """What the prose says of the hypotheses: how many, the sentence on the blog's pattern
    (:func:`pattern_text`), the closest one and its distance, the default's distance, and the
    largest baseline tail drops at 6 bits (``worst6_*``) and, where swept, at 4 (``worst_text``)."""
    dist, read = blog_distance(table), pattern_reading(table)
    hyps = [v for v in dist.index if v != "default"]
    closest = dist[hyps].idxmin()
    base6 = table[(table["method"] == "baseline") & (table["bits"] == "6")].set_index("variant")
    worst = base6["tail_drop"].idxmax()
    base4 = table[(table["method"] == "baseline") & (table["bits"] == "4")].set_index("variant")
    w6 = (pm(base6.loc[worst, "tail_drop"], base6.loc[worst, "tail_ci"]),
          pm(base6.loc[worst, "head_drop"], base6.loc[worst, "head_ci"]))  # fmt: skip
    text = (
        f"The largest 6-bit tail loss of the baseline, under {_quoted(worst)}, is {w6[0]} points, with "
        f"the head losing {w6[1]}"
    )
    if len(base4):
        w4 = base4["tail_drop"].idxmax()
        text += (
            f"; at 4 bits the largest, under {_quoted(w4)}, is "
            f"{pm(base4.loc[w4, 'tail_drop'], base4.loc[w4, 'tail_ci'])} on the tail against "
            f"{pm(base4.loc[w4, 'head_drop'], base4.loc[w4, 'head_ci'])} on the head"
        )
    return {
        "n_hypotheses": len(hyps),
        "pattern_text": pattern_text(table),
        "n_pattern": int(sum(read[v] == "yes" for v in hyps)),
        "closest": closest,
        "closest_distance": f"{dist[closest]:.1f}",
        "default_distance": f"{dist['default']:.1f}",
        "worst6_tail": w6[0],
        "worst6_head": w6[1],
        "worst6_variant": worst,
        "worst_text": text + ".",
        "tail_hit": f"{TAIL_HIT:g}",
        "head_spared": f"{HEAD_SPARED:g}",
    }


# --------------------------------------------------------------------------- Δ per seed


def hypothesis_seed_table(drops: pd.DataFrame, bits: Sequence[str] | None = None) -> pd.DataFrame:
    """The chapter's tidy table (its CSV download): per quantizer, IF, seed, model (the blog's two)
    and bit-width, the head and tail drop from float and Δ = tail − head (points; positive: the
    tail pays more). ``quantizer`` is the chapter's name (:func:`hypothesis_label`), ``variant``
    the configuration's (``ltmpq.config``, for ``--variants``). ``drops``:
    :func:`ltmpq.frames.drop_frame` of the sweeps, with the configuration's names."""
    d = delta_per_seed(drops)
    d = d[d["method"].isin(BLOG_MODELS)]
    if bits is not None:
        d = d[d["bits"].isin(bits)]
    if d.empty:
        raise ValueError("no sweeps of the baseline or cRT to tabulate")
    out = pd.DataFrame(
        {
            "quantizer": d["variant"].map(hypothesis_label),
            "variant": d["variant"],
            "imbalance_factor": d["imbalance_factor"],
            "seed": d["seed"],
            "model": d["method"].map(METHOD_LABELS),
            "bits": d["bits"].astype(int),
            "head_drop": d["head"],
            "tail_drop": d["tail"],
            "delta": d["delta"],
        }
    )
    order = {v: i for i, v in enumerate(dict.fromkeys(drops["variant"]))}
    key = out.assign(
        v=out["variant"].map(order), f=out["imbalance_factor"], m=out["model"] != "baseline (CE)"
    )
    key = key.sort_values(["v", "f", "m", "bits", "seed"], ascending=[True, True, True, False, True])
    return out.loc[key.index].reset_index(drop=True)


def delta_summary(seed_table: pd.DataFrame) -> pd.DataFrame:
    """Per (quantizer, IF, model, bits) of :func:`hypothesis_seed_table`: Δ's mean, 95% half-width
    and seeds, and the reading of its two-sided interval (:func:`tail_head_reading`)."""
    rows = []
    keys = ["quantizer", "imbalance_factor", "model", "bits"]
    for k, g in seed_table.groupby(keys, sort=False):
        m, h, n = mean_ci(g["delta"].to_numpy(dtype=float))
        rows.append(dict(zip(keys, k, strict=True)) | {"delta": m, "delta_ci": h, "n": n,
                                                       "reading": tail_head_reading(m, h)})  # fmt: skip
    return pd.DataFrame(rows)


def answer_facts(summary: pd.DataFrame, imbalance_factor: float, bits: int = 6) -> dict:
    """The opening's numbers: the baseline's Δ at ``bits`` under the default quantizer and the
    largest under the hypotheses (mean ± 95% CI over seeds, with their readings), and the blog's."""
    s = summary[(summary["imbalance_factor"] == imbalance_factor) & (summary["model"] == "baseline (CE)")
                & (summary["bits"] == bits)].set_index("quantizer")  # fmt: skip
    if "default" not in s.index or len(s) < 2:
        raise ValueError(
            f"needs the default and at least one hypothesis at IF {imbalance_factor:g}, {bits} bits"
        )
    worst = s.drop("default")["delta"].idxmax()
    blog = blog_drop("baseline", "tail", bits) - blog_drop("baseline", "head", bits)
    return {
        f"blog_delta{bits}": f"{blog:+.1f}",
        f"default_delta{bits}": pm(s.loc["default", "delta"], s.loc["default", "delta_ci"]),
        f"default_reading{bits}": s.loc["default", "reading"],
        f"max_delta{bits}": pm(s.loc[worst, "delta"], s.loc[worst, "delta_ci"]),
        f"max_delta{bits}_variant": worst,
        f"max_reading{bits}": s.loc[worst, "reading"],
    }


def logit_pairs(qcfgs: Mapping[str, object]) -> dict[str, str]:
    """The quantizers that differ from another one only in quantizing the logits: ``{with
    quantized logits: the same with float logits}``. ``qcfgs``: name -> QuantConfig (a profile's
    :meth:`~ltmpq.config.Profile.quant_configs`)."""
    from dataclasses import replace

    out = {}
    for name, q in qcfgs.items():
        if getattr(q, "logit_bits", None) is None:
            continue
        plain = replace(q, logit_bits=None)
        twin = next((n for n, o in qcfgs.items() if n != name and o == plain), None)
        if twin is not None:
            out[name] = twin
    return out


def logit_tie_effect(
    drops: pd.DataFrame, with_logits: str, without: str, imbalance_factor: float,
    bits: Sequence[str] = ("6", "4"), method: str = "baseline",
) -> pd.DataFrame:  # fmt: skip
    """What quantizing the logits alone does, paired per seed: per bit-width, the head and the tail
    drop of ``with_logits`` minus those of ``without`` (its twin with float logits,
    :func:`logit_pairs`), mean and 95% half-width over seeds (points; positive: quantizing the
    logits costs that group accuracy). A per-tensor grid never reverses two logits, so every
    prediction it changes is a tie at the top, which ``argmax`` gives to the lowest class index."""
    d = delta_per_seed(drops)
    d = d[(d["imbalance_factor"] == imbalance_factor) & (d["method"] == method) & d["bits"].isin(bits)]
    a = d[d["variant"] == with_logits].set_index(["bits", "seed"])
    b = d[d["variant"] == without].set_index(["bits", "seed"])
    both = a.index.intersection(b.index)
    if both.empty:
        raise ValueError(f"no seed has both {with_logits!r} and {without!r} at IF {imbalance_factor:g}")
    rows = []
    for bb in [x for x in bits if x in set(both.get_level_values("bits"))]:
        idx = [i for i in both if i[0] == bb]
        row = {"bits": bb}
        for k in ("head", "tail"):
            m, h, n = mean_ci((a.loc[idx, k] - b.loc[idx, k]).to_numpy(dtype=float))
            row |= {k: m, f"{k}_ci": h, "n": n}
        rows.append(row)
    return pd.DataFrame(rows)


def logit_tie_text(effect: pd.DataFrame) -> str:
    """The sentence on :func:`logit_tie_effect`: per bit-width, how much more the tail and the head
    lose with quantized logits (``at 6 bits, tail +1.7 ± 0.1 (loses more), head ...``), each with
    the reading of its two-sided interval."""

    def word(m: float, h: float) -> str:
        return verdicts.side(m, h, "loses more", "gains", "no detectable change")

    return "; ".join(
        f"at {r.bits} bits, tail {pm(r.tail, r.tail_ci)} ({word(r.tail, r.tail_ci)}), head "
        f"{pm(r.head, r.head_ci)} ({word(r.head, r.head_ci)})"
        for r in effect.itertuples(index=False)
    )


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
    """``claim3_conditions``: the quantizers (in the chapter's words, :func:`hypothesis_label`)
    under which claim 3 holds for both models, each with the bit-widths it holds at ("“8-bit
    logits” at 4 and 3 bits; ..."), and ``claim3_default``: where it holds under the default
    quantizer (:func:`ltmpq.verdicts.where_it_holds`, the wording of chapter 4's verdict table)."""
    held, where = [], {}
    for v, g in table.groupby("variant", sort=False):
        by_bits = {c: list(h["verdict"]) for c, h in g.groupby("condition", sort=False)}
        where[v] = verdicts.where_it_holds(by_bits)
        bits = [c.split()[0] for c, vs in by_bits.items() if verdicts.combine(vs) == verdicts.SUPPORTED]
        if bits:
            held.append(f"{_under(v)} at {and_list(bits)} bits")
    return {
        "claim3_conditions": "; ".join(held) if held else "none of them",
        "claim3_default": where.get("default", "the default quantizer was not run"),
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
    """The agreement the prose states: its range and mean over runs and heads, the same with the
    simulation fed the rounded input, the largest accuracy differences, and ``int_conclusion``: how
    much of the disagreement the input's rounding accounts for (1 − mean disagreement with the
    rounded input / mean disagreement) and what that means."""
    lo, mean = frame["agreement"].min(), frame["agreement"].mean()
    off, off_rounded = 100 - mean, 100 - frame["rounded input"].mean()
    share = 100 * (1 - off_rounded / off) if off > 0 else np.nan
    if off == 0:
        conclusion = "The two never disagree."
    elif share <= 0:
        conclusion = (
            "Rounding the simulation's input as the kernels do does not reduce the disagreement: it comes "
            "from the kernels' integer arithmetic itself (the table shows where)."
        )
    else:
        cause = (
            "most of it is the rounding of the input image, which the simulation lacks, not the "
            "kernels' integer arithmetic"
            if share >= 50
            else "most of it comes from the kernels' integer arithmetic itself (the table shows where)"
        )
        conclusion = (
            f"Rounding the simulation's input as the kernels do removes {share:.0f}% of the disagreement "
            f"(mean over runs and classifiers): {cause}."
        )
    return {
        "int_agree_min": f"{lo:.2f}",
        "int_agree_max": f"{frame['agreement'].max():.2f}",
        "int_agree_mean": f"{mean:.2f}",
        "int_rounded_min": f"{frame['rounded input'].min():.2f}",
        "int_acc_diff": f"{(frame['integer'] - frame['simulated']).abs().max():.2f}",
        "int_class_diff": f"{frame['worst class Δ'].max():.1f}",
        "int_runs": len(frame[["imbalance_factor", "seed"]].drop_duplicates()),
        "int_conclusion": conclusion,
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


#: What :func:`mechanism_facts` says where a statistic has no value (a drop that is the same for
#: every class of a seed, one seed, or a count that ranks the drop perfectly for a partial rho).
UNDEFINED = "not defined"


def mechanism_facts(table: pd.DataFrame, head: str = "baseline", images: str = "val") -> dict:
    """The prose's numbers: at the fewest and the second-fewest bits, the trace's and the count's
    rho with the drop, the trace's partial rho and the paired difference, for one head, each
    "estimate [low, high]" or :data:`UNDEFINED`; and ``mech_reading_*``: what the difference's
    two-sided interval says (curvature ranks the classes' losses better or worse than the training
    count, or no detectable difference)."""
    d = table[(table["head"] == head) & (table["images"] == images)]
    out = {}
    for i, b in enumerate(sorted(d["bits"].unique())[:2]):  # the fewest and the second-fewest bits
        g = d[d["bits"] == b]

        def row(kind: str, pred: str, g=g) -> tuple[float, float, float] | None:
            r = g[(g["kind"] == kind) & (g["predictor"] == pred)]
            if r.empty or np.isnan(r["estimate"].iloc[0]):
                return None
            return tuple(float(x) for x in r[["estimate", "ci_low", "ci_high"]].iloc[0])

        def cell(kind: str, pred: str) -> str:
            r = row(kind, pred)
            return UNDEFINED if r is None else f"{r[0]:+.2f} [{r[1]:+.2f}, {r[2]:+.2f}]"

        diff = row("difference", "Hessian trace")
        than = "than their training-set size does"
        if diff is None or np.isnan(diff[1]) or np.isnan(diff[2]):
            reading = "cannot be set against their training-set size (the drop does not rank the classes)"
        elif diff[1] > 0:
            reading = f"ranks the classes' accuracy losses better {than}"
        elif diff[2] < 0:
            reading = f"ranks the classes' accuracy losses worse {than}"
        else:
            reading = f"ranks the classes' accuracy losses neither detectably better nor worse {than}"
        key = "lo" if i == 0 else "hi"
        out |= {
            f"mech_bits_{key}": int(b),
            f"mech_trace_{key}": cell("spearman", "Hessian trace"),
            f"mech_grad_{key}": cell("spearman", "gradient norm²"),
            f"mech_count_{key}": cell("spearman", "−log(training count)"),
            f"mech_partial_{key}": cell("partial", "Hessian trace"),
            f"mech_diff_{key}": cell("difference", "Hessian trace"),
            f"mech_reading_{key}": reading,
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


def _trend_parts(trend: pd.DataFrame, variant: str, method: str) -> list[str]:
    t = trend[(trend["variant"] == variant) & (trend["method"] == method)]
    return [
        f"at {r.bits} bits, {r.rung}: Δ {r.base_delta:+.1f} → {r.rung_delta:+.1f} ({r.change}; "
        f"difference {r.difference:+.1f}"
        + ("" if np.isnan(r.ci_low) else f" [{r.ci_low:+.1f}, {r.ci_high:+.1f}]")
        + ")"
        for r in t.itertuples(index=False)
    ]


def ladder_facts(trend: pd.DataFrame, variants: Sequence[str], method: str = "baseline") -> dict:
    """Per ladder variant that has a comparison (``ladder_trend_0``, ``ladder_trend_1``, ... by its
    place in ``variants``): for ``method``, at each bit-width and model, Δ of the book's model and
    of the larger one and the change; ``ladder_cells`` comparisons and ``ladder_detected`` of them
    with a change the seeds can detect. A variant without a comparison has no entry: the chapter
    leaves its sentence out."""
    out: dict = {}
    for i, v in enumerate(variants):
        parts = _trend_parts(trend, v, method)
        if parts:
            out[f"ladder_trend_{i}"] = "; ".join(parts)
    changes = trend.loc[trend["method"] == method, "change"]
    n = int((changes != "no detectable change").sum())
    out["ladder_detected"] = "none" if n == 0 else str(n)
    out["ladder_cells"] = len(changes)
    return out


def ladder_models(
    s1res: Mapping[str, Mapping], rungs: Mapping[str, object], missing: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per model of the ladder (``rungs``: name -> one of its stage-1 configs, the book's own model
    first): its shape (width, fully connected width, dropout, parameters), its forward
    multiply-accumulates per image and their ratio to the book's model's, the book's model's
    recorded training time scaled by that ratio (what the model should cost on the machine the
    book's models trained on), and for a trained model (in ``s1res``) its float test accuracy
    (overall / head / tail, mean ± CI over seeds) and recorded training time; ``status`` says how
    many seeds are trained, or for a model in ``missing`` what it lacks (:func:`missing_status`)."""
    from ..models import VGG16

    missing = missing or {}
    first = next(iter(rungs))
    if first not in s1res:
        raise ValueError(f"the first model {first!r} has no stage-1 results; it anchors the cost scale")
    base_seconds = float(np.mean([r["train_seconds"] for r in s1res[first].values()]))
    base_macs = None
    rows = []
    for rung, c0 in rungs.items():
        model = VGG16(width=c0.width, hidden=c0.hidden, dropout=c0.dropout)
        macs = model.macs_per_image()
        base_macs = base_macs or macs
        row = {
            "model": rung,
            "width": f"{c0.width:g}",
            "L14/L15 width": model.feature_dim,
            "dropout": f"{c0.dropout:g}",
            "parameters (M)": sum(p.numel() for p in model.parameters()) / 1e6,
            "MMAC / image": macs / 1e6,
            "× the book's model": macs / base_macs,
            "projected min / model": base_seconds * macs / base_macs / 60,
        }
        by_cfg = s1res.get(rung)
        if by_cfg:
            cfgs = list(by_cfg)
            for k in ("overall", "head", "tail"):
                row[f"float {k}"] = pm(*mean_ci([100 * by_cfg[c]["test"]["metrics"][k] for c in cfgs])[:2])
            row["trained min / model"] = float(np.mean([by_cfg[c]["train_seconds"] for c in cfgs])) / 60
            row["status"] = f"{len(cfgs)} seeds trained"
        else:
            row["status"] = missing_status(missing.get(rung, "0 of 0 models trained"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


_TRAINED = re.compile(r"^(\d+) of (\d+) models trained")


def missing_status(why: str) -> str:
    """What :func:`ltmpq.load.ladder_results` says of a missing model, in the chapter's words:
    ``not trained``, ``k of n seeds trained`` (from its "k of n models trained; ..."), or, for a
    stored result that fails its check (any other message), ``stored results fail their check``."""
    m = _TRAINED.match(why)
    if m is None:
        return "stored results fail their check"
    done, n = int(m.group(1)), int(m.group(2))
    return "not trained" if done == 0 else f"{done} of {n} seeds trained"


def ladder_missing_text(missing: Mapping[str, str], precision: str | None, command: str) -> str:
    """The sentences on the ladder's models that are not there (``missing``: name -> what
    :func:`ltmpq.load.ladder_results` says): which are not trained and why (a recipe in bf16 needs
    a CPU with bf16 arithmetic or a GPU to train in reasonable time), which are partly trained,
    which fail their check, and the ``command`` that makes them. Empty when nothing is missing."""
    if not missing:
        return ""
    status = {r: missing_status(w) for r, w in missing.items()}
    untrained = [r for r, st in status.items() if st == "not trained"]
    partial = [f"{r} ({st})" for r, st in status.items() if "seeds trained" in st]
    broken = [r for r, st in status.items() if st.startswith("stored results")]
    out = []
    if untrained:
        why = (
            ": training them in reasonable time needs a CPU with bf16 arithmetic or a GPU (the recipe "
            "trains in bf16), and none was at hand when these results were made"
            if precision == "bf16"
            else ""
        )
        are = "model is" if len(untrained) == 1 else "models are"
        out.append(f"The ladder's {and_list(untrained)} {are} not trained for this version of the book{why}.")
    if partial:
        out.append(f"Only some seeds are trained of {and_list(partial)}.")
    if broken:
        out.append(f"The stored results of {and_list(broken)} fail their check and are left out.")
    out.append(f"The command {command} makes what is missing.")
    return " ".join(out)


def ladder_summary(
    trend: pd.DataFrame, missing_text: str, base: str, variants: Sequence[str], method: str = "baseline"
) -> str:
    """The Scale section's closing paragraph: for ``method``, each larger model against the book's
    own (``base``) under each of ``variants`` (Δ's difference with its Welch 95% interval over
    seeds, :func:`ladder_trend`) and how many changes the seeds can detect, then
    ``missing_text`` (:func:`ladder_missing_text`). Without a larger model it says only what is
    missing, and that the question stays open."""
    if trend.empty:
        lead = missing_text or f"The ladder has only the book's own models ({base})."
        return (
            f"{lead} Until they are trained, this chapter cannot say whether the head/tail asymmetry grows "
            f"or shrinks with the network's size; the tables above hold the book's own models ({base}) only."
        )
    sentences = [
        f"Under {_under(v)}, {'; '.join(parts)}."
        for v in variants
        if (parts := _trend_parts(trend, v, method))
    ]
    facts = ladder_facts(trend, variants, method)
    head = (
        f"For the {METHOD_LABELS.get(method, method)} model, each larger model against the book's own "
        f"({base}); the difference in Δ with its Welch 95% interval over seeds."
    )
    n, k = facts["ladder_cells"], facts["ladder_detected"]
    tally = f"Of {n} comparisons, {k} {'shows' if k == '1' else 'show'} a change the seeds can detect."
    return " ".join([head, *sentences, tally, missing_text]).strip()


def ladder_variant_check(closest: str, variants: Sequence[str]) -> str:
    """Whether the ladder ran the hypothesis that is closest to the blog (the profile fixes it
    before the results exist; this says whether the results still agree), in the chapter's words."""
    hyps = [hypothesis_label(v) for v in variants if v != "default"]
    closest = hypothesis_label(closest)
    if closest in hyps:
        return "the hypothesis closest to the blog's cells in the table above"
    return (
        "chosen before the results existed; the closest to the blog's cells above is now "
        f"{_quoted(closest)}, which the ladder did not run"
    )


def ladder_answer(trend: pd.DataFrame, method: str = "baseline") -> str:
    """The opening's sentence on scale: how many comparisons with a larger model show a change
    the seeds can detect, or, without a trained larger model, that the question stays open."""
    if trend.empty:
        return (
            "Whether the asymmetry grows with the network's size stays open: the scale ladder's larger "
            "models are not trained for this version of the book."
        )
    facts = ladder_facts(trend, [], method)
    n_models = trend["rung"].nunique()
    larger = "a larger model" if n_models == 1 else f"{n_models} larger models"
    k = facts["ladder_detected"]
    return (
        f"Against {larger}, {k} of {facts['ladder_cells']} comparisons of the "
        f"{METHOD_LABELS.get(method, method)} model's Δ {'shows' if k == '1' else 'show'} a change with the "
        "network's size that the seeds can detect."
    )


def ladder_cost_text(minutes: float, trained: Sequence[str]) -> str:
    """The cost section's sentence on the ladder's larger models: what the ``trained`` ones took
    (``minutes``, training included), or where their projected cost is when none is trained."""
    if not trained:
        return (
            "The scale ladder's larger models are not trained; the Scale section's table projects what "
            "each would cost."
        )
    return (
        f"The scale ladder's trained larger models ({and_list(list(trained))}), training included, took "
        f"{minutes:.0f} minutes."
    )
