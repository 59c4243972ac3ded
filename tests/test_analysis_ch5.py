"""Chapter 5's analysis (ltmpq.analysis.ch5_six_bits): the quantizer hypotheses against the blog's
Figs. 7/8 and claim 3's rule, the integer-runtime agreement, and the per-class mechanism.

The hypotheses read a tiny synthetic store in the shape ``ltmpq.runs.quantized`` writes: three
quantizer variants ("default", "logits", "W=A", stored in that order) x two imbalance factors x
three seeds, weight bits float / 8 / 6 / 4 / 3 and three methods (baseline, cRT and LWS, which
chapter 5 never shows). At IF 0.01 the head and tail drops from float (points) of seed s are

    head drop = H + 0.1 * (s - 1),    tail drop = T + 0.3 * (s - 1)

with the means (H, T) of :data:`MEANS`; at IF 0.1 every drop is 10 points (never read here).
So over the three seeds every head drop has the 95% t-interval half-width 0.1 * HALF1 = 0.248,
every tail drop 0.3 * HALF1 = 0.745, and claim 3's per-seed delta = tail - head drop is
``T - H + 0.2 * (s - 1)``, half-width 0.2 * HALF1 = 0.497. Expected values are worked out by hand
in the comments beside each assertion.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ltmpq import frames, verdicts
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.analysis.ch3_quantization import blog_drop
from ltmpq.config import Stage1Config
from ltmpq.tables import pm

IFS = (0.1, 0.01)
SEEDS = (0, 1, 2)
CFGS = [Stage1Config(imbalance_factor=f, seed=s) for f in IFS for s in SEEDS]
BITS = ("float", "8", "6", "4", "3")
METHODS = ("baseline", "crt", "lws")
VARIANTS = ("default", "logits", "W=A")  # stored order: hypothesis_table must re-sort by distance
#: half-width of the 95% t-interval of three values whose standard deviation is 1
HALF1 = sps.t.ppf(0.975, 2) / math.sqrt(3)  # 4.3027 / 1.7321 = 2.4841
HEAD_CI, TAIL_CI, DELTA_CI = 0.1 * HALF1, 0.3 * HALF1, 0.2 * HALF1  # 0.248, 0.745, 0.497
FLOAT_HEAD, FLOAT_TAIL = 80.0, 50.0  # float accuracy (percent) of every run

#: (variant, method) -> {bits: (H, T)}: mean head and tail drops at IF 0.01. LWS and 3 bits
#: (50-point drops) are outside what chapter 5 shows and must never reach its tables.
MEANS = {
    # blog (Figs. 7/8): baseline 8 bits 0.2 / 0.4, 6 bits 0.5 / 6.5; cRT -0.2 / -0.2, 2.7 / 6.6
    ("default", "baseline"): {"8": (0.0, 0.0), "6": (2.5, 1.0), "4": (1.0, 3.0), "3": (50.0, 50.0)},
    ("default", "crt"): {"8": (0.0, 0.0), "6": (0.5, 0.6), "4": (1.0, 3.0), "3": (50.0, 50.0)},
    ("logits", "baseline"): {"8": (0.0, 0.0), "6": (2.0, 8.0), "4": (3.0, 4.0), "3": (50.0, 50.0)},
    ("logits", "crt"): {"8": (0.0, 0.0), "6": (1.0, 1.6), "4": (2.0, 2.0), "3": (50.0, 50.0)},
    # "W=A" is the blog's own drops at 8 and 6 bits
    ("W=A", "baseline"): {"8": (0.2, 0.4), "6": (0.5, 6.5), "4": (2.0, 12.0), "3": (50.0, 50.0)},
    ("W=A", "crt"): {"8": (-0.2, -0.2), "6": (2.7, 6.6), "4": (3.0, 3.5), "3": (50.0, 50.0)},
}


def _drops(variant: str, f: float, s: int, m: str, b: str) -> tuple[float, float]:
    if f != 0.01 or m == "lws":
        return 10.0, 10.0
    h, t = MEANS[(variant, m)][b]
    return h + 0.1 * (s - 1), t + 0.3 * (s - 1)


def quant_result(cfg: Stage1Config, variant: str) -> dict:
    """One stored sweep: test metrics (fractions) from :func:`_drops`; val and per-class unused."""
    f, s = cfg.imbalance_factor, cfg.seed
    entries = {}
    for b in BITS:
        methods = {}
        for m in METHODS:
            hd, td = (0.0, 0.0) if b == "float" else _drops(variant, f, s, m, b)
            metrics = {"overall": 0.6, "head": (FLOAT_HEAD - hd) / 100, "tail": (FLOAT_TAIL - td) / 100}
            methods[m] = {"test": {"metrics": metrics, "per_class": [0.5] * 10}}
        entries[b] = {"methods": methods}
    return {"kind": "quantized", "imbalance_factor": f, "seed": s, "entries": entries}


def drop_frame(cfgs=CFGS) -> pd.DataFrame:
    """The store's :func:`ltmpq.frames.drop_frame` (of the runs ``cfgs``)."""
    qres = {v: {c: quant_result(c, v) for c in cfgs} for v in VARIANTS}
    return frames.drop_frame(frames.quant_frame(qres))


