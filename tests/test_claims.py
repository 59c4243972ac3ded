"""ltmpq.claims: claims 1 and 2 as parts with their evidence, the verdict table, the combined
verdicts and the sentences the chapters glue.

Everything reads the tiny synthetic stored results of :func:`fakes.hand_results` (the ``hand_*``
fixtures), with head and tail accuracies chosen so that every expected gap, mean and 95%
t-interval below can be computed by hand. Nothing is trained and no data is read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fakes import (
    HALF1,
    frame_of,
    ht,
)
from scipy import stats as sps

from ltmpq import claims, verdicts


def test_claim1_parts(hand_frame):
    """claim1: 1a the mildest IF's gap > 0, 1b strongest minus mildest gap > 0, values per seed."""
    a, b = claims.claim1(hand_frame)
    assert (a.claim, a.part, b.claim, b.part) == (1, "1a", 1, "1b")
    assert a.statement == "a head–tail gap exists at the mildest imbalance"
    assert a.quantity == "head − tail, baseline, IF 0.1"
    assert (a.threshold, a.direction, a.where) == (0.0, "greater", "01_evaluation")
    assert list(a.values.index) == [0, 1, 2]
    assert a.values.tolist() == pytest.approx([10, 11, 12])
    assert b.statement == "the gap grows with imbalance"
    assert b.quantity == "gap(IF 0.01) − gap(IF 0.1), baseline"
    assert (b.threshold, b.direction) == (0.0, "greater")
    assert b.values.tolist() == pytest.approx([30, 27, 24])


def test_claim2_parts(hand_frame):
    """claim2: 2a gap(baseline) - gap(cRT) > 0 and 2b gap(cRT) > 10 at the strongest IF."""
    a, b = claims.claim2(hand_frame)
    assert (a.claim, a.part, b.claim, b.part) == (2, "2a", 2, "2b")
    assert a.statement == "cRT narrows the gap"
    assert a.quantity == "gap(baseline) − gap(cRT), IF 0.01"
    assert (a.threshold, a.direction, a.where) == (0.0, "greater", "02_decoupling")
    assert a.values.tolist() == pytest.approx([25, 24, 23])
    assert b.statement == "a gap of more than 10 points remains"
    assert b.quantity == "gap(cRT), IF 0.01"
    assert (b.threshold, b.direction) == (verdicts.GAP_REMAINS, "greater") == (10.0, "greater")
    assert b.values.tolist() == pytest.approx([15, 14, 13])


def test_part_evidence_is_the_verdict_rule():
    """Part.evidence: the t-interval of its values against its threshold in its direction."""
    p = claims.Part(9, "9a", "s", "q", pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2]), 0.5, "less", "#x")
    ev = p.evidence()
    assert ev["estimate"] == pytest.approx(2)
    assert ev["ci_low"] == pytest.approx(2 - HALF1) and ev["ci_high"] == pytest.approx(2 + HALF1)
    assert (ev["threshold"], ev["direction"], ev["n"]) == (0.5, "less", 3)
    assert ev["verdict"] == verdicts.INCONCLUSIVE  # the interval [-0.48, 4.48] holds 0.5
    p = claims.Part(9, "9b", "s", "q", pd.Series([5.0, 6.0, 7.0]), 0.5, "less", "#x")
    assert p.evidence()["verdict"] == verdicts.NOT_SUPPORTED
    p = claims.Part(9, "9c", "s", "q", pd.Series([5.0, 6.0, 7.0]), 0.5, "greater", "#x")
    assert p.evidence()["verdict"] == verdicts.SUPPORTED
    expected_p = sps.ttest_1samp([5, 6, 7], 0.5).pvalue  # two-sided, as the interval
    assert p.evidence()["pvalue"] == pytest.approx(expected_p)


@pytest.mark.parametrize(
    ("crt_gaps", "verdict"),
    [
        ((15, 14, 13), verdicts.SUPPORTED),  # [11.5, 16.5] above 10
        ((4, 5, 6), verdicts.NOT_SUPPORTED),  # [2.5, 7.5] wholly below 10
        ((8, 10, 12), verdicts.INCONCLUSIVE),  # [5.0, 15.0] holds 10
    ],
)
def test_claim2b_verdicts(crt_gaps, verdict):
    """claim2's 2b against its 10-point threshold: supported, not supported and inconclusive."""
    parts = claims.claim2(frame_of({(0.01, "crt"): ht(*crt_gaps, head=80)}))
    ev = parts[1].evidence()
    assert ev["estimate"] == pytest.approx(np.mean(crt_gaps))
    assert ev["verdict"] == verdict
    assert parts[0].evidence()["verdict"] == verdicts.SUPPORTED  # baseline 40, 38, 36 is wider still


