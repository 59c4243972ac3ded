"""The book's answers in one place: the landing page's claim table and the conclusion's guidance.

Nothing here judges anew: the verdicts are chapter 4's (:func:`ltmpq.analysis.ch4_mitigation.verdict_parts`
and :func:`ltmpq.claims.claim_conditions`), the matrix chapter 6's, the levers chapter 7's; this
module only puts them side by side and in words, so the landing page, the conclusion and the
chapters cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import claims, verdicts
from ..uncertainty import mean_ci
from ..vocab import METHOD_LABELS
from .ch1_evaluation import interval_text
from .ch5_six_bits import and_list
from .ch6_beyond import CLAIM_NAMES, across

#: Where each claim's evidence is, chapter by chapter (the first measures it on the book's models).
EVIDENCE = {
    1: ("01_evaluation", "06_beyond"),
    2: ("02_decoupling", "06_beyond"),
    3: ("03_quantization", "05_six_bits", "06_beyond"),
    4: ("04_mitigation", "07_mitigations", "06_beyond"),
}


def _link(chapter: str) -> str:
    return f'<a href="{chapter}.html">ch. {int(chapter[:2])}</a>'


def claim_table(
    table: pd.DataFrame, matrix: pd.DataFrame, beyond: dict[int, str] | None = None
) -> pd.DataFrame:
    """One row per claim: the blog's numbers and ours for each of its parts, our verdict on the
    book's models (chapter 4's, with its conditions), the verdict on every model and method
    (chapter 6's matrix), what holds under other quantizers and levers (``beyond``, by claim:
    chapters 5 and 7; "–" where none applies), and where the evidence is.
    ``table``: :func:`ltmpq.claims.verdict_table`."""
    verdict = claims.claim_conditions(table)
    elsewhere = across(matrix)
    rows = []
    for c, g in table.groupby("claim", sort=True):
        c = int(c)
        blog = [f"{p} {b:+.1f}" for p, b in zip(g["part"], g["blog"], strict=True) if not np.isnan(b)]
        rows.append({
            "claim": CLAIM_NAMES[c],
            "the blog's numbers": "; ".join(blog) or "–",
            "ours (mean [95% CI] over seeds)": "; ".join(
                f"{p} {e}" for p, e in zip(g["part"], g["estimate [95% CI]"], strict=True)
            ),
            "verdict on the book's VGG16 (ch. 4)": verdict[c],
            "on every model and method": elsewhere[c],
            "under other quantizers and levers": (beyond or {}).get(c, "–"),
            "evidence": ", ".join(_link(ch) for ch in EVIDENCE[c]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def claim_html(t: pd.DataFrame) -> str:
    """The claim table as HTML: cells wrap, links stay links."""
    styles = [{"selector": "td, th", "props": "white-space: normal; padding: 3px 8px; vertical-align: top;"}]
    return t.style.set_table_styles(styles).hide(axis="index").to_html()


def verdict_sentence(table: pd.DataFrame) -> str:
    """Chapter 4's four verdicts in one sentence, claims with the same verdict together:
    "claims 1 and 2 are supported; claim 3 holds at 3 bits; not at 6 bits; ...; claim 4 is
    inconclusive". ``table``: :func:`ltmpq.claims.verdict_table`."""
    by: dict[str, list[str]] = {}
    for c, w in claims.claim_conditions(table).items():
        by.setdefault(w, []).append(str(c))
    out = []
    for w, cs in by.items():
        who = f"claim{'s' if len(cs) > 1 else ''} {and_list(cs)}"
        # a plain verdict reads "is supported"; one with conditions ("holds at 3 bits; ...") reads as is
        plain = w in verdicts.VERDICTS
        out.append(f"{who} {('are' if len(cs) > 1 else 'is') + ' ' if plain else ''}{w}")
    return "; ".join(out)


def reproduced(table: pd.DataFrame) -> dict[str, str]:
    """The parts whose blog number our interval covers (``parts_reproduced``) and those it misses
    (``parts_missed``, each with the side), in words; "none" where there are none."""
    has_blog = table[table["reproduces blog"] != "–"]
    hit = has_blog[has_blog["reproduces blog"] == "yes"]["part"]
    missed = has_blog[has_blog["reproduces blog"] != "yes"]
    return {
        "parts_reproduced": and_list(list(hit)) or "none",
        "parts_missed": and_list(
            [f"{p} ({r})" for p, r in zip(missed["part"], missed["reproduces blog"], strict=True)]
        )
        or "none",
    }