@pytest.fixture(scope="module")
def drops() -> pd.DataFrame:
    return drop_frame()


@pytest.fixture(scope="module")
def table(drops) -> pd.DataFrame:
    return ch5.hypothesis_drops(drops, 0.01)


def _row(table: pd.DataFrame, variant: str, method: str, bits: str) -> pd.Series:
    hit = table[(table["variant"] == variant) & (table["method"] == method) & (table["bits"] == bits)]
    assert len(hit) == 1, (variant, method, bits)
    return hit.iloc[0]


def _cells(rows: dict[tuple[str, str, str], tuple[float, float]]) -> pd.DataFrame:
    """A hand-made hypothesis_drops table: (variant, method, bits) -> (head_drop, tail_drop)."""
    return pd.DataFrame(
        [
            {"variant": v, "method": m, "bits": b, "head_drop": h, "head_ci": 0.1, "tail_drop": t,
             "tail_ci": 0.2, "n": 3}
            for (v, m, b), (h, t) in rows.items()
        ]
    )  # fmt: skip


def cell(t: pd.DataFrame, row: str, col: tuple[str, str]) -> str:
    """A (model, bits) cell of hypothesis_table (its columns are a flat index of tuples)."""
    return t[col][row]


#: the blog's eight cells, for hand-made tables
BLOG = {(m, b): (blog_drop(m, "head", int(b)), blog_drop(m, "tail", int(b))) for m in ("baseline", "crt")
        for b in ("8", "6")}  # fmt: skip


# ------------------------------------------------------------------ hypothesis_drops


def test_blog_drops_are_read_off_figs_7_and_8():
    # head 88.5 - 88.0, tail 46.3 - 39.8 (baseline, 6 bits); cRT 81.4 - 78.7, 72.0 - 65.4
    assert blog_drop("baseline", "head", 6) == pytest.approx(0.5)
    assert blog_drop("baseline", "tail", 6) == pytest.approx(6.5)
    assert blog_drop("crt", "head", 6) == pytest.approx(2.7)
    assert blog_drop("crt", "tail", 6) == pytest.approx(6.6)
    # 8 bits: 88.5 - 88.3, 46.3 - 45.9; cRT 81.4 - 81.6, 72.0 - 72.2 (it gains)
    assert blog_drop("baseline", "head", 8) == pytest.approx(0.2)
    assert blog_drop("baseline", "tail", 8) == pytest.approx(0.4)
    assert blog_drop("crt", "head", 8) == pytest.approx(-0.2)
    assert blog_drop("crt", "tail", 8) == pytest.approx(-0.2)


def test_hypothesis_drops_means_and_intervals_over_seeds(table):
    # 3 variants x baseline, cRT x 8, 6, 4 bits: no LWS, no float, no 3 bits, no IF 0.1
    assert len(table) == 3 * 2 * 3
    assert set(table["method"]) == {"baseline", "crt"}
    assert list(dict.fromkeys(table["bits"])) == ["8", "6", "4"]
    assert list(dict.fromkeys(table["variant"])) == list(VARIANTS)
    assert (table["n"] == 3).all()
    for (v, m), by_bits in MEANS.items():
        for b in ("8", "6", "4"):
            r = _row(table, v, m, b)
            # seeds 0, 1, 2 give H - 0.1, H, H + 0.1 (sd 0.1) and T - 0.3, T, T + 0.3 (sd 0.3)
            assert r["head_drop"] == pytest.approx(by_bits[b][0], abs=1e-9)
            assert r["tail_drop"] == pytest.approx(by_bits[b][1], abs=1e-9)
            assert r["head_ci"] == pytest.approx(HEAD_CI, abs=1e-9)  # 0.1 * 2.4841 = 0.2484
            assert r["tail_ci"] == pytest.approx(TAIL_CI, abs=1e-9)  # 0.3 * 2.4841 = 0.7452


def test_hypothesis_drops_reads_one_imbalance_factor(drops):
    # IF 0.1: every drop 10 points in every seed (a zero-width interval)
    r = _row(ch5.hypothesis_drops(drops, 0.1), "default", "baseline", "6")
    assert (r["head_drop"], r["tail_drop"], r["head_ci"]) == pytest.approx((10.0, 10.0, 0.0), abs=1e-9)
    # the IF 0.01 table is the same with or without the IF 0.1 runs in the frame
    only = ch5.hypothesis_drops(drop_frame([c for c in CFGS if c.imbalance_factor == 0.01]), 0.01)
    pd.testing.assert_frame_equal(only, ch5.hypothesis_drops(drops, 0.01))