def test_claim1_not_supported_and_inconclusive():
    """claim1: a gap of 0 at the mildest IF is not supported; growth with an interval over 0 inconclusive."""
    f = frame_of({(0.1, "baseline"): ht(0, 0, 0), (0.01, "baseline"): ht(-3, 0, 6)})
    a, b = claims.claim1(f)
    assert a.evidence()["verdict"] == verdicts.NOT_SUPPORTED
    assert b.evidence()["estimate"] == pytest.approx(1)
    assert b.evidence()["verdict"] == verdicts.INCONCLUSIVE


def test_claim1_single_if_has_an_empty_1b():
    """claim1 with one imbalance factor: 1a at that IF, 1b has no values and is inconclusive."""
    a, b = claims.claim1(frame_of(ifs=(0.01,)))
    assert a.quantity == "head − tail, baseline, IF 0.01"
    assert a.values.tolist() == pytest.approx([40, 38, 36])
    assert b.values.empty
    ev = b.evidence()
    assert ev["n"] == 0 and ev["verdict"] == verdicts.INCONCLUSIVE
    assert claims.part_facts([a, b])["part_1b"].startswith("inconclusive (")


def test_claims_with_one_seed_are_inconclusive():
    """Claims 1-2 with one seed: no interval, every part inconclusive whatever the estimate."""
    parts = claims.claim1(frame_of(seeds=(0,))) + claims.claim2(frame_of(seeds=(0,)))
    table = claims.verdict_table(parts)
    assert table["verdict"].tolist() == [verdicts.INCONCLUSIVE] * 4
    assert table["estimate [95% CI]"].tolist()[0] == "+10.00 (one seed: needs ≥ 2 seeds)"
    assert table["p"].isna().all()
    assert claims.claim_verdicts(table) == {1: verdicts.INCONCLUSIVE, 2: verdicts.INCONCLUSIVE}


def test_verdict_table_rows(hand_frame):
    """verdict_table: one row per part with the measured question, estimate [CI], two-sided p, verdict,
    the blog's value and whether our interval covers it."""
    t = claims.verdict_table(claims.claim1(hand_frame) + claims.claim2(hand_frame))
    assert list(t.columns) == ["claim", "part", "statement", "condition", "measured", "estimate [95% CI]",
                               "p", "verdict", "blog", "reproduces blog", "where"]  # fmt: skip
    # the blog's own gaps (Table 1): 3.2 at IF 0.1, its growth 39.0, cRT's narrowing 32.8 and 9.4 left
    assert t["blog"].tolist() == pytest.approx([3.2, 39.0, 32.8, 9.4])
    assert t["reproduces blog"].tolist() == [
        "no: ours higher",
        "no: ours lower",
        "no: ours lower",
        "no: ours higher",
    ]
    assert t["part"].tolist() == ["1a", "1b", "2a", "2b"]
    assert t["claim"].tolist() == [1, 1, 2, 2]
    assert t["measured"].tolist() == [
        "head − tail, baseline, IF 0.1 > 0?",
        "gap(IF 0.01) − gap(IF 0.1), baseline > 0?",
        "gap(baseline) − gap(cRT), IF 0.01 > 0?",
        "gap(cRT), IF 0.01 > 10?",
    ]
    assert t["estimate [95% CI]"].tolist() == [
        "+11.00 [+8.52, +13.48]",
        "+27.00 [+19.55, +34.45]",  # sd 3: half 7.452
        "+24.00 [+21.52, +26.48]",
        "+14.00 [+11.52, +16.48]",
    ]
    assert t["p"].tolist() == pytest.approx(
        [
            sps.ttest_1samp([10, 11, 12], 0).pvalue,
            sps.ttest_1samp([30, 27, 24], 0).pvalue,
            sps.ttest_1samp([25, 24, 23], 0).pvalue,
            sps.ttest_1samp([15, 14, 13], 10).pvalue,
        ]
    )
    assert t["verdict"].tolist() == [verdicts.SUPPORTED] * 4
    assert t["where"].tolist() == ["01_evaluation"] * 2 + ["02_decoupling"] * 2