def safe_bits(drops: pd.DataFrame, method: str, imbalance_factor: float, tolerance: float = 1.0,
              metric: str = "tail", variant: str = "default") -> dict[str, str]:  # fmt: skip
    """The fewest weight bits at which ``method``'s ``metric`` loses at most ``tolerance`` points
    against float at every bit-width from there up, by the upper end of the two-sided 95% interval
    over seeds (``drops``: :func:`ltmpq.frames.drop_frame`): ``safe_bits``, ``safe_upper`` (the
    largest such upper end), ``below_bits`` and ``below_drop`` (the next bit-width down and its
    drop, mean [CI]); ``safe_bits`` is "none" when even the most bits lose more."""
    d = drops[(drops["variant"] == variant) & (drops["method"] == method) & (drops["metric"] == metric)
              & (drops["imbalance_factor"] == imbalance_factor) & (drops["bits"] != "float")]  # fmt: skip
    if d.empty:
        raise ValueError(f"no {variant} sweep of {method!r} at IF {imbalance_factor:g}")
    by_bits = {int(b): g.sort_values("seed")["drop"].to_numpy() for b, g in d.groupby("bits")}
    upper = {}
    for b in sorted(by_bits, reverse=True):
        m, h, n = mean_ci(by_bits[b])
        if n < 2 or not m + h <= tolerance:
            break
        upper[b] = m + h
    out = {"safe_metric": metric.replace("_", " "), "safe_tolerance": f"{tolerance:g}",
           "safe_method": METHOD_LABELS.get(method, method)}  # fmt: skip
    if not upper:
        return out | {"safe_bits": "none", "safe_upper": "–", "below_bits": str(max(by_bits)),
                      "below_drop": interval_text(by_bits[max(by_bits)])}  # fmt: skip
    n_bits = min(upper)
    lower = [b for b in by_bits if b < n_bits]
    below = max(lower) if lower else None
    return out | {
        "safe_bits": str(n_bits),
        "safe_upper": f"{max(upper.values()):.1f}",
        "below_bits": "–" if below is None else str(below),
        "below_drop": "–" if below is None else interval_text(by_bits[below]),
    }


def guidance_text(safe: dict[str, str]) -> str:
    """The conclusion's sentence on safe bit-widths from :func:`safe_bits`."""
    who = f"the {safe['safe_method']} model's {safe['safe_metric']} accuracy"
    if safe["safe_bits"] == "none":
        return (
            f"Even at {safe['below_bits']} bits, {who} loses {safe['below_drop']} points against float "
            "(mean [95% interval] over seeds): at every bit-width studied, measure per-class and "
            "worst-class accuracy before deploying."
        )
    text = (
        f"Per-channel min-max weight quantization at {safe['safe_bits']} bits or more costs {who} at "
        f"most {safe['safe_upper']} points against float (the upper end of the 95% interval over seeds)"
    )
    if safe["below_bits"] == "–":
        return text + "."
    return (
        f"{text}; at {safe['below_bits']} bits its cost is {safe['below_drop']} points, an interval "
        f"that reaches past {safe['safe_tolerance']} point{'s' if safe['safe_tolerance'] != '1' else ''}: "
        f"below {safe['safe_bits']} bits, measure per-class and worst-class accuracy before deploying."
    )


def cheapest(won: Sequence[tuple[str, str]], cost: pd.DataFrame, bits: Sequence[str]) -> str:
    """The cheapest lever (fewest seconds per network, :func:`ltmpq.analysis.ch7_mitigations.costs`)
    that wins the tail back at every one of ``bits`` (``won``: chapter 7's winners), in words;
    "none of the levers" when no lever wins at all of them."""
    by: dict[str, set[str]] = {}
    for m, b in won:
        by.setdefault(m, set()).add(b)
    full = [m for m, bs in by.items() if set(bits) <= bs]
    if not full:
        return "none of the levers"
    secs = cost.groupby("mitigation")["seconds"].mean()
    best = min(full, key=lambda m: secs.get(m, np.inf))
    return f"{best} (about {secs[best]:.0f} s per network here)"