def test_hypothesis_drops_other_bits_and_missing_sweeps(drops):
    three = ch5.hypothesis_drops(drops, 0.01, bits=("3",))
    assert len(three) == 3 * 2 and set(three["bits"]) == {"3"}
    assert three["tail_drop"].to_numpy() == pytest.approx([50.0] * 6, abs=1e-9)
    with pytest.raises(ValueError, match=r"no sweeps at IF 0.02 and bits \['8', '6', '4'\]"):
        ch5.hypothesis_drops(drops, 0.02)
    with pytest.raises(ValueError, match="no sweeps at IF 0.01 and bits"):
        ch5.hypothesis_drops(drops, 0.01, bits=("5",))


# ------------------------------------------------------------------ distance and pattern


def test_blog_distance_is_the_mean_absolute_difference_over_the_eight_cells(table):
    d = ch5.blog_distance(table)
    assert list(d.index) == list(VARIANTS) and d.name == "distance"
    # default: baseline 8 |0-0.2| + |0-0.4|, 6 |2.5-0.5| + |1.0-6.5|; cRT 8 |0+0.2| + |0+0.2|,
    # 6 |0.5-2.7| + |0.6-6.6| = 0.2 + 0.4 + 2.0 + 5.5 + 0.2 + 0.2 + 2.2 + 6.0 = 16.7 -> / 8 = 2.0875
    assert d["default"] == pytest.approx(2.0875, abs=1e-9)
    # logits: 0.2 + 0.4 + |2-0.5| + |8-6.5| + 0.2 + 0.2 + |1-2.7| + |1.6-6.6|
    #       = 0.2 + 0.4 + 1.5 + 1.5 + 0.2 + 0.2 + 1.7 + 5.0 = 10.7 -> 1.3375 (4 bits not counted)
    assert d["logits"] == pytest.approx(1.3375, abs=1e-9)
    assert d["W=A"] == pytest.approx(0.0, abs=1e-9)  # the blog's own drops


def test_blog_distance_by_hand_on_a_made_table():
    exact = {("exact", m, b): v for (m, b), v in BLOG.items()}
    # each cell 1 point off in alternating directions: distance 1
    off = {("off", m, b): (h + 1, t - 1) for (m, b), (h, t) in BLOG.items()}
    # |ours - blog|: baseline 8: 0.2 (0) / 1.4 (1), 6: 0.0 (0.5) / 9.5 (3);
    # cRT 8: -0.2 (0) / 0.8 (1), 6: 2.7 (0) / 6.1 (0.5);
    # baseline 4 bits is not a blog cell
    mixed = {("mixed", "baseline", "8"): (0.2, 1.4), ("mixed", "baseline", "6"): (0.0, 9.5),
             ("mixed", "crt", "8"): (-0.2, 0.8), ("mixed", "crt", "6"): (2.7, 6.1),
             ("mixed", "baseline", "4"): (90.0, 90.0)}  # fmt: skip
    only4 = {("only 4 bits", "baseline", "4"): (1.0, 1.0)}
    d = ch5.blog_distance(_cells(exact | off | mixed | only4))
    assert d["exact"] == pytest.approx(0.0, abs=1e-12)
    assert d["off"] == pytest.approx(1.0, abs=1e-12)
    assert d["mixed"] == pytest.approx(6.0 / 8)  # 0 + 1 + 0.5 + 3 + 0 + 1 + 0 + 0.5 = 6
    assert np.isnan(d["only 4 bits"])  # no blog cell at all


@pytest.mark.parametrize(
    ("head", "tail", "expected"),
    [
        (1.0, 5.0, True),  # both boundaries are inclusive
        (0.5, 6.5, True),  # the blog's
        (-1.0, 20.0, True),  # the head may even gain
        (1.0, 4.99, False),  # the tail just short of 5 points
        (1.01, 5.0, False),  # the head just over 1 point
        (2.0, 8.0, False),
    ],
)
def test_blog_pattern_boundaries(head, tail, expected):
    t = _cells({("v", "baseline", "6"): (head, tail), ("v", "crt", "6"): (0.0, 0.0)})
    p = ch5.blog_pattern(t)
    assert p.dtype == bool and p["v"] == expected


def test_blog_pattern_reads_the_baselines_six_bits_only(table):
    # cRT 6-bit tail 6.6, head 0.0 would be the pattern; the baseline's 6 bits lose nothing
    t = _cells({("crt only", "baseline", "6"): (0.0, 0.0), ("crt only", "crt", "6"): (0.0, 6.6),
                ("crt only", "baseline", "4"): (0.0, 9.0),
                ("no 6 bits", "baseline", "4"): (0.0, 9.0)})  # fmt: skip
    p = ch5.blog_pattern(t)
    assert p.to_dict() == {"crt only": False, "no 6 bits": False}
    assert ch5.blog_pattern(t, bits="4").to_dict() == {"crt only": True, "no 6 bits": True}
    # the store: W=A has 0.5 / 6.5; logits 2.0 / 8.0 (head over 1); default 2.5 / 1.0 (neither)
    assert ch5.blog_pattern(table).to_dict() == {"default": False, "logits": False, "W=A": True}
    assert ch5.blog_pattern(table).name == "pattern"


# ------------------------------------------------------------------ the chapter's table and facts


