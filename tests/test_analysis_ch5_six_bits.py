"""Chapter 5's analysis (ltmpq.analysis.ch5_six_bits): the quantizer hypotheses against the blog's
Figs. 7/8 and claim 3's rule, the integer-runtime agreement, the per-class mechanism, and the scale
ladder (``ladder_*``, on a synthetic store whose drops are worked out by hand in the comments).

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
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fakes import HALF1, quant_sweep
from scipy import stats as sps

from ltmpq import frames, verdicts
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.analysis.ch3_quantization import blog_drop
from ltmpq.config import MATCH, QuantConfig, Stage1Config
from ltmpq.models import VGG16
from ltmpq.tables import pm

IFS = (0.1, 0.01)
SEEDS = (0, 1, 2)
CFGS = [Stage1Config(imbalance_factor=f, seed=s) for f in IFS for s in SEEDS]
BITS = ("float", "8", "6", "4", "3")
METHODS = ("baseline", "crt", "lws")
VARIANTS = ("default", "logits", "W=A")  # stored order: hypothesis_table must re-sort by distance
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

    def test(m: str, b: str) -> dict:
        hd, td = (0.0, 0.0) if b == "float" else _drops(variant, cfg.imbalance_factor, cfg.seed, m, b)
        metrics = {"overall": 0.6, "head": (FLOAT_HEAD - hd) / 100, "tail": (FLOAT_TAIL - td) / 100}
        return {"metrics": metrics, "per_class": [0.5] * 10}

    return quant_sweep(cfg, BITS, test, methods=METHODS)


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
    assert f["n_pattern"] == 1 and f["pattern_text"] == (
        "The baseline shows the blog's 6-bit pattern (the whole 95% interval of its tail loss above "
        "5 points, "
        "that of its head loss below 1) under “W=A”. Under the others it does not."
    )
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
    assert f["n_pattern"] == 0 and f["pattern_text"].startswith(
        "No hypothesis reproduces the blog's 6-bit pattern: under each,"
    )
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
    assert c["claim3_conditions"] == "the default quantizer at 4 bits; “W=A” at 6 bits"
    assert c["claim3_default"] == "holds at 4 bits; not at 6 bits"  # the verdict table's rule
    # logits: 6 bits inconclusive (cRT), 4 bits not supported (cRT): never both models
    only = ch5.claim3_conditions(ch5.claim3_by_variant(drops, (8, 6, 4), ["default", "logits"]))
    assert only["claim3_conditions"] == "the default quantizer at 4 bits"
    none = ch5.claim3_conditions(c3[c3["variant"] != "default"].query("variant == 'logits'"))
    assert none["claim3_conditions"] == "none of them"


def test_claim3_reads_the_strongest_imbalance_only(drops):
    # IF 0.1 drops are 10 / 10 everywhere (delta 0): alone they give "not supported"; beside
    # IF 0.01 they are ignored, so W=A's 6 bits stay supported
    at01 = drops[drops["imbalance_factor"] == 0.1]
    c = ch5.claim3_conditions(ch5.claim3_by_variant(at01, (8, 6, 4), ["default", "W=A"]))
    assert c == {"claim3_conditions": "none of them", "claim3_default": "not supported"}


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
    assert f["int_agree_min"] == "99.40" and f["int_agree_max"] == "100.00"
    assert f["int_agree_mean"] == "99.70"  # (99.8 + 99.6 + 100 + 99.4) / 4
    assert f["int_rounded_min"] == "99.80"
    assert f["int_acc_diff"] == "0.20"  # |60.2 - 60.0| beats |54.9 - 55.0|
    assert f["int_class_diff"] == "3.0"
    assert f["int_runs"] == 2  # two (IF, seed) runs, two heads each
    # disagreement 0.3 on average, 0.075 with the simulation's input rounded: 75% of it removed
    assert f["int_conclusion"] == (
        "Rounding the simulation's input as the kernels do removes 75% of the disagreement (mean "
        "over runs and "
        "classifiers): most of it is the rounding of the input image, which the simulation lacks, not the "
        "kernels' integer arithmetic."
    )


def test_integer_facts_goal_met_and_neither(eres_integer):
    frame = ch5.integer_frame(eres_integer)
    met = ch5.integer_facts(frame.assign(agreement=[99.5, 99.9, 100.0, 99.5]))
    assert met["int_agree_min"] == "99.50" and "removes 73% of the disagreement" in met["int_conclusion"]
    # the rounded input removes less than half of it: the kernels' own arithmetic
    neither = ch5.integer_facts(frame.assign(**{"rounded input": [100.0, 99.49, 100.0, 99.9]}))
    assert (
        neither["int_rounded_min"] == "99.49"
        and "removes 49% of the disagreement" in neither["int_conclusion"]
    )
    assert neither["int_conclusion"].endswith("most of it comes from the kernels' integer arithmetic itself "
                                              "(the table shows where).")  # fmt: skip
    edge = ch5.integer_facts(frame.assign(**{"rounded input": [99.5] * 4}))
    assert edge["int_conclusion"] == (
        "Rounding the simulation's input as the kernels do does not reduce the disagreement: it "
        "comes from the "
        "kernels' integer arithmetic itself (the table shows where)."
    )


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
    assert {k: v for k, v in nan.items() if not k.startswith(("mech_bits", "mech_reading"))} == {
        f"mech_{what}_{key}": "not defined"
        for key in ("lo", "hi")
        for what in ("trace", "grad", "count", "partial", "diff")
    }
    assert (
        nan["mech_reading_lo"]
        == "cannot be set against their training-set size (the drop does not rank the classes)"
    )
    assert f["mech_reading_lo"] == (
        "ranks the classes' accuracy losses neither detectably better nor worse than their "
        "training-set size does"
    )
    # another head or image set than the table has: nothing to state
    assert ch5.mechanism_facts(ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50), head="crt") == {}


def test_partial_rho_given_a_count_that_ranks_the_drop_perfectly_is_nan():
    f = ch5.mechanism_facts(ch5.mechanism_table(_mech_frame(), MECH_BITS, n_boot=50))
    assert f["mech_partial_lo"] == "not defined"


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


# ------------------------------------------------------------------ the scale ladder


RUNGS = ("width 0.25", "width 0.5")
#: (rung, variant, method) -> (head drop, tail drop) at 6 and 4 bits, seed 1; seed s adds
#: 0.1 * (s - 1) to the head and 0.4 * (s - 1) to the tail, so Δ = tail - head moves by 0.3 * (s - 1)
LADDER_MEANS = {
    ("width 0.25", "default", "baseline"): {"6": (0.0, 1.0), "4": (1.0, 4.0)},
    ("width 0.25", "default", "crt"): {"6": (0.0, 0.0), "4": (1.0, 1.0)},
    ("width 0.5", "default", "baseline"): {"6": (0.0, 1.2), "4": (0.0, 9.0)},
    ("width 0.5", "default", "crt"): {"6": (0.0, 0.0), "4": (1.0, -2.0)},
}


def _sweep(rung: str, variant: str, seed: int) -> dict:
    entries = {}
    for b in ("float", "8", "4", "6"):  # stored fewest bits first: the tables must put 6 first
        methods = {}
        for m in ("baseline", "crt", "lws"):  # LWS is never shown
            h, t = (0.0, 0.0) if b in ("float", "8") or m == "lws" else LADDER_MEANS[(rung, variant, m)][b]
            h, t = (h + 0.1 * (seed - 1), t + 0.4 * (seed - 1)) if b in ("6", "4") and m != "lws" else (h, t)
            methods[m] = {
                "test": {"metrics": {"overall": 0.6, "head": (80 - h) / 100, "tail": (50 - t) / 100}}
            }
        entries[b] = {"methods": methods}
    return {"entries": entries}


@pytest.fixture
def deltas() -> pd.DataFrame:
    qres = {
        r: {"default": {replace(Stage1Config(0.01, seed=s), width=w): _sweep(r, "default", s) for s in SEEDS}}
        for r, w in zip(RUNGS, (0.25, 0.5), strict=True)
    }
    drops = ch5.ladder_drops(qres)
    assert list(dict.fromkeys(drops["rung"])) == list(RUNGS)
    return ch5.ladder_deltas(drops)


def test_ladder_deltas_per_seed(deltas):
    d = deltas.set_index(["rung", "variant", "method", "bits", "seed"])
    assert len(d) == 2 * 2 * 2 * 3  # rungs x methods x bits x seeds; no LWS, no 8 bits
    r = d.loc[("width 0.5", "default", "baseline", "4", 2)]
    assert (r["head"], r["tail"], r["delta"]) == pytest.approx((0.1, 9.4, 9.3))  # seed 2: +0.1, +0.4


def test_ladder_table_cells(deltas):
    t = ch5.ladder_table(deltas)
    half = sps.t.ppf(0.975, 2) / math.sqrt(3)  # the t half-width of three values with sd 1
    cell = t.loc[("default", "baseline (CE)", "4 bits"), ("width 0.5", "Δ")]
    assert cell == f"9.0 ± {0.3 * half:.1f}"  # Δ = 9 - 0 = 9 at seed 1, sd 0.3
    assert t.loc[("default", "cRT", "6 bits"), ("width 0.25", "head / tail")] == (
        f"0.0 ± {0.1 * half:.1f} / 0.0 ± {0.4 * half:.1f}"
    )
    assert list(t.columns.get_level_values(0).unique()) == list(RUNGS)
    assert [i[2] for i in t.index] == ["6 bits", "4 bits"] * 2 and [i[1] for i in t.index][::2] == [
        "baseline (CE)",
        "cRT",
    ]


def test_ladder_trend_is_a_welch_interval_of_the_difference(deltas):
    tr = ch5.ladder_trend(deltas, "width 0.25").set_index(["method", "bits"])
    assert set(tr["rung"]) == {"width 0.5"}
    # baseline at 4 bits: Δ 3 -> 9, both with sd 0.3 over three seeds: the Welch interval is the
    # pooled one, 6 ± t(0.975, df 4) * 0.3 * sqrt(2 / 3)
    r = tr.loc[("baseline", "4")]
    half = sps.t.ppf(0.975, 4) * 0.3 * math.sqrt(2 / 3)
    assert (r["base_delta"], r["rung_delta"], r["difference"]) == pytest.approx((3.0, 9.0, 6.0))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((6 - half, 6 + half))
    assert r["change"] == "grows"
    assert tr.loc[("crt", "4"), "change"] == "shrinks"  # 0 -> -3
    assert tr.loc[("baseline", "6"), "change"] == "no detectable change"  # 1.0 -> 1.2, half 0.68
    with pytest.raises(ValueError, match="base rung 'width 1' not in the ladder's rungs"):
        ch5.ladder_trend(deltas, "width 1")


def test_ladder_facts_sentences(deltas):
    facts = ch5.ladder_facts(ch5.ladder_trend(deltas, "width 0.25"), ["default", "absent"])
    assert facts["ladder_trend_0"].startswith("at 6 bits, width 0.5: Δ +1.0 → +1.2 (no detectable change")
    assert "at 4 bits, width 0.5: Δ +3.0 → +9.0 (grows; difference +6.0 [" in facts["ladder_trend_0"]
    assert "ladder_trend_1" not in facts  # a quantizer with nothing to compare gets no sentence
    assert (facts["ladder_detected"], facts["ladder_cells"]) == ("1", 2)  # baseline: 4 bits grows


def test_ladder_trend_without_spread_has_no_interval():
    d = pd.DataFrame(
        {"rung": ["a", "a", "b", "b"], "variant": "v", "method": "baseline", "bits": "6",
         "seed": [0, 1, 0, 1], "head": 0.0, "tail": 0.0, "delta": [1.0, 1.0, 2.0, 2.0]}
    )  # fmt: skip
    r = ch5.ladder_trend(d, "a").iloc[0]
    assert r["difference"] == 1.0 and np.isnan(r["ci_low"]) and r["change"] == "no detectable change"


def _ladder_s1(cfgs):
    metrics = {c: {"overall": 0.5 + 0.1 * c.seed, "head": 0.8, "tail": 0.3} for c in cfgs}
    return {c: {"test": {"metrics": metrics[c]}, "train_seconds": 600.0 * (1 + c.seed)} for c in cfgs}


def test_ladder_models_table():
    base = [Stage1Config(0.01, seed=s) for s in (0, 1)]
    classic = [replace(c, hidden=4096, dropout=0.5) for c in base]
    wide = replace(base[0], width=0.5)
    s1 = {"width 0.25": _ladder_s1(base), "classic": _ladder_s1(classic)}
    t = ch5.ladder_models(s1, {"width 0.25": base[0], "classic": classic[0], "width 0.5": wide},
                          {"width 0.5": "0 of 2 models trained"})  # fmt: skip
    assert list(t.index) == ["width 0.25", "classic", "width 0.5"]
    assert t.loc["classic", "L14/L15 width"] == 4096 and t.loc["width 0.25", "L14/L15 width"] == 128
    assert t.loc["classic", "dropout"] == "0.5"
    assert t.loc["width 0.25", "parameters (M)"] == pytest.approx(0.956154)
    half = sps.t.ppf(0.975, 1) * np.std([50, 60], ddof=1) / math.sqrt(2)
    assert t.loc["classic", "float overall"] == f"55.0 ± {half:.1f}"
    assert t.loc["classic", "trained min / model"] == pytest.approx(15.0)  # (600 + 1200) / 2 s
    ratio = VGG16(width=0.5).macs_per_image() / VGG16(width=0.25).macs_per_image()  # 3.96
    assert t.index.name == "model"
    assert t.loc["width 0.5", "× the book's model"] == pytest.approx(ratio)
    assert t.loc["width 0.5", "projected min / model"] == pytest.approx(15.0 * ratio)  # the base's 15 min
    assert t.loc["width 0.5", "status"] == "not trained"
    assert pd.isna(t.loc["width 0.5", "float tail"]) and t.loc["classic", "status"] == "2 seeds trained"
    with pytest.raises(ValueError, match="first model 'width 0.5' has no stage-1 results"):
        ch5.ladder_models(s1, {"width 0.5": wide, "width 0.25": base[0]})


def test_ladder_summary_says_what_can_be_compared(deltas):
    empty = ch5.ladder_trend(deltas[deltas["rung"] == "width 0.25"], "width 0.25")
    assert empty.empty and "change" in empty.columns
    facts = ch5.ladder_facts(empty, ["default", "naive"])  # what the book says with one model computed
    assert facts == {"ladder_detected": "none", "ladder_cells": 0}  # no sentence about what is missing
    s = ch5.ladder_summary(empty, "width 0.5 is not trained.", "width 0.25", ["default", "naive"])
    assert s.startswith("width 0.5 is not trained. Until they are trained, this chapter cannot say whether")
    assert s.endswith("the tables above hold the book's own models (width 0.25) only.")
    full = ch5.ladder_summary(ch5.ladder_trend(deltas, "width 0.25"), "", "width 0.25", ["default", "naive"])
    assert "at 4 bits, width 0.5: Δ +3.0 → +9.0 (grows; difference +6.0 [+5.3, +6.7])" in full
    assert full.endswith("Of 2 comparisons, 1 shows a change the seeds can detect.")


def test_ladder_variant_check():
    assert ch5.ladder_variant_check("naive", ["default", "naive"]) == (
        "the hypothesis closest to the blog's cells in the table above"
    )
    msg = ch5.ladder_variant_check("logits", ["default", "naive"])
    assert (
        msg.startswith("chosen before the results existed")
        and "now “logits”, which the ladder did not run" in msg
    )


def test_ladder_drops_refuses_an_empty_ladder():
    with pytest.raises(ValueError, match="no rungs"):
        ch5.ladder_drops({})


NAIVE = "naive: per-tensor affine W=A + logits"


WA = "W=A, LT calib."


def _seed_drops(rows) -> pd.DataFrame:
    """A drop frame (the columns :func:`ltmpq.frames.delta_per_seed` reads) from rows
    (variant, IF, seed, method, bits, head drop, tail drop)."""
    out = []
    for v, f, s, m, b, h, t in rows:
        for metric, d in (("head", h), ("tail", t)):
            out.append({"variant": v, "imbalance_factor": f, "seed": s, "method": m, "bits": b,
                        "metric": metric, "drop": d})  # fmt: skip
    return pd.DataFrame(out)


def _pattern_cells(rows: dict) -> pd.DataFrame:
    """A hypothesis_drops table: (variant, method, bits) -> (head, head_ci, tail, tail_ci)."""
    return pd.DataFrame(
        [{"variant": v, "method": m, "bits": b, "head_drop": h, "head_ci": hc, "tail_drop": t, "tail_ci": tc,
          "n": 3} for (v, m, b), (h, hc, t, tc) in rows.items()]
    )  # fmt: skip


PATTERN = {
    ("default", "baseline", "6"): (0.0, 0.1, 0.0, 0.1),
    ("yes", "baseline", "6"): (0.5, 0.2, 6.5, 0.7),  # head [0.3, 0.7] < 1, tail [5.8, 7.2] > 5
    ("unsure", "baseline", "6"): (0.5, 0.2, 5.5, 1.0),  # tail [4.5, 6.5] straddles 5
    ("no tail", "baseline", "6"): (0.0, 0.1, 4.0, 1.0),  # tail [3, 5]: at 5 is not above 5
    ("no head", "baseline", "6"): (1.5, 0.4, 9.0, 1.0),  # head [1.1, 1.9] >= 1
    ("one seed", "baseline", "6"): (0.5, float("nan"), 6.5, float("nan")),
    ("no 6 bits", "baseline", "4"): (0.0, 0.1, 9.0, 0.1),
    ("crt only", "crt", "6"): (0.0, 0.1, 9.0, 0.1),
}


def _facts_table(with4: bool) -> pd.DataFrame:
    rows = {
        ("default", "baseline", "6"): (0.1, 0.3, -0.4, 0.7),
        ("default", "crt", "6"): (0.5, 0.4, -0.3, 0.5),
        ("a", "baseline", "6"): (0.5, 0.2, 6.5, 0.7),  # the largest 6-bit tail drop
        ("a", "crt", "6"): (2.7, 0.1, 6.6, 0.1),
        ("b", "baseline", "6"): (0.0, 0.1, 4.0, 0.1),
        ("b", "crt", "6"): (0.0, 0.1, 0.0, 0.1),
    }
    if with4:
        rows |= {("a", "baseline", "4"): (1.0, 0.1, 3.0, 0.1), ("b", "baseline", "4"): (2.0, 0.5, 9.0, 1.0)}
    return _pattern_cells(rows)


def _seed_rows():
    """default and W=A at IF 0.01 and 0.1, seeds 0-2, baseline / cRT / LWS at 8 and 6 bits.
    IF 0.01, 6 bits: default baseline head 0, tail s + 1 (Δ 1, 2, 3); W=A baseline tail 5 + s
    (Δ 5, 6, 7); cRT head 3 + s, tail 0 (Δ -3, -4, -5) under both. Everything else 0."""
    rows = []
    for v in ("default", WA):
        for f in (0.1, 0.01):
            for s in (0, 1, 2):
                for m in ("baseline", "crt", "lws"):
                    for b in ("float", "8", "6"):
                        h = t = 0.0
                        if f == 0.01 and b == "6" and m == "baseline":
                            t = float(s + 1) if v == "default" else 5.0 + s
                        if f == 0.01 and b == "6" and m == "crt":
                            h = 3.0 + s
                        rows.append((v, f, s, m, b, h, t))
    return _seed_drops(rows)


def _tie_rows():
    """IF 0.01, baseline: 'without' loses 1 (head) and 2 (tail) at 6 and 4 bits in every seed;
    'with' at 6 bits loses 0.6 - 0.1 s more... : head 1 - (0.4 + 0.1 s), tail 2 + (1 + s); at 4 bits
    head 1, tail 6. Seed 3 has 'with' only (unpaired: left out), IF 0.1 and cRT are noise."""
    rows = []
    for s in (0, 1, 2):
        for b in ("6", "4"):
            rows.append(("without", 0.01, s, "baseline", b, 1.0, 2.0))
            rows.append(("without", 0.1, s, "baseline", b, 50.0, 50.0))
            rows.append(("with", 0.1, s, "baseline", b, 0.0, 0.0))
            rows.append(("with", 0.01, s, "crt", b, 90.0, 90.0))
        rows.append(("with", 0.01, s, "baseline", "6", 1.0 - (0.4 + 0.1 * s), 2.0 + 1.0 + s))
        rows.append(("with", 0.01, s, "baseline", "4", 1.0, 6.0))
    rows.append(("with", 0.01, 3, "baseline", "6", 0.0, 100.0))
    return _seed_drops(rows)


def _claim3_rows():
    """IF 0.01, seeds 0-2, head drop 0; tail drop = Δ. default: Δ -1, 0, 1 at 6 bits (inconclusive
    against 1: [-2.5, 2.5]) and 4, 5, 6 at 4 bits (supported: [2.5, 7.5]) for both models; W=A:
    4, 5, 6 everywhere; logits at 8 bits: the baseline 4, 5, 6 but cRT 0 (not supported)."""
    rows = []
    for s in (0, 1, 2):
        for m in ("baseline", "crt"):
            for b in ("float", "8", "6", "4"):
                up = 4.0 + s if b in ("6", "4") else 0.0
                rows.append(("default", 0.01, s, m, b, 0.0, (s - 1.0) if b == "6" else up))
                rows.append((WA, 0.01, s, m, b, 0.0, up))
                rows.append(("logits at 8 bits", 0.01, s, m, b, 0.0, up if m == "baseline" else 0.0))
    return _seed_drops(rows)


def _int_frame(agreement, rounded) -> pd.DataFrame:
    return pd.DataFrame({"imbalance_factor": 0.01, "seed": [0, 0], "head": ["baseline", "crt"],
                         "agreement": agreement, "rounded input": rounded, "simulated": [60.0, 61.0],
                         "integer": [60.1, 60.8], "worst class Δ": [0.5, 0.7]})  # fmt: skip


def _mech(diff_lo: tuple, diff_hi: tuple, partial_lo=(float("nan"),) * 3) -> pd.DataFrame:
    rows = []
    for b, diff, partial in ((3, diff_lo, partial_lo), (4, diff_hi, (0.1, -0.2, 0.4))):
        for kind, pred, (e, lo, hi) in (
            ("spearman", "Hessian trace", (0.5, 0.1, 0.8)),
            ("spearman", "gradient norm²", (0.4, 0.0, 0.7)),
            ("spearman", "−log(training count)", (0.3, -0.1, 0.6)),
            ("partial", "Hessian trace", partial),
            ("difference", "Hessian trace", diff),
        ):
            rows.append({"images": "val", "head": "baseline", "bits": b, "kind": kind, "predictor": pred,
                         "estimate": e, "ci_low": lo, "ci_high": hi})  # fmt: skip
    return pd.DataFrame(rows)


MISSING = {
    "width 0.5": "0 of 3 models trained; make the rest with make runs PROFILE=cpu RUN_ARGS='--stage ladder'",
    "width 1.0": "0 of 3 models trained; make the rest with make runs PROFILE=cpu RUN_ARGS='--stage ladder'",
    "classic": "2 of 3 models trained; make the rest with make runs PROFILE=cpu RUN_ARGS='--stage ladder'",
    "broken": "results/cpu/stage1/x.json does not match its schema",
}


def _trend() -> pd.DataFrame:
    cols = ["variant", "method", "bits", "rung", "base_delta", "rung_delta", "difference", "ci_low",
            "ci_high", "change"]  # fmt: skip
    return pd.DataFrame(
        [["default", "baseline", "6", "width 0.5", 1.0, 1.2, 0.2, -0.5, 0.9, "no detectable change"],
         ["default", "baseline", "4", "width 0.5", 3.0, 9.0, 6.0, 5.0, 7.0, "grows"],
         ["default", "crt", "4", "width 0.5", 0.0, -3.0, -3.0, -4.0, -2.0, "shrinks"]],
        columns=cols,
    )  # fmt: skip


def _s1(cfgs):
    return {c: {"test": {"metrics": {"overall": 0.5 + 0.1 * c.seed, "head": 0.8, "tail": 0.3}},
                "train_seconds": 600.0 * (1 + c.seed)} for c in cfgs}  # fmt: skip


def test_labels_replace_the_configuration_jargon_and_are_idempotent():
    assert ch5.hypothesis_label(NAIVE) == "everything per tensor and asymmetric"
    assert ch5.hypothesis_label(WA) == "activations at the weights' bits"
    assert ch5.hypothesis_label("logits at 8 bits") == "8-bit logits"
    assert ch5.hypothesis_label("default") == "default"
    assert ch5.hypothesis_label("unknown") == "unknown"
    for name, label in ch5.HYPOTHESIS_LABELS.items():
        assert ch5.hypothesis_label(label) == label  # a label is never another name
        assert not any(j in label for j in ("W=A", "LT calib", "naive", "affine")), name
    assert len(set(ch5.HYPOTHESIS_LABELS.values())) == len(ch5.HYPOTHESIS_LABELS)  # no two alike
    from ltmpq.config import QUANT_HYPOTHESES

    assert set(QUANT_HYPOTHESES) <= set(ch5.HYPOTHESIS_LABELS)
    f = ch5.label_variants(pd.DataFrame({"variant": [NAIVE, "default", "x"], "v": [1, 2, 3]}))
    assert list(f["variant"]) == ["everything per tensor and asymmetric", "default", "x"]
    assert list(f["v"]) == [1, 2, 3]


def test_and_list_and_tail_head_reading():
    assert ch5.and_list([]) == "" and ch5.and_list(["a"]) == "a"
    assert ch5.and_list(["a", "b"]) == "a and b" and ch5.and_list(["6", "4", "3"]) == "6, 4 and 3"
    assert ch5.tail_head_reading(2.0, 1.0) == "the tail pays more"  # [1, 3]
    assert ch5.tail_head_reading(-2.0, 1.0) == "the head pays more"  # [-3, -1]
    assert ch5.tail_head_reading(0.5, 1.0) == "no detectable difference"  # [-0.5, 1.5]
    assert ch5.tail_head_reading(1.0, 1.0) == "no detectable difference"  # [0, 2]: touches 0
    assert ch5.tail_head_reading(1.0, float("nan")) == "no detectable difference"  # one seed


def test_pattern_reading_judges_both_intervals():
    r = ch5.pattern_reading(_pattern_cells(PATTERN))
    assert r.name == "pattern"
    assert r.to_dict() == {"default": "no", "yes": "yes", "unsure": "cannot tell", "no tail": "no",
                           "no head": "no", "one seed": "cannot tell", "no 6 bits": "cannot tell",
                           "crt only": "cannot tell"}  # fmt: skip
    # the means alone would call "unsure" and "one seed" the pattern
    means = ch5.blog_pattern(_pattern_cells(PATTERN))
    assert means["unsure"] and means["one seed"]
    assert (
        ch5.pattern_reading(_pattern_cells(PATTERN), bits="4")["no 6 bits"] == "yes"
    )  # [-0.1, 0.1], [8.9, 9.1]


def test_hypothesis_table_pattern_column_is_the_interval_reading():
    three = {k: v for k, v in PATTERN.items() if k[0] in ("default", "yes", "unsure")}
    t = ch5.hypothesis_table(_pattern_cells(three), {})
    assert t["blog's 6-bit pattern"].to_dict() == {"blog": "yes", "default": "no", "yes": "yes",
                                                   "unsure": "cannot tell"}  # fmt: skip


def test_pattern_text_branches():
    def text(*names):
        return ch5.pattern_text(
            _pattern_cells({k: v for k, v in PATTERN.items() if k[0] in ("default", *names)})
        )

    criterion = "(the whole 95% interval of its tail loss above 5 points, that of its head loss below 1)"
    assert text("yes", "no tail") == (
        f"The baseline shows the blog's 6-bit pattern {criterion} under “yes”. Under the others it does not."
    )
    assert text("yes") == f"The baseline shows the blog's 6-bit pattern {criterion} under “yes”."
    assert text("no tail", "no head") == (
        "No hypothesis reproduces the blog's 6-bit pattern: under each, the whole 95% interval of the "
        "baseline's 6-bit tail loss lies at or below 5 points, or that of its head loss at or above 1."
    )
    assert text("unsure", "no tail") == (
        "No hypothesis shows the blog's 6-bit pattern beyond the seeds' doubt. For “unsure” the seeds "
        "cannot tell. Under the others it does not."
    )
    assert text("yes", "unsure", "one seed") == (
        f"The baseline shows the blog's 6-bit pattern {criterion} under “yes”. For “unsure” and “one seed” "
        "the seeds cannot tell."
    )
    # the default is never one of the hypotheses: alone, nothing reproduces the pattern
    assert text().startswith("No hypothesis reproduces")


def test_hypothesis_facts_sentences_without_template_words():
    f = ch5.hypothesis_facts(_facts_table(with4=True))
    assert f["n_hypotheses"] == 2 and f["n_pattern"] == 1  # "a": [0.3, 0.7] and [5.8, 7.2]
    assert f["closest"] == "a"
    assert f["worst6_variant"] == "a" and (f["worst6_tail"], f["worst6_head"]) == ("6.5 ± 0.7", "0.5 ± 0.2")
    assert f["worst_text"] == (
        "The largest 6-bit tail loss of the baseline, under “a”, is 6.5 ± 0.7 points, with the head losing "
        "0.5 ± 0.2; at 4 bits the largest, under “b”, is 9.0 ± 1.0 on the tail against 2.0 ± 0.5 on the head."
    )
    assert f["pattern_text"].startswith("The baseline shows the blog's 6-bit pattern")
    no4 = ch5.hypothesis_facts(_facts_table(with4=False))
    assert no4["worst_text"] == (
        "The largest 6-bit tail loss of the baseline, under “a”, is 6.5 ± 0.7 points, with the head losing "
        "0.5 ± 0.2."
    )
    for facts in (f, no4):
        assert not any(w in str(v) for v in facts.values() for w in ("n/a", "none of the", "worst4"))
        assert "pattern_variants" not in facts and "worst4_variant" not in facts


def test_hypothesis_seed_table_columns_rows_and_order():
    t = ch5.hypothesis_seed_table(_seed_rows())
    assert list(t.columns) == ["quantizer", "variant", "imbalance_factor", "seed", "model", "bits",
                               "head_drop", "tail_drop", "delta"]  # fmt: skip
    # 2 variants x 2 IFs x 3 seeds x 2 models (no LWS) x 2 bits (no float)
    assert len(t) == 2 * 2 * 3 * 2 * 2
    assert set(t["model"]) == {"baseline (CE)", "cRT"} and set(t["bits"]) == {8, 6}
    assert dict(zip(t["variant"], t["quantizer"], strict=True)) == {
        "default": "default",
        WA: "activations at the weights' bits",
    }
    # order: the drops' variant order, IF ascending, baseline before cRT, most bits first, seeds
    head = t.head(7)
    assert list(head["variant"]) == ["default"] * 7 and (head["imbalance_factor"] == 0.01).all()
    assert list(head["bits"]) == [8, 8, 8, 6, 6, 6, 8] and list(head["seed"]) == [0, 1, 2, 0, 1, 2, 0]
    assert list(head["model"]) == ["baseline (CE)"] * 6 + ["cRT"]
    r = t[(t["variant"] == WA) & (t["imbalance_factor"] == 0.01) & (t["bits"] == 6) & (t["seed"] == 2)]
    # seed 2: W=A's baseline tail 5 + 2; cRT head 3 + 2
    assert r[["head_drop", "tail_drop", "delta"]].to_numpy().tolist() == [[0.0, 7.0, 7.0], [5.0, 0.0, -5.0]]
    only6 = ch5.hypothesis_seed_table(_seed_rows(), bits=("6",))
    assert set(only6["bits"]) == {6} and len(only6) == len(t) / 2
    with pytest.raises(ValueError, match="no sweeps"):
        ch5.hypothesis_seed_table(_seed_rows(), bits=("3",))


def test_delta_summary_and_answer_facts():
    s = ch5.delta_summary(ch5.hypothesis_seed_table(_seed_rows()))
    cell = s.set_index(["quantizer", "imbalance_factor", "model", "bits"])
    d = cell.loc[("default", 0.01, "baseline (CE)", 6)]
    assert (d["delta"], d["delta_ci"], d["n"]) == pytest.approx((2.0, HALF1, 3))  # Δ 1, 2, 3
    assert d["reading"] == "no detectable difference"  # [-0.48, 4.48]
    w = cell.loc[("activations at the weights' bits", 0.01, "baseline (CE)", 6)]
    assert (w["delta"], w["reading"]) == (pytest.approx(6.0), "the tail pays more")  # [3.5, 8.5]
    c = cell.loc[("default", 0.01, "cRT", 6)]
    assert (c["delta"], c["reading"]) == (pytest.approx(-4.0), "the head pays more")  # [-6.5, -1.5]
    z = cell.loc[("default", 0.1, "baseline (CE)", 8)]
    assert (z["delta"], z["delta_ci"], z["reading"]) == (0.0, 0.0, "no detectable difference")
    a = ch5.answer_facts(s, 0.01)
    assert a == {
        "blog_delta6": "+6.0",  # the blog: tail 6.5 - head 0.5
        "default_delta6": "2.0 ± 2.5",
        "default_reading6": "no detectable difference",
        "max_delta6": "6.0 ± 2.5",
        "max_delta6_variant": "activations at the weights' bits",
        "max_reading6": "the tail pays more",
    }
    with pytest.raises(ValueError, match="at least one hypothesis"):
        ch5.answer_facts(s[s["quantizer"] == "default"], 0.01)


def test_logit_pairs_finds_the_twin_with_float_logits():
    q = QuantConfig()
    cfgs = {
        "default": q,
        "logits": replace(q, logit_bits=8),
        "W=A": replace(q, act_bits=MATCH),
        "W=A + logits": replace(q, act_bits=MATCH, logit_bits=MATCH),
        "alone": replace(q, granularity="tensor", logit_bits=8),  # no per-tensor twin with float logits
    }
    assert ch5.logit_pairs(cfgs) == {"logits": "default", "W=A + logits": "W=A"}
    assert ch5.logit_pairs({"default": q}) == {}


def test_logit_tie_effect_is_paired_per_seed():
    e = ch5.logit_tie_effect(_tie_rows(), "with", "without", 0.01).set_index("bits")
    assert list(e.index) == ["6", "4"]
    # 6 bits: head differences -0.4, -0.5, -0.6 (mean -0.5, sd 0.1), tail 1, 2, 3 (mean 2, sd 1)
    assert (e.loc["6", "head"], e.loc["6", "head_ci"]) == pytest.approx((-0.5, 0.1 * HALF1))
    assert (e.loc["6", "tail"], e.loc["6", "tail_ci"]) == pytest.approx((2.0, HALF1))
    assert e.loc["6", "n"] == 3  # seed 3 has no twin
    # 4 bits: head 0, 0, 0 and tail 4, 4, 4
    assert (e.loc["4", "head"], e.loc["4", "head_ci"], e.loc["4", "tail"], e.loc["4", "tail_ci"]) == (
        pytest.approx((0.0, 0.0, 4.0, 0.0))
    )
    assert ch5.logit_tie_text(e.reset_index()) == (
        "at 6 bits, tail 2.0 ± 2.5 (no detectable change), head -0.5 ± 0.2 (gains); "
        "at 4 bits, tail 4.0 ± 0.0 (loses more), head 0.0 ± 0.0 (no detectable change)"
    )
    only6 = ch5.logit_tie_effect(_tie_rows(), "with", "without", 0.01, bits=("6",))
    assert list(only6["bits"]) == ["6"]
    with pytest.raises(ValueError, match="no seed has both"):
        ch5.logit_tie_effect(_tie_rows(), "with", "absent", 0.01)


def test_claim3_conditions_in_the_chapters_words():
    names = ["default", WA, "logits at 8 bits"]
    expected = {
        "claim3_conditions": "the default quantizer at 4 bits; “activations at the weights' bits” at 6 and 4 "
        "bits",
        "claim3_default": "holds at 4 bits; inconclusive at 6 bits",
    }
    assert ch5.claim3_conditions(ch5.claim3_by_variant(_claim3_rows(), (8, 6, 4), names)) == expected
    # the same on a frame already in the chapter's words (the chapter labels its frames first)
    labelled = ch5.label_variants(_claim3_rows())
    labels = [ch5.hypothesis_label(n) for n in names]
    assert ch5.claim3_conditions(ch5.claim3_by_variant(labelled, (8, 6, 4), labels)) == expected
    none = ch5.claim3_conditions(
        ch5.claim3_by_variant(_claim3_rows(), (8, 6, 4), ["default", "logits at 8 bits"])
    )
    assert none["claim3_conditions"] == "the default quantizer at 4 bits"


def test_integer_facts_without_a_goal():
    f = ch5.integer_facts(_int_frame([99.0, 99.2], [99.95, 99.97]))
    assert {k: v for k, v in f.items() if k != "int_conclusion"} == {
        "int_agree_min": "99.00", "int_agree_max": "99.20", "int_agree_mean": "99.10",
        "int_rounded_min": "99.95", "int_acc_diff": "0.20", "int_class_diff": "0.7", "int_runs": 1,
    }  # fmt: skip
    # disagreement 0.9 % of images, 0.04 % with the rounded input: 1 - 0.04 / 0.9 = 95.6 %
    assert f["int_conclusion"] == (
        "Rounding the simulation's input as the kernels do removes 96% of the disagreement (mean over runs "
        "and classifiers): most of it is the rounding of the input image, which the simulation lacks, not "
        "the kernels' integer arithmetic."
    )
    assert not any("goal" in str(v) or "miss" in str(v) for v in f.values())
    # 0.9 -> 0.5: 1 - 0.5 / 0.9 = 44 %, the kernels' own
    k = ch5.integer_facts(_int_frame([99.0, 99.2], [99.5, 99.5]))["int_conclusion"]
    assert k.startswith("Rounding the simulation's input as the kernels do removes 44% of the disagreement")
    assert k.endswith("most of it comes from the kernels' integer arithmetic itself (the table shows where).")
    worse = ch5.integer_facts(_int_frame([99.0, 99.2], [98.0, 99.0]))["int_conclusion"]
    assert worse.startswith(
        "Rounding the simulation's input as the kernels do does not reduce the disagreement"
    )
    assert ch5.integer_facts(_int_frame([100.0, 100.0], [100.0, 100.0]))["int_conclusion"] == (
        "The two never disagree."
    )


def test_mechanism_facts_cells_and_readings():
    f = ch5.mechanism_facts(_mech((0.2, 0.05, 0.35), (-0.3, -0.5, -0.1)))
    assert (f["mech_bits_lo"], f["mech_bits_hi"]) == (3, 4)
    assert f["mech_trace_lo"] == "+0.50 [+0.10, +0.80]" and f["mech_grad_lo"] == "+0.40 [+0.00, +0.70]"
    assert f["mech_count_lo"] == "+0.30 [-0.10, +0.60]" and f["mech_diff_lo"] == "+0.20 [+0.05, +0.35]"
    assert f["mech_partial_lo"] == ch5.UNDEFINED == "not defined"  # NaN in the table
    assert f["mech_partial_hi"] == "+0.10 [-0.20, +0.40]"
    assert (
        f["mech_reading_lo"] == "ranks the classes' accuracy losses better than their training-set size does"
    )
    assert (
        f["mech_reading_hi"] == "ranks the classes' accuracy losses worse than their training-set size does"
    )
    g = ch5.mechanism_facts(_mech((-0.02, -0.33, 0.30), (float("nan"),) * 3))
    assert g["mech_reading_lo"] == (
        "ranks the classes' accuracy losses neither detectably better nor worse than their training-set "
        "size does"
    )
    assert g["mech_diff_hi"] == "not defined"
    assert (
        g["mech_reading_hi"]
        == "cannot be set against their training-set size (the drop does not rank the classes)"
    )
    assert not any("n/a" in str(v) for v in {**f, **g}.values())


def test_missing_status():
    assert ch5.missing_status(MISSING["width 0.5"]) == "not trained"
    assert ch5.missing_status(MISSING["classic"]) == "2 of 3 seeds trained"
    assert ch5.missing_status(MISSING["broken"]) == "stored results fail their check"


def test_ladder_missing_text_names_the_models_the_reason_and_the_command():
    t = ch5.ladder_missing_text(MISSING, "bf16", "make runs X")
    assert t == (
        "The ladder's width 0.5 and width 1.0 models are not trained for this version of the book: training "
        "them in reasonable time needs a CPU with bf16 arithmetic or a GPU (the recipe trains in bf16), and "
        "none was at hand when these results were made. Only some seeds are trained of classic (2 of 3 seeds "
        "trained). The stored results of broken fail their check and are left out. The command make runs X "
        "makes what is missing."
    )
    assert "models trained" not in t and "make the rest" not in t  # load's wording is not repeated
    one = ch5.ladder_missing_text({"width 0.5": MISSING["width 0.5"]}, "fp32", "make runs X")
    assert one == (
        "The ladder's width 0.5 model is not trained for this version of the book. The command make runs X "
        "makes what is missing."
    )
    assert ch5.ladder_missing_text({}, "bf16", "make runs X") == ""


def test_ladder_facts_leave_out_a_variant_without_a_comparison():
    f = ch5.ladder_facts(_trend(), ["default", NAIVE])
    assert f == {
        "ladder_trend_0": "at 6 bits, width 0.5: Δ +1.0 → +1.2 (no detectable change; difference +0.2 "
        "[-0.5, +0.9]); at 4 bits, width 0.5: Δ +3.0 → +9.0 (grows; difference +6.0 [+5.0, +7.0])",
        "ladder_detected": "1",  # the baseline's: cRT's "shrinks" is not counted
        "ladder_cells": 2,
    }
    empty = ch5.ladder_facts(_trend().iloc[:0], ["default", NAIVE])
    assert empty == {"ladder_detected": "none", "ladder_cells": 0}


def test_ladder_summary_and_answer_with_and_without_larger_models():
    trend = _trend()
    s = ch5.ladder_summary(trend, "", "width 0.25", ["default", ch5.hypothesis_label(NAIVE)])
    assert s == (
        "For the baseline (CE) model, each larger model against the book's own (width 0.25); the difference "
        "in Δ with its Welch 95% interval over seeds. Under the default quantizer, at 6 bits, width 0.5: Δ "
        "+1.0 → +1.2 (no detectable change; difference +0.2 [-0.5, +0.9]); at 4 bits, width 0.5: Δ +3.0 → "
        "+9.0 (grows; difference +6.0 [+5.0, +7.0]). Of 2 comparisons, 1 shows a change the seeds can detect."
    )
    with_missing = ch5.ladder_summary(trend, "The ladder's width 1.0 model is not trained.", "width 0.25",
                                      ["default"])  # fmt: skip
    assert with_missing.endswith(
        "1 shows a change the seeds can detect. The ladder's width 1.0 model is not trained."
    )
    text = ch5.ladder_missing_text({"width 0.5": MISSING["width 0.5"]}, "bf16", "make runs X")
    open_ = ch5.ladder_summary(trend.iloc[:0], text, "width 0.25", ["default"])
    assert open_.startswith(text + " Until they are trained, this chapter cannot say whether the head/tail ")
    assert open_.endswith("the tables above hold the book's own models (width 0.25) only.")
    for t in (s, with_missing, open_):
        assert "nothing to compare" not in t and "no comparison yet" not in t and "rung" not in t
    assert ch5.ladder_answer(trend) == (
        "Against a larger model, 1 of 2 comparisons of the baseline (CE) model's Δ shows a change with the "
        "network's size that the seeds can detect."
    )
    two = pd.concat([trend, trend.assign(rung="width 1.0", change="no detectable change")])
    assert ch5.ladder_answer(two).startswith("Against 2 larger models, 1 of 4 comparisons")
    assert ch5.ladder_answer(trend.iloc[:0]) == (
        "Whether the asymmetry grows with the network's size stays open: the scale ladder's larger models "
        "are not trained for this version of the book."
    )


def test_ladder_cost_text_never_says_zero_minutes():
    assert ch5.ladder_cost_text(12.4, ["width 0.5"]) == (
        "The scale ladder's trained larger models (width 0.5), training included, took 12 minutes."
    )
    none = ch5.ladder_cost_text(0.0, [])
    assert "0 minutes" not in none and none.startswith("The scale ladder's larger models are not trained")


def test_ladder_variant_check_in_words():
    assert ch5.ladder_variant_check(NAIVE, ["default", NAIVE]) == (
        "the hypothesis closest to the blog's cells in the table above"
    )
    # the closest as the chapter names it (a label) is recognised too
    assert ch5.ladder_variant_check(ch5.hypothesis_label(NAIVE), ["default", NAIVE]).startswith(
        "the hypothesis"
    )
    assert ch5.ladder_variant_check("logits at 8 bits", ["default", NAIVE]) == (
        "chosen before the results existed; the closest to the blog's cells above is now “8-bit logits”, "
        "which the ladder did not run"
    )


def test_ladder_models_columns_and_status_words():
    base = [Stage1Config(0.01, seed=s) for s in (0, 1)]
    classic = [replace(c, hidden=4096, dropout=0.5) for c in base]
    wide = replace(base[0], width=0.5)
    rungs = {"width 0.25": base[0], "classic": classic[0], "width 0.5": wide, "broken": wide}
    missing = {"width 0.5": MISSING["width 0.5"], "broken": MISSING["broken"]}
    t = ch5.ladder_models({"width 0.25": _s1(base), "classic": _s1(classic)}, rungs, missing)
    assert t.index.name == "model" and list(t.index) == ["width 0.25", "classic", "width 0.5", "broken"]
    assert "× the book's model" in t.columns and not any("rung" in c for c in t.columns)
    assert t["status"].to_dict() == {
        "width 0.25": "2 seeds trained",
        "classic": "2 seeds trained",
        "width 0.5": "not trained",
        "broken": "stored results fail their check",
    }
    ratio = VGG16(width=0.5).macs_per_image() / VGG16(width=0.25).macs_per_image()
    assert t.loc["width 0.5", "× the book's model"] == pytest.approx(ratio)
    assert t.loc["width 0.5", "projected min / model"] == pytest.approx(15.0 * ratio)  # (600 + 1200) / 2 s
    half = 12.706204736174707 * np.std([50, 60], ddof=1) / math.sqrt(2)  # t(0.975, 1)
    assert t.loc["classic", "float overall"] == f"55.0 ± {half:.1f}"
    with pytest.raises(ValueError, match="first model 'width 0.5' has no stage-1 results"):
        ch5.ladder_models({"width 0.25": _s1(base)}, {"width 0.5": wide, "width 0.25": base[0]})
