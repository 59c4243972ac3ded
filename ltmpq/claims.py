"""The blog's four claims, each split into parts that are measured once per seed and judged by the
one rule of :mod:`ltmpq.verdicts`.

Chapters 1-3 glue the verdicts of their claim's parts; chapter 4 shows every part in one table
and combines them. All of them call the functions here, so the prose and the verdict table
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import blog, verdicts
from .frames import delta_per_seed, gap_per_seed, rule_metric
from .vocab import BLOG_MODELS, DECOUPLED, METHOD_LABELS


@dataclass(frozen=True)
class Part:
    """One part of a claim: "``quantity`` is ``direction`` than ``threshold``", per seed ``values``."""

    claim: int
    part: str
    statement: str
    quantity: str
    values: pd.Series  # indexed by seed
    threshold: float
    direction: str
    where: str  # the chapter ("03_quantization") or the section ("#sec-table2") that measures it
    blog: float | None = None  # the same quantity from the blog's published numbers (None: not given)
    condition: str = ""  # what the part is measured under, when the claim's parts differ in it ("6 bits")

    def evidence(self) -> dict:
        return verdicts.evidence(self.values.to_numpy(dtype=float), self.threshold, self.direction)


def _no_values() -> pd.Series:
    return pd.Series(dtype=float)


def _minus(a: float | None, b: float | None) -> float | None:
    """``a - b`` of two published values, None when the blog lacks either."""
    return None if a is None or b is None else round(a - b, 6)


def _label(method: str) -> str:
    """How a part names a method: the baseline as "baseline", the others by their label."""
    return "baseline" if method == "baseline" else METHOD_LABELS[method]


def claim1(frame: pd.DataFrame, method: str = "baseline") -> list[Part]:
    """Overall accuracy hides the head-tail gap (1a, at the mildest imbalance), and the gap grows
    with imbalance (1b, strongest minus mildest), of ``method`` (the blog's: the baseline).
    ``frame``: :func:`ltmpq.frames.metrics_frame`."""
    f_hi, f_lo = max(frame["imbalance_factor"]), min(frame["imbalance_factor"])
    growth = (
        gap_per_seed(frame, f_lo, method) - gap_per_seed(frame, f_hi, method)
        if f_lo != f_hi
        else _no_values()
    )
    name = _label(method)
    return [
        Part(
            1,
            "1a",
            "a head–tail gap exists at the mildest imbalance",
            f"head − tail, {name}, IF {f_hi:g}",
            gap_per_seed(frame, f_hi, method),
            0.0,
            "greater",
            "01_evaluation",
            blog.gap(f_hi, method),
        ),
        Part(
            1,
            "1b",
            "the gap grows with imbalance",
            f"gap(IF {f_lo:g}) − gap(IF {f_hi:g}), {name}",
            growth,
            0.0,
            "greater",
            "01_evaluation",
            _minus(blog.gap(f_lo, method), blog.gap(f_hi, method)),
        ),
    ]


def claim2(frame: pd.DataFrame, method: str = DECOUPLED) -> list[Part]:
    """Re-balancing by ``method`` (the blog's: cRT) narrows the gap (2a) but more than
    :data:`~ltmpq.verdicts.GAP_REMAINS` points remain (2b), at the strongest imbalance.
    ``frame``: :func:`ltmpq.frames.metrics_frame` with chapter 2's."""
    f_lo = min(frame["imbalance_factor"])
    rebalanced = gap_per_seed(frame, f_lo, method)
    name = METHOD_LABELS[method]
    return [
        Part(
            2,
            "2a",
            f"{name} narrows the gap",
            f"gap(baseline) − gap({name}), IF {f_lo:g}",
            gap_per_seed(frame, f_lo, "baseline") - rebalanced,
            0.0,
            "greater",
            "02_decoupling",
            _minus(blog.gap(f_lo, "baseline"), blog.gap(f_lo, method)),
        ),
        Part(
            2,
            "2b",
            f"a gap of more than {verdicts.GAP_REMAINS:g} points remains",
            f"gap({name}), IF {f_lo:g}",
            rebalanced,
            verdicts.GAP_REMAINS,
            "greater",
            "02_decoupling",
            blog.gap(f_lo, method),
        ),
    ]


def claim3_bits(quant_bits: Sequence[int]) -> list[str]:
    """The bit-widths claim 3 is judged at: the blog's 6, the 4 of its mixed precision, our fewest."""
    return list(dict.fromkeys(b for b in ("6", "4", str(min(quant_bits))) if int(b) in quant_bits))


def claim3(drops: pd.DataFrame, quant_bits: Sequence[int], variant: str = "default",
           methods: Sequence[str] = BLOG_MODELS) -> list[Part]:  # fmt: skip
    """Lower bit-widths hurt the tail much more: Δ = tail drop - head drop > :data:`~ltmpq.verdicts.MUCH_MORE`
    at each of :func:`claim3_bits`, for ``methods`` (the blog's: the baseline and cRT), at the
    strongest imbalance, with the quantizer ``variant`` (chapter 3: the default; chapter 5: each
    hypothesis).
    ``drops``: :func:`ltmpq.frames.drop_frame` of the sweeps."""
    d = delta_per_seed(drops)
    f_lo = min(d["imbalance_factor"])
    d = d[(d["variant"] == variant) & (d["imbalance_factor"] == f_lo)]
    parts = []
    for i, b in enumerate(claim3_bits(quant_bits)):
        for j, m in enumerate(methods):
            values = d[(d["method"] == m) & (d["bits"] == b)].set_index("seed")["delta"].sort_index()
            parts.append(
                Part(
                    3,
                    f"3{chr(ord('a') + len(methods) * i + j)}",
                    f"at {b} bits the tail loses much more ({METHOD_LABELS[m]})",
                    f"tail drop − head drop, {b} bits",
                    values,
                    verdicts.MUCH_MORE,
                    "greater",
                    "03_quantization",
                    blog.drop_delta(m, int(b)) if f_lo == blog.FIG7_8_IF else None,
                    f"{b} bits",
                )
            )
    return parts


def claim4(rank_gap: pd.Series, frame: pd.DataFrame, k: int, head: str = DECOUPLED) -> list[Part]:
    """The tail metric changes the layer ranking beyond noise (4a) and, with the blog's rule on
    ``head`` (the blog's: cRT), moves accuracy to the tail (4b) from the head (4c) at almost no
    overall cost (4d). ``rank_gap``: τ(tail, tail) - τ(norm, tail) per seed; ``frame``:
    :func:`ltmpq.frames.mpq_frame`."""

    def diff(metric: str, a: str, b: str) -> pd.Series:
        return rule_metric(frame, k, a, metric, head) - rule_metric(frame, k, b, metric, head)

    return [
        Part(
            4,
            "4a",
            "the tail metric changes the layer ranking beyond noise",
            "τ(tail, tail) − τ(norm, tail) on split halves",
            rank_gap,
            0.0,
            "greater",
            "#sec-ranking",
        ),
        Part(
            4,
            "4b",
            "tail-driven MPQ raises tail accuracy",
            f"tail acc., tail- − norm-driven, k={k}",
            diff("tail", "tail-driven", "norm-driven"),
            0.0,
            "greater",
            "#sec-table2",
        ),
        Part(
            4,
            "4c",
            "… taking it from the head",
            f"head acc., tail- − norm-driven, k={k}",
            diff("head", "tail-driven", "norm-driven"),
            0.0,
            "less",
            "#sec-table2",
        ),
        Part(
            4,
            "4d",
            "… at almost no cost in overall accuracy",
            f"overall acc., norm- − tail-driven, k={k}",
            diff("overall", "norm-driven", "tail-driven"),
            verdicts.ALMOST_NO_COST,
            "less",
            "#sec-table2",
            _minus(blog.TABLE2["norm-driven 6&4"], blog.TABLE2["tail-driven 6&4"])
            if head == DECOUPLED
            else None,
        ),
    ]


def column_parts(
    acc: pd.DataFrame, drops: pd.DataFrame | None, quant_bits: Sequence[int], method: str, *,
    rank_gap: pd.Series | None = None, mpq: pd.DataFrame | None = None, k: int = 8, blog_values: bool = True,
) -> list[Part]:  # fmt: skip
    """The four claims judged on one model and long-tail ``method`` (a column of the chapter
    "Beyond VGG16 and cRT"): claim 1 on that method's classifier (1b where ``acc`` has two or more
    imbalance factors), claim 2 where the method re-balances (not the baseline), claim 3 at the
    default quantizer where it ran (``drops``), claim 4 where mixed precision ran (``mpq`` and
    ``rank_gap``). The rules
    and thresholds are the blog's claims' own; ``blog_values`` False drops the blog's numbers
    (they are of its VGG16)."""
    parts = claim1(acc, method)
    if acc["imbalance_factor"].nunique() < 2:
        parts = parts[:1]
    if method != "baseline":
        parts += claim2(acc, method)
    if drops is not None and not drops.empty:
        parts += claim3(drops, quant_bits, "default", (method,))
    if mpq is not None and rank_gap is not None:
        parts += claim4(rank_gap, mpq, k, method)
    return parts if blog_values else [replace(p, blog=None) for p in parts]


def study_parts(
    acc: pd.DataFrame, drops: pd.DataFrame, quant_bits: Sequence[int], rank_gap: pd.Series,
    mpq: pd.DataFrame, k: int,
) -> list[Part]:  # fmt: skip
    """Every part of the four claims (chapter 4's verdict table): ``acc`` is
    :func:`ltmpq.frames.metrics_frame` of chapters 1-2, ``drops`` chapter 3's
    :func:`ltmpq.frames.drop_frame`, ``rank_gap`` and ``mpq`` chapter 4's at one imbalance factor."""
    return [*claim1(acc), *claim2(acc), *claim3(drops, quant_bits), *claim4(rank_gap, mpq, k)]


def by_imbalance_facts(table: pd.DataFrame) -> dict[str, str]:
    """``claim4_by_if``: claim 4's combined verdict at each imbalance factor of
    :func:`claim4_by_imbalance`, naming the parts that are not supported, in one sentence."""
    items = []
    for f, g in table.groupby("IF", sort=True):
        by_verdict = {
            v: [p for p, w in zip(g["part"], g["verdict"], strict=True) if w == v]
            for v in (verdicts.NOT_SUPPORTED, verdicts.INCONCLUSIVE)
        }
        detail = "; ".join(f"{v}: {', '.join(ps)}" for v, ps in by_verdict.items() if ps)
        items.append(f"IF {f:g} {verdicts.combine(g['verdict'])}" + (f" ({detail})" if detail else ""))
    return {"claim4_by_if": "; ".join(items)}


def verdict_changes(now: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """Each part's verdict and estimate in two model sets (e.g. v1 -> v2), by part; a part one of
    them lacks shows "–". ``changed``: the verdict differs (and both have one)."""
    cols = ["part", "statement", "estimate [95% CI]", "verdict"]
    m = before[cols].merge(now[cols], on=["part", "statement"], how="outer", suffixes=(" before", " now"))
    m = m.fillna("–")
    m["changed"] = (
        (m["verdict before"] != m["verdict now"]) & (m["verdict before"] != "–") & (m["verdict now"] != "–")
    )
    order = {p: i for i, p in enumerate(now["part"])}
    return m.sort_values("part", key=lambda s: s.map(order).fillna(len(order))).reset_index(drop=True)


def change_sentence(changes: pd.DataFrame, before: str, now: str) -> str:
    """The verdicts that changed between two model sets, as a sentence for the prose."""
    moved = changes[changes["changed"]]
    if moved.empty:
        return f"No part's verdict changed from {before} to {now}."
    items = "; ".join(f"{r['part']} {r['verdict before']} → {r['verdict now']}" for _, r in moved.iterrows())
    n = len(moved)
    return f"{n} part{'s' if n > 1 else ''} changed verdict from {before} to {now}: {items}."


def estimate_text(ev: dict) -> str:
    """``"+1.57 [+0.92, +2.21]"``; with fewer than two seeds there is no interval, and it says so."""
    if ev["n"] == 0:
        return "no values (needs ≥ 2 seeds)"
    if ev["n"] < 2:
        return f"{ev['estimate']:+.2f} (one seed: needs ≥ 2 seeds)"
    return f"{ev['estimate']:+.2f} [{ev['ci_low']:+.2f}, {ev['ci_high']:+.2f}]"


def verdict_table(parts: Sequence[Part]) -> pd.DataFrame:
    """One row per part: what is measured, the estimate with its two-sided 95% CI over seeds, the
    two-sided p of "the quantity equals the threshold", the verdict, the blog's own value of the
    quantity and whether our interval covers it (:func:`ltmpq.verdicts.reproduces`)."""
    rows = []
    for p in parts:
        ev = p.evidence()
        rows.append(
            {
                "claim": p.claim,
                "part": p.part,
                "statement": p.statement,
                "condition": p.condition,
                "measured": f"{p.quantity} {'>' if p.direction == 'greater' else '<'} {p.threshold:g}?",
                "estimate [95% CI]": estimate_text(ev),
                "p": ev["pvalue"],
                "verdict": ev["verdict"],
                "blog": np.nan if p.blog is None else p.blog,
                "reproduces blog": verdicts.reproduces(ev["ci_low"], ev["ci_high"], p.blog),
                "where": p.where,
            }
        )
    return pd.DataFrame(rows)


def claim_verdicts(table: pd.DataFrame) -> dict[int, str]:
    """Each claim's verdict from its parts' (:func:`ltmpq.verdicts.combine`)."""
    return {int(c): verdicts.combine(g["verdict"]) for c, g in table.groupby("claim")}


def claim_conditions(table: pd.DataFrame) -> dict[int, str]:
    """Each claim's verdict with the conditions it holds under (:func:`ltmpq.verdicts.where_it_holds`
    over its parts grouped by condition): ``"holds at 3 bits; not at 6 and 4 bits"``, or the verdict
    itself where every condition agrees."""
    return {
        int(c): verdicts.where_it_holds(
            {k: list(h["verdict"]) for k, h in g.groupby("condition", sort=False)}
        )
        for c, g in table.groupby("claim")
    }


def part_facts(parts: Sequence[Part]) -> dict[str, str]:
    """For a chapter's prose: ``{"part_1a": "supported (+11.40 [+10.32, +12.48])", ...}`` and
    ``claim1_parts``, every part of the claim in one sentence ("1a supported (...); 1b ...")."""
    rows = verdict_table(parts).to_dict("records")
    out = {f"part_{r['part']}": f"{r['verdict']} ({r['estimate [95% CI]']})" for r in rows}
    for claim in dict.fromkeys(r["claim"] for r in rows):
        out[f"claim{claim}_parts"] = "; ".join(
            f"{r['part']} ({r['statement']}): {r['verdict']}, {r['estimate [95% CI]']}"
            for r in rows
            if r["claim"] == claim
        )
    return out


def _link(where: str) -> str:
    href = where if where.startswith("#") else f"{where}.html"
    label = "here" if where.startswith("#") else f"ch. {int(where[:2])}"
    return f'<a href="{href}">{label}</a>'


def verdict_html(table: pd.DataFrame) -> str:
    """The verdict table as HTML, with links to where each part is measured."""
    shown = table.assign(
        p=table["p"].map(lambda p: "–" if np.isnan(p) else f"{p:.3f}" if p >= 0.001 else "<0.001"),
        blog=table["blog"].map(lambda v: "–" if np.isnan(v) else f"{v:+.1f}"),
        where=table["where"].map(_link),
    ).rename(columns={"p": "p (two-sided)"})
    cols = ["part", "statement", "measured", "estimate [95% CI]", "p (two-sided)", "verdict", "blog",
            "reproduces blog", "where"]  # fmt: skip
    shown = shown[cols]
    return shown.to_html(index=False, escape=False, classes="verdicts")