def test_hypothesis_table_rows_columns_and_cells(table):
    desc = {"logits": "logits at 8 bits", "W=A": "activations at the weights' bits"}
    t = ch5.hypothesis_table(table, desc)
    # the blog, the default, then by distance: W=A (0.0) before logits (1.34), whatever the stored order
    assert list(t.index) == ["blog", "default", "W=A", "logits"]
    cols = [(m, f"{b} bits") for m in ("baseline (CE)", "cRT") for b in ("8", "6", "4")]
    assert list(t.columns) == ["what", *cols, "distance to blog", "blog's 6-bit pattern"]
    assert t.loc["blog", "what"] == "the blog's Figs. 7/8 (one run)"
    assert t.loc["default", "what"] == "chapter 3's default quantizer (weights only)"
    assert t.loc["W=A", "what"] == "activations at the weights' bits"
    # the blog's cells "head / tail" to one decimal; it has no 4 bits
    assert cell(t, "blog", ("baseline (CE)", "8 bits")) == "0.2 / 0.4"
    assert cell(t, "blog", ("baseline (CE)", "6 bits")) == "0.5 / 6.5"
    assert cell(t, "blog", ("cRT", "8 bits")) == "-0.2 / -0.2"
    assert cell(t, "blog", ("cRT", "6 bits")) == "2.7 / 6.6"
    assert cell(t, "blog", ("cRT", "4 bits")) == "–"
    assert (t.loc["blog", "distance to blog"], t.loc["blog", "blog's 6-bit pattern"]) == (0.0, "yes")
    # ours "head ± ci / tail ± ci": half-widths 0.248 -> 0.2 and 0.745 -> 0.7
    assert cell(t, "W=A", ("baseline (CE)", "6 bits")) == "0.5 ± 0.2 / 6.5 ± 0.7"
    assert cell(t, "logits", ("baseline (CE)", "4 bits")) == "3.0 ± 0.2 / 4.0 ± 0.7"
    assert cell(t, "default", ("cRT", "6 bits")) == "0.5 ± 0.2 / 0.6 ± 0.7"
    assert t.loc["default", "distance to blog"] == pytest.approx(2.0875)
    assert t.loc["logits", "distance to blog"] == pytest.approx(1.3375)
    pattern = {"blog": "yes", "default": "no", "W=A": "yes", "logits": "no"}
    assert t["blog's 6-bit pattern"].to_dict() == pattern


def test_hypothesis_table_marks_missing_cells_and_averages_the_cells_it_has(table):
    # without logits' cRT rows its cRT cells are "–" and its distance is over the baseline's four:
    # (0.2 + 0.4 + 1.5 + 1.5) / 4 = 0.9; W=A stays closer (0.0)
    t = ch5.hypothesis_table(table[~((table["variant"] == "logits") & (table["method"] == "crt"))], {})
    assert cell(t, "logits", ("cRT", "6 bits")) == "–"
    assert cell(t, "logits", ("baseline (CE)", "6 bits")) == "2.0 ± 0.2 / 8.0 ± 0.7"
    assert t.loc["logits", "distance to blog"] == pytest.approx(0.9)
    assert list(t.index) == ["blog", "default", "W=A", "logits"]
    # one decimal where the interval is undefined (one seed): just the mean
    one = table.assign(head_ci=np.nan, tail_ci=np.nan)
    assert cell(ch5.hypothesis_table(one, {}), "W=A", ("cRT", "6 bits")) == "2.7 / 6.6"


def test_hypothesis_facts(table):
    f = ch5.hypothesis_facts(table)
    assert f["n_hypotheses"] == 2  # logits and W=A; the default is not a hypothesis
    assert f["pattern_variants"] == "W=A" and f["n_pattern"] == 1
    assert f["closest"] == "W=A" and f["closest_distance"] == "0.0"
    assert f["default_distance"] == "2.1"  # 2.0875
    # baseline 6-bit tail drops: default 1.0, logits 8.0, W=A 6.5 -> logits, 8.0 ± 0.7 (head 2.0 ± 0.2;
    # the largest head drop, 2.5, is the default's)
    assert f["worst6_variant"] == "logits"
    assert f["worst6_tail"] == pm(8.0, TAIL_CI) == "8.0 ± 0.7"
    assert f["worst6_head"] == "2.0 ± 0.2"
    assert (f["tail_hit"], f["head_spared"]) == ("5", "1")


def test_hypothesis_facts_when_no_hypothesis_shows_the_pattern(table):
    f = ch5.hypothesis_facts(table[table["variant"] != "W=A"])
    assert f["n_hypotheses"] == 1
    assert f["pattern_variants"] == "none of the 1" and f["n_pattern"] == 0
    assert f["closest"] == "logits" and f["closest_distance"] == "1.3"  # 1.3375 -> one decimal
    assert f["worst6_variant"] == "logits"


# ------------------------------------------------------------------ claim 3 under each quantizer