def test_verdict_table_less_direction():
    """verdict_table writes '<' for a part claimed to be less than its threshold."""
    p = claims.Part(4, "4d", "s", "overall cost", pd.Series([0.1, 0.2, 0.3]), 0.5, "less", "#sec")
    row = claims.verdict_table([p]).iloc[0]
    assert row["measured"] == "overall cost < 0.5?"
    assert row["estimate [95% CI]"] == f"+0.20 [{0.2 - 0.1 * HALF1:+.2f}, {0.2 + 0.1 * HALF1:+.2f}]"


@pytest.mark.parametrize(
    ("crt_gaps", "claim2"),
    [
        ((15, 14, 13), verdicts.SUPPORTED),
        ((4, 5, 6), verdicts.NOT_SUPPORTED),
        ((8, 10, 12), verdicts.INCONCLUSIVE),
    ],
)
def test_claim_verdicts_combine_parts(crt_gaps, claim2):
    """claim_verdicts: a claim is supported only when all parts are, not supported when any is not."""
    f = frame_of({(0.01, "crt"): ht(*crt_gaps, head=80)})
    table = claims.verdict_table(claims.claim1(f) + claims.claim2(f))
    assert claims.claim_verdicts(table) == {1: verdicts.SUPPORTED, 2: claim2}


def test_claim_verdicts_not_supported_beats_inconclusive():
    """claim_verdicts: one part not supported and the other inconclusive -> the claim is not supported."""
    f = frame_of({(0.1, "baseline"): ht(0, 0, 0), (0.01, "baseline"): ht(-3, 0, 6)})
    table = claims.verdict_table(claims.claim1(f))
    assert table["verdict"].tolist() == [verdicts.NOT_SUPPORTED, verdicts.INCONCLUSIVE]
    assert claims.claim_verdicts(table) == {1: verdicts.NOT_SUPPORTED}


def test_part_facts_text(hand_frame):
    """part_facts: 'verdict (+est [+lo, +hi])' per part and one sentence per claim."""
    facts = claims.part_facts(claims.claim1(hand_frame))
    assert facts == {
        "part_1a": "supported (+11.00 [+8.52, +13.48])",
        "part_1b": "supported (+27.00 [+19.55, +34.45])",
        "claim1_parts": "1a (a head–tail gap exists at the mildest imbalance): supported, "
        "+11.00 [+8.52, +13.48]; 1b (the gap grows with imbalance): supported, +27.00 [+19.55, +34.45]",
    }


def test_part_facts_two_claims_and_not_supported():
    """part_facts over claims 1 and 2: a sentence for each claim, 2b 'not supported' with its interval."""
    f = frame_of({(0.01, "crt"): ht(4, 5, 6, head=80)})
    facts = claims.part_facts(claims.claim1(f) + claims.claim2(f))
    assert set(facts) == {"part_1a", "part_1b", "part_2a", "part_2b", "claim1_parts", "claim2_parts"}
    assert facts["part_2b"] == f"not supported (+5.00 [{5 - HALF1:+.2f}, {5 + HALF1:+.2f}])"
    assert facts["part_2b"] == "not supported (+5.00 [+2.52, +7.48])"
    assert facts["part_2a"] == "supported (+33.00 [+25.55, +40.45])"  # 36, 33, 30: sd 3, half 7.452
    assert facts["claim2_parts"] == (
        "2a (cRT narrows the gap): supported, +33.00 [+25.55, +40.45]; "
        "2b (a gap of more than 10 points remains): not supported, +5.00 [+2.52, +7.48]"
    )


# ------------------------------------------------------------------ the review's rules


def _part(claim, name, values, condition="", published=None):
    return claims.Part(claim, name, "s", "q", pd.Series(values), 1.0, "greater", "x", published, condition)


def test_the_verdict_table_carries_conditions_and_agreement_with_the_blog():
    parts = [_part(3, "3a", [0.1, 0.0, -0.1], "6 bits", 6.0), _part(3, "3b", [5.0, 6.0, 7.0], "3 bits")]
    t = claims.verdict_table(parts)
    assert t["condition"].tolist() == ["6 bits", "3 bits"]
    assert t["reproduces blog"].tolist() == ["no: ours lower", "–"]
    assert claims.claim_conditions(t) == {3: "holds at 3 bits; not at 6 bits"}
