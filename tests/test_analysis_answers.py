"""The book's answers: the landing page's claim table and the conclusion's guidance, each against
a hand-made case whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ltmpq.analysis import answers
from ltmpq.analysis.ch6_beyond import CLAIM_NAMES


def _table(rows) -> pd.DataFrame:
    """A verdict table (:func:`ltmpq.claims.verdict_table`'s columns the answers read)."""
    return pd.DataFrame(rows, columns=["claim", "part", "condition", "estimate [95% CI]", "verdict", "blog",
                                       "reproduces blog"])  # fmt: skip


TABLE = _table([
    (1, "1a", "", "+10.10 [+7.92, +12.28]", "supported", 3.2, "no: ours higher"),
    (1, "1b", "", "+26.54 [+23.10, +29.99]", "supported", np.nan, "–"),
    (2, "2a", "", "+15.95 [+12.63, +19.27]", "supported", 32.8, "no: ours lower"),
    (3, "3a", "6 bits", "-0.50 [-1.40, +0.40]", "not supported", 6.0, "no: ours lower"),
    (3, "3b", "3 bits", "+13.14 [+6.72, +19.56]", "supported", np.nan, "–"),
    (4, "4d", "", "+0.10 [-0.40, +0.60]", "inconclusive", 0.3, "yes"),
])  # fmt: skip


def test_the_verdict_sentence_groups_claims_and_keeps_conditions():
    assert answers.verdict_sentence(TABLE) == (
        "claims 1 and 2 are supported; claim 3 holds at 3 bits; not at 6 bits; claim 4 is inconclusive"
    )


def test_reproduced_parts_are_those_whose_interval_covers_the_blog():
    assert answers.reproduced(TABLE) == {
        "parts_reproduced": "4d",
        "parts_missed": "1a (no: ours higher), 2a (no: ours lower) and 3a (no: ours lower)",
    }
    assert answers.reproduced(TABLE[TABLE["part"] != "4d"])["parts_reproduced"] == "none"


def test_the_claim_table_puts_blog_ours_verdict_and_matrix_side_by_side():
    matrix = pd.DataFrame(
        {"VGG16 CE": ["supported", "not measured", "inconclusive", "inconclusive"],
         "VGG16 cRT": ["supported", "supported", "holds at 3 bits; not at 6 bits", "inconclusive"]},
        index=list(CLAIM_NAMES.values()),
    )  # fmt: skip
    t = answers.claim_table(TABLE, matrix, {3: "holds (ch. 5) for: 8-bit logits at 4 bits"}).set_index(
        "claim"
    )
    row = t.loc[CLAIM_NAMES[1]]
    assert row["the blog's numbers"] == "1a +3.2"  # 1b: the blog gives no number
    assert row["ours (mean [95% CI] over seeds)"] == "1a +10.10 [+7.92, +12.28]; 1b +26.54 [+23.10, +29.99]"
    assert row["on every model and method"] == "VGG16 CE, VGG16 cRT: supported"
    assert t.loc[CLAIM_NAMES[3], "verdict on the book's VGG16 (ch. 4)"] == "holds at 3 bits; not at 6 bits"
    assert (
        t.loc[CLAIM_NAMES[2], "on every model and method"] == "VGG16 CE: not measured · VGG16 cRT: supported"
    )
    assert '<a href="07_mitigations.html">ch. 7</a>' in t.loc[CLAIM_NAMES[4], "evidence"]
    beyond = t["under other quantizers and levers"]
    assert (
        beyond[CLAIM_NAMES[3]] == "holds (ch. 5) for: 8-bit logits at 4 bits"
        and beyond[CLAIM_NAMES[4]] == "–"
    )
    assert "<a href=" in answers.claim_html(t.reset_index())


def _drops(by_bits: dict[int, list[float]]) -> pd.DataFrame:
    rows = [{"variant": "default", "method": "crt", "metric": "tail", "imbalance_factor": 0.01,
             "bits": str(b), "seed": s, "drop": d}
            for b, ds in by_bits.items() for s, d in enumerate(ds)]  # fmt: skip
    return pd.DataFrame(rows)


def _upper(values) -> float:
    v = np.asarray(values, dtype=float)
    return v.mean() + stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))


def test_safe_bits_is_the_fewest_bits_whose_interval_stays_within_the_tolerance():
    by = {8: [0.0, 0.1, -0.1], 6: [0.2, 0.4, 0.3], 4: [2.0, 3.0, 4.0], 3: [0.0, 0.1, 0.2]}
    safe = answers.safe_bits(_drops(by), "crt", 0.01, tolerance=1.0)
    # 3 bits is within the tolerance too, but 4 bits is not: safe means every bit-width from there up
    assert safe["safe_bits"] == "6" and safe["below_bits"] == "4"
    assert safe["safe_upper"] == f"{max(_upper(by[8]), _upper(by[6])):.1f}"
    assert safe["below_drop"] == "3.0 [0.5, 5.5]"
    assert "at 4 bits its cost is 3.0 [0.5, 5.5] points" in answers.guidance_text(safe)
    none = answers.safe_bits(_drops({8: [1.0, 2.0, 3.0], 6: [0.0, 0.0, 0.1]}), "crt", 0.01, tolerance=1.0)
    assert none["safe_bits"] == "none" and answers.guidance_text(none).startswith("Even at 8 bits")
    with pytest.raises(ValueError, match="no default sweep of 'lws' at IF 0.01"):
        answers.safe_bits(_drops(by), "lws", 0.01)


def test_the_cheapest_lever_must_win_at_every_bit_width_asked():
    won = [("GPTQ", "3"), ("GPFQ", "4"), ("GPFQ", "3"), ("rebalanced", "4"), ("rebalanced", "3")]
    cost = pd.DataFrame({"mitigation": ["GPTQ", "GPFQ", "rebalanced"], "seconds": [10.0, 60.0, 32.0]})
    # GPTQ is cheapest but wins at 3 bits only
    assert answers.cheapest(won, cost, ["4", "3"]) == "rebalanced (about 32 s per network here)"
    assert answers.cheapest(won, cost, ["3"]) == "GPTQ (about 10 s per network here)"
    assert answers.cheapest([], cost, ["4", "3"]) == "none of the levers"