def test_claim3_by_variant_parts_and_estimates(drops):
    c3 = ch5.claim3_by_variant(drops, (8, 6, 4), list(VARIANTS))
    assert len(c3) == 3 * 4  # parts 3a-3d (6 bits, then 4 bits; baseline, then cRT) per variant
    assert list(c3["variant"]) == [v for v in VARIANTS for _ in range(4)]
    assert list(c3["part"]) == ["3a", "3b", "3c", "3d"] * 3
    v = c3.set_index(["variant", "part"])["verdict"]
    # delta per seed T - H + 0.2 (s - 1), interval +- 0.497: supported when T - H > 1.497, not
    # supported when T - H <= 0.503, else inconclusive
    assert v["W=A"].to_dict() == {  # 6.0, 3.9 at 6 bits; 10.0, 0.5 at 4 bits
        "3a": verdicts.SUPPORTED, "3b": verdicts.SUPPORTED,
        "3c": verdicts.SUPPORTED, "3d": verdicts.NOT_SUPPORTED,
    }  # fmt: skip
    assert v["logits"].to_dict() == {  # 6.0, 0.6 (inconclusive) at 6 bits; 1.0 (inconclusive), 0.0 at 4
        "3a": verdicts.SUPPORTED, "3b": verdicts.INCONCLUSIVE,
        "3c": verdicts.INCONCLUSIVE, "3d": verdicts.NOT_SUPPORTED,
    }  # fmt: skip
    assert v["default"].to_dict() == {  # -1.5, 0.1 at 6 bits; 2.0, 2.0 at 4 bits
        "3a": verdicts.NOT_SUPPORTED, "3b": verdicts.NOT_SUPPORTED,
        "3c": verdicts.SUPPORTED, "3d": verdicts.SUPPORTED,
    }  # fmt: skip
    est = c3.set_index(["variant", "part"])["estimate [95% CI]"]
    # W=A 3a: 6.0 +- 0.497 -> [5.50, 6.50]; logits 3c: 1.0 +- 0.497 -> [0.50, 1.50]
    assert est[("W=A", "3a")] == "+6.00 [+5.50, +6.50]"
    assert est[("logits", "3c")] == "+1.00 [+0.50, +1.50]"


def test_claim3_conditions_names_the_variant_and_bits_where_both_models_hold(drops):
    c3 = ch5.claim3_by_variant(drops, (8, 6, 4), list(VARIANTS))
    c = ch5.claim3_conditions(c3)
    # both models supported: default at 4 bits and W=A at 6 bits (logits: never both)
    assert c["claim3_conditions"] == "default (4 bits); W=A (6 bits)"
    assert "W=A (6 bits)" in c["claim3_conditions"].split("; ")
    assert c["claim3_default"] == "not supported at 6 bits, supported at 4 bits"
    # logits: 6 bits inconclusive (cRT), 4 bits not supported (cRT): never both models
    only = ch5.claim3_conditions(ch5.claim3_by_variant(drops, (8, 6, 4), ["default", "logits"]))
    assert only["claim3_conditions"] == "default (4 bits)"
    none = ch5.claim3_conditions(c3[c3["variant"] != "default"].query("variant == 'logits'"))
    assert none["claim3_conditions"] == "none of them"


def test_claim3_reads_the_strongest_imbalance_only(drops):
    # IF 0.1 drops are 10 / 10 everywhere (delta 0): alone they give "not supported"; beside
    # IF 0.01 they are ignored, so W=A's 6 bits stay supported
    at01 = drops[drops["imbalance_factor"] == 0.1]
    c = ch5.claim3_conditions(ch5.claim3_by_variant(at01, (8, 6, 4), ["default", "W=A"]))
    assert c == {"claim3_conditions": "none of them", "claim3_default": "not supported at 6 bits, "
                 "not supported at 4 bits"}  # fmt: skip


# ------------------------------------------------------------------ the integer runtime


def _int(agreement, rounded, sim, integer, max_logit, per_class) -> dict:
    return {"agreement": agreement, "agreement_rounded_input": rounded, "sim_accuracy": sim,
            "int_accuracy": integer, "max_abs_logit_difference": max_logit,
            "per_class_difference": per_class}  # fmt: skip


@pytest.fixture
def eres_integer() -> dict:
    c0, c1 = (Stage1Config(imbalance_factor=0.01, seed=s) for s in (0, 1))
    return {
        c0: {"integer": {
            "baseline": _int(0.998, 1.0, 0.60, 0.602, 0.5, [0.0, 0.01, -0.03, float("nan")]),
            "crt": _int(0.996, 0.999, 0.55, 0.549, 0.25, [-0.02, 0.0]),
        }},
        c1: {"integer": {
            "baseline": _int(1.0, 1.0, 0.61, 0.61, 0.0, [0.0, 0.0]),
            "crt": _int(0.994, 0.998, 0.50, 0.50, 0.125, [0.01, -0.01]),
        }},
    }  # fmt: skip


def test_integer_frame_in_percent(eres_integer):
    f = ch5.integer_frame(eres_integer)
    assert list(f.columns) == ["imbalance_factor", "seed", "head", "agreement", "rounded input", "simulated",
                               "integer", "max |Δ logit|", "worst class Δ"]  # fmt: skip
    assert list(zip(f["seed"], f["head"], strict=True)) == [(0, "baseline"), (0, "crt"), (1, "baseline"),
                                                           (1, "crt")]  # fmt: skip
    assert f["agreement"].to_numpy() == pytest.approx([99.8, 99.6, 100.0, 99.4])
    assert f["rounded input"].to_numpy() == pytest.approx([100.0, 99.9, 100.0, 99.8])
    assert f["simulated"].to_numpy() == pytest.approx([60.0, 55.0, 61.0, 50.0])
    assert f["integer"].to_numpy() == pytest.approx([60.2, 54.9, 61.0, 50.0])
    assert f["max |Δ logit|"].to_numpy() == pytest.approx([0.5, 0.25, 0.0, 0.125])  # not in percent
    # the largest |per-class difference|, NaN (a class without images) ignored: 3, 2, 0, 1 points
    assert f["worst class Δ"].to_numpy() == pytest.approx([3.0, 2.0, 0.0, 1.0])


def test_integer_facts_goal_met_only_with_rounded_input(eres_integer):
    f = ch5.integer_facts(ch5.integer_frame(eres_integer))
    assert f["int_goal"] == "99.5"
    assert f["int_agree_min"] == "99.40"
    assert f["int_agree_mean"] == "99.70"  # (99.8 + 99.6 + 100 + 99.4) / 4
    assert f["int_goal_met"] == "misses"
    assert f["int_rounded_min"] == "99.80"
    assert f["int_acc_diff"] == "0.20"  # |60.2 - 60.0| beats |54.9 - 55.0|
    assert f["int_class_diff"] == "3.0"
    assert f["int_runs"] == 2  # two (IF, seed) runs, two heads each
    assert f["int_conclusion"].startswith("The gap is the input rounding that the simulation lacks")


def test_integer_facts_goal_met_and_neither(eres_integer):
    frame = ch5.integer_frame(eres_integer)
    # every agreement at least the goal, 99.5 itself included: met
    met = ch5.integer_facts(frame.assign(agreement=[99.5, 99.9, 100.0, 99.5]))
    assert met["int_goal_met"] == "meets" and met["int_agree_min"] == "99.50"
    assert met["int_conclusion"] == (
        "So the simulated numbers stand for what this deployed integer model does."
    )
    # the plain agreement misses and so does the rounded-input one (99.49 < 99.5): the kernels
    neither = ch5.integer_facts(frame.assign(**{"rounded input": [100.0, 99.49, 100.0, 99.9]}))
    assert neither["int_goal_met"] == "misses" and neither["int_rounded_min"] == "99.49"
    assert neither["int_conclusion"].startswith("The kernels themselves compute something else")
    # the rounded input at the goal exactly: the rounding branch
    edge = ch5.integer_facts(frame.assign(**{"rounded input": [99.5] * 4}))
    assert edge["int_conclusion"].startswith("The gap is the input rounding")


# ------------------------------------------------------------------ the mechanism


COUNTS = [500, 300, 180, 108, 65, 39, 23, 14, 8, 5]
MECH_BITS = (6, 4)


def _float_pc(seed: int, head: str) -> list[float]:
    return [0.9 - 0.05 * c + 0.01 * seed + (0.02 if head == "crt" else 0.0) for c in range(10)]


def _quant_pc(seed: int, head: str, bits: str) -> list[float]:
    lost = {"6": 0.01, "4": 0.03}[bits]
    return [a - lost * c for c, a in enumerate(_float_pc(seed, head))]


def _curv(seed: int, head: str, images: str) -> dict:
    k = 1.0 + seed + (0.5 if head == "crt" else 0.0) + (2.0 if images == "train" else 0.0)
    return {"class": list(range(10)), "images": [5] * 10, "trace": [k * (c + 1) for c in range(10)],
            "trace_stderr": [0.1] * 10, "grad_norm2": [k * (10 - c) for c in range(10)],
            "hawq_4": [k * c * c for c in range(10)], "hawq_4_stderr": [0.1] * 10,
            "hawq_6": [k * c for c in range(10)], "hawq_6_stderr": [0.1] * 10}  # fmt: skip


@pytest.fixture
def curvature_inputs():
    cfgs = [Stage1Config(imbalance_factor=0.01, seed=s) for s in (0, 1)]
    eres = {c: {"train_counts": COUNTS, "curvature": {
        "val": {h: _curv(c.seed, h, "val") for h in ("baseline", "crt")},
        "train": {"baseline": _curv(c.seed, "baseline", "train")},
    }} for c in cfgs}  # fmt: skip
    default = {
        c: {"entries": {
            b: {"methods": {h: {"test": {"per_class": _float_pc(c.seed, h) if b == "float"
                                         else _quant_pc(c.seed, h, b)}} for h in ("baseline", "crt")}}
            for b in ("float", "6", "4")
        }}
        for c in cfgs
    }  # fmt: skip
    return eres, default


def test_curvature_frame_drops_counts_and_keys(curvature_inputs):
    eres, default = curvature_inputs
    f = ch5.curvature_frame(eres, default, MECH_BITS)
    # 2 seeds x (val baseline, val cRT, train baseline) x 10 classes
    assert len(f) == 2 * 3 * 10
    assert set(map(tuple, f[["seed", "images_from", "head"]].drop_duplicates().to_numpy().tolist())) == {
        (s, i, h) for s in (0, 1) for i, h in (("val", "baseline"), ("val", "crt"), ("train", "baseline"))
    }
    assert (f["imbalance_factor"] == 0.01).all()
    for (seed, images, head), g in f.groupby(["seed", "images_from", "head"]):
        g = g.sort_values("class")
        flt = np.asarray(_float_pc(seed, head))
        for b in ("6", "4"):
            # 100 * (float - b-bit) per class: class c loses 1 (6 bits) or 3 (4 bits) points per c
            q = np.asarray(_quant_pc(seed, head, b))
            assert g[f"drop_{b}"].to_numpy() == pytest.approx(100 * (flt - q))
            assert g[f"drop_{b}"].to_numpy() == pytest.approx({"6": 1.0, "4": 3.0}[b] * np.arange(10))
        assert g["train_count"].to_numpy() == pytest.approx(COUNTS)
        assert g["neg_log_count"].to_numpy() == pytest.approx(-np.log(COUNTS))
        assert g["trace"].to_numpy() == pytest.approx(_curv(seed, head, images)["trace"])
    # the training images' rows take the baseline's drops (the only head measured there)
    tr = f[(f["images_from"] == "train") & (f["seed"] == 1)].sort_values("class")
    va = f[(f["images_from"] == "val") & (f["head"] == "baseline") & (f["seed"] == 1)].sort_values("class")
    assert tr["drop_4"].to_numpy() == pytest.approx(va["drop_4"].to_numpy())
    assert not (tr["trace"].to_numpy() == va["trace"].to_numpy()).all()


def _mech_frame(constant_seed: int | None = None) -> pd.DataFrame:
    """Two seeds of ten classes: the drop is exactly the rank of -log(count) (1..10, the rarest
    class last), the trace the drop plus noise smaller than half a rank, the gradient norm the
    reversed ranks, the HAWQ term the drop squared. ``constant_seed``: that seed's drop is 2 for
    every class."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in (0, 1):
        counts = np.asarray(COUNTS, dtype=float)
        nlc = -np.log(counts)
        rank = sps.rankdata(nlc)  # 1 .. 10
        for c in range(10):
            drop = 2.0 if seed == constant_seed else float(rank[c])
            rows.append({"seed": seed, "class": c, "images_from": "val", "head": "baseline",
                         "neg_log_count": nlc[c], "train_count": counts[c],
                         "trace": float(rank[c]) + rng.uniform(-0.4, 0.4),
                         "grad_norm2": 11.0 - rank[c], "hawq_6": rank[c] ** 2, "hawq_4": rank[c] ** 2,
                         "drop_6": drop, "drop_4": drop})  # fmt: skip
    return pd.DataFrame(rows)


def test_mechanism_table_recovers_a_perfect_rank_relation():
    m = ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50)
    assert set(m["bits"]) == set(MECH_BITS) and set(m["images"]) == {"val"} and set(m["head"]) == {"baseline"}
    sp = m[(m["kind"] == "spearman") & (m["bits"] == 4)].set_index("predictor")
    assert list(sp.index) == ["Hessian trace", "gradient norm²", "HAWQ term", "−log(training count)"]
    # every per-seed rho is +1 (trace, HAWQ, count) or -1 (gradient norm, reversed), and so are the
    # bootstrap's: the interval collapses onto the estimate
    assert sp["estimate"].to_numpy() == pytest.approx([1.0, -1.0, 1.0, 1.0])
    assert sp["ci_low"].to_numpy() == pytest.approx([1.0, -1.0, 1.0, 1.0])
    assert sp["ci_high"].to_numpy() == pytest.approx([1.0, -1.0, 1.0, 1.0])
    assert (sp["n"] == 10).all() and (sp["n_seeds"] == 2).all()
    # partial rho given the count: the count ranks the drops perfectly, nothing is left (NaN);
    # paired difference |rho| - |rho(count)|: 0 for every predictor
    part = m[(m["kind"] == "partial") & (m["bits"] == 4)]
    assert set(part["predictor"]) == {"Hessian trace", "gradient norm²", "HAWQ term"}
    assert (part["versus"] == "−log(training count)").all()
    diff = m[(m["kind"] == "difference") & (m["bits"] == 6)]
    assert diff["estimate"].to_numpy() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


@pytest.mark.parametrize("constant_seed", [0, 1])
def test_mechanism_table_gives_nan_rows_for_a_drop_without_ranks(constant_seed):
    m = ch5.mechanism_table(_mech_frame(constant_seed), MECH_BITS, n_boot=50)
    assert len(m) == 2 * 4  # per bits: one NaN spearman row per predictor, nothing else
    assert set(m["kind"]) == {"spearman"}
    assert list(m.loc[m["bits"] == 6, "predictor"]) == list(ch5.predictors(6))
    assert m[["estimate", "ci_low", "ci_high", "pvalue"]].isna().all().all()
    assert set(m["images"]) == {"val"} and set(m["head"]) == {"baseline"}


def test_mechanism_view_layout():
    m = ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50)
    v = ch5.mechanism_view(m)
    assert list(v.index.names) == ["images", "head", "bits", "predictor"]
    assert list(v.columns) == ["ρ with the drop", "partial ρ | count", "|ρ| − |ρ(count)|"]
    assert len(v) == 2 * 4  # two bit-widths x four predictors
    assert set(v.index.get_level_values("head")) == {"baseline (CE)"}  # the method's label
    assert v.loc[("val", "baseline (CE)", 4, "Hessian trace"), "ρ with the drop"] == "+1.00 [+1.00, +1.00]"
    assert v.loc[("val", "baseline (CE)", 4, "gradient norm²"), "ρ with the drop"] == "-1.00 [-1.00, -1.00]"
    # the count is the control and the reference: it has neither a partial nor a difference
    count = v.loc[("val", "baseline (CE)", 6, "−log(training count)")]
    assert count["partial ρ | count"] == "–" and count["|ρ| − |ρ(count)|"] == "–"
    zero = v.loc[("val", "baseline (CE)", 6, "Hessian trace"), "|ρ| − |ρ(count)|"]
    assert re.fullmatch(r"[+-]0\.00 \[[+-]0\.00, [+-]0\.00\]", zero)


def test_mechanism_view_of_a_table_with_a_nan_group():
    # the validation rows are ranked, the training rows' drop is the same for every class
    val = _mech_frame()
    train = _mech_frame(constant_seed=0).assign(images_from="train")
    v = ch5.mechanism_view(ch5.mechanism_table(pd.concat([val, train]), MECH_BITS, n_boot=50))
    assert list(v.columns) == ["ρ with the drop", "partial ρ | count", "|ρ| − |ρ(count)|"]
    assert len(v) == 2 * 2 * 4
    assert v.loc[("val", "baseline (CE)", 6, "Hessian trace"), "ρ with the drop"] == "+1.00 [+1.00, +1.00]"
    nan_row = v.loc[("train", "baseline (CE)", 6, "Hessian trace")]
    assert nan_row["partial ρ | count"] == "–" and nan_row["|ρ| − |ρ(count)|"] == "–"


def test_mechanism_facts_texts_and_nan():
    f = ch5.mechanism_facts(ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50))
    assert (f["mech_bits_lo"], f["mech_bits_hi"]) == (4, 6)  # the fewest bits first
    assert f["mech_trace_lo"] == f["mech_trace_hi"] == "+1.00 [+1.00, +1.00]"
    assert f["mech_grad_lo"] == "-1.00 [-1.00, -1.00]"
    assert f["mech_count_lo"] == "+1.00 [+1.00, +1.00]"
    assert re.fullmatch(r"[+-]0\.00 \[[+-]0\.00, [+-]0\.00\]", f["mech_diff_lo"])
    nan = ch5.mechanism_facts(ch5.mechanism_table(_mech_frame(0), MECH_BITS, n_boot=50))
    assert {k: v for k, v in nan.items() if not k.startswith("mech_bits")} == {
        f"mech_{what}_{key}": "n/a"
        for key in ("lo", "hi")
        for what in ("trace", "grad", "count", "partial", "diff")
    }
    # another head or image set than the table has: nothing to state
    assert ch5.mechanism_facts(ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50), head="crt") == {}


def test_partial_rho_given_a_count_that_ranks_the_drop_perfectly_is_nan():
    f = ch5.mechanism_facts(ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50))
    assert f["mech_partial_lo"] == "n/a"


def test_delta_by_imbalance_is_tail_minus_head_drop_per_variant_and_if(drops):
    """Columns (IF, bits) strongest imbalance first and more bits first; baseline's Δ = T − H with
    the delta half-width at IF 0.01, and 10 − 10 = 0 in every seed at IF 0.1."""
    t = ch5.delta_by_imbalance(drops)
    assert list(t.columns) == [
        ("IF 0.01", "6 bits"),
        ("IF 0.01", "4 bits"),
        ("IF 0.1", "6 bits"),
        ("IF 0.1", "4 bits"),
    ]
    assert sorted(t.index) == sorted(VARIANTS)  # the chapter orders the rows itself
    assert t.loc["default", ("IF 0.01", "6 bits")] == pm(1.0 - 2.5, DELTA_CI)  # -1.5
    assert t.loc["W=A", ("IF 0.01", "4 bits")] == pm(12.0 - 2.0, DELTA_CI)  # +10.0
    assert t.loc["logits", ("IF 0.1", "6 bits")] == pm(0.0, 0.0)
    crt = ch5.delta_by_imbalance(drops, bits=("6",), method="crt")
    assert crt.loc["W=A", ("IF 0.01", "6 bits")] == pm(6.6 - 2.7, DELTA_CI)
