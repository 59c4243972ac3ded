"""Chapter 3's analysis (ltmpq.analysis.ch3_quantization), claim 3 (ltmpq.claims), the per-class
McNemar tests (ltmpq.uncertainty.per_class_mcnemar) and the Figs. 7/8 bars (ltmpq.blog).

Everything reads a tiny synthetic store in the shape ``ltmpq.runs.quantized`` writes: three
quantizer variants x two imbalance factors x three seeds, 10 classes of 12 test images each,
weight bits float / 8 / 6 / 4, the five methods. Two parts of a stored sweep are chosen
independently, as the analyses read them independently:

* the stored head / tail / overall metrics (``drop_facts``, ablations, claim 3) follow the drop
  tables ``HEAD_DROP``, ``DELTA``, ``OVERALL_DROP`` and ``EXTRA_TAIL`` below;
* the stored predictions of the default variant (paired tests, McNemar, flips, exemplars) are the
  labels with the few edits of :func:`predictions`; the stored per-class accuracies follow them.

Expected values are counted by hand from those tables, in the comments beside each assertion.
"""

from __future__ import annotations

import math

import matplotlib
from fakes import HALF1, quant_sweep

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats as sps  # noqa: E402

from ltmpq import blog, claims, frames, plotting, verdicts  # noqa: E402
from ltmpq.analysis import ch3_quantization as ch3  # noqa: E402
from ltmpq.config import QuantConfig, Stage1Config  # noqa: E402
from ltmpq.results import encode_predictions  # noqa: E402
from ltmpq.uncertainty import per_class_mcnemar  # noqa: E402
from ltmpq.vocab import BLOG_MODELS, METHOD_LABELS, METHODS  # noqa: E402

IFS = (0.1, 0.01)
SEEDS = (0, 1, 2)
CFGS = [Stage1Config(imbalance_factor=f, seed=s) for f in IFS for s in SEEDS]
QBITS = ["8", "6", "4"]
BITS = ["float", *QBITS]
N_PER = 12  # test images per class
LABELS = np.repeat(np.arange(10), N_PER)  # class c holds positions 12c .. 12c + 11
HEAD, TAIL = (0, 1, 2, 3), (4, 5, 6, 7, 8, 9)
VARIANTS = ["default", "per-tensor", "BN not folded"]
TRAIN_COUNTS = {
    0.1: [500, 387, 300, 232, 180, 139, 108, 83, 64, 50],
    0.01: [500, 300, 180, 108, 65, 39, 23, 14, 8, 5],
}

# ------------------------------------------------------------------ the stored metrics

#: float accuracy (percent) of every run is these plus its seed
FLOAT_ACC = {"overall": 60.0, "head": 80.0, "tail": 50.0, "worst_class": 20.0}
OTHERS = ("tau_norm", "lws", "ncm")
SMALL = (-0.1, 0.0, 0.1)  # a Δ whose seed-level interval contains 0


def _table(f: float, m: str, spec: dict) -> dict:
    return spec.get((f, m), spec.get((f, "*")))


#: head drop from float (points) of the default quantizer, by (IF, method) and bits
HEAD_DROP = {
    (0.01, "baseline"): {"8": 0.0, "6": 1.0, "4": 2.0},
    (0.01, "crt"): {"8": 0.0, "6": 2.0, "4": 4.0},
    (0.01, "*"): {"8": 0.0, "6": 1.0, "4": 3.0},
    (0.1, "*"): {"8": 0.0, "6": 0.5, "4": 1.0},
}
#: Δ = tail drop - head drop per seed (0, 1, 2) of the default quantizer
DELTA = {
    (0.01, "baseline"): {"8": (0.5, 0.5, 0.5), "6": (3.0, 4.0, 5.0), "4": (8.0, 10.0, 12.0)},
    (0.01, "crt"): {"8": SMALL, "6": (0.0, 1.0, 2.0), "4": (-3.0, -2.0, -1.0)},
    (0.01, "*"): {"8": SMALL, "6": SMALL, "4": SMALL},
    (0.1, "crt"): {"8": SMALL, "6": SMALL, "4": (-5.0, -4.5, -4.0)},
    (0.1, "*"): {"8": SMALL, "6": SMALL, "4": SMALL},
}
#: overall drop (same in every seed)
OVERALL_DROP = {
    (0.01, "baseline"): {"8": 0.2, "6": 2.0, "4": 6.0},
    (0.01, "crt"): {"8": 0.1, "6": 2.5, "4": 3.0},
    (0.01, "*"): {"8": 0.0, "6": 1.0, "4": 3.0},
    (0.1, "*"): {"8": 0.0, "6": 0.5, "4": 1.0},
}
#: what each quantizer variant adds to the tail drop (every IF and method)
EXTRA_TAIL = {"default": {}, "per-tensor": {"8": 1.0, "6": 3.0, "4": 6.0}, "BN not folded": {"4": 0.06}}


def metrics(variant: str, f: float, s: int, m: str, b: str) -> dict:
    """Stored test metrics (fractions) of one run, method and bit-width."""
    if b == "float":
        acc = {k: v + s for k, v in FLOAT_ACC.items()}
    else:
        hd = _table(f, m, HEAD_DROP)[b]
        td = hd + _table(f, m, DELTA)[b][s] + EXTRA_TAIL[variant].get(b, 0.0)
        od = _table(f, m, OVERALL_DROP)[b]
        acc = {"overall": 60 + s - od, "head": 80 + s - hd, "tail": 50 + s - td, "worst_class": 20 + s - td}
    return {**{k: v / 100 for k, v in acc.items()}, "few": None}


# ------------------------------------------------------------------ the stored predictions


def pos(c: int, i) -> np.ndarray:
    """Positions of images ``i`` of class ``c`` in the test split."""
    return N_PER * c + np.atleast_1d(i)


def predictions(f: float, s: int, m: str, b: str) -> np.ndarray:
    """The labels, with these edits (everything else is predicted correctly):

    IF 0.01, baseline: float predicts images 0, 1 of class 0 as 1 and image 0 of class 4 as 5;
    8 bits as float; 6 bits as float and, in seed 0 only, all of class 9 as 4; 4 bits as float
    except class-0 image 0 right again, class-0 image 2 as 2, class-7 images 0-7 as 3, class-9
    images 0-11 (seeds 0, 1) or 0-5 (seed 2) as 4, and in seed 0 class-4 image 0 right again.
    IF 0.01, cRT: at 4 bits all of class 8 as 9 and, in seed 0, class-1 image 0 as 0.
    IF 0.01, tau-norm: all of class 5 as 6 except at 4 bits (a gain, not a drop).
    IF 0.1, baseline: at 4 bits all of class 0 as 1. Every other model is always right.
    """
    p = LABELS.copy()
    if f == 0.01 and m == "baseline":
        p[pos(0, [0, 1])] = 1
        p[pos(4, 0)] = 5
        if b == "6" and s == 0:
            p[pos(9, range(12))] = 4
        if b == "4":
            p[pos(0, 0)] = 0
            p[pos(0, 2)] = 2
            p[pos(7, range(8))] = 3
            p[pos(9, range(12 if s < 2 else 6))] = 4
            if s == 0:
                p[pos(4, 0)] = 4
    elif f == 0.01 and m == "crt" and b == "4":
        p[pos(8, range(12))] = 9
        if s == 0:
            p[pos(1, 0)] = 0
    elif f == 0.01 and m == "tau_norm" and b != "4":
        p[pos(5, range(12))] = 6
    elif f == 0.1 and m == "baseline" and b == "4":
        p[pos(0, range(12))] = 1
    return p


def per_class_acc(pred: np.ndarray) -> list[float]:
    return [float(np.mean(pred[LABELS == c] == c)) for c in range(10)]


WALL = {"default": 60.0, "per-tensor": 90.0, "BN not folded": 30.0}
THREADS = {"default": 1, "per-tensor": 2, "BN not folded": 1}


def quant_result(cfg: Stage1Config, variant: str) -> dict:
    """One stored quantized sweep; only the default variant keeps its predictions."""
    f, s = cfg.imbalance_factor, cfg.seed

    def test(m: str, b: str) -> dict:
        pred = predictions(f, s, m, b)
        out = {"metrics": metrics(variant, f, s, m, b), "per_class": per_class_acc(pred)}
        return out | ({"predictions": encode_predictions(pred)} if variant == "default" else {})

    return quant_sweep(
        cfg, BITS, test, val={"metrics": {k: 0.1 for k in FLOAT_ACC}, "per_class": [0.1] * 10},
        profile="cpu", train_counts=TRAIN_COUNTS[f], calibration_counts=None,
        quant={"granularity": "channel", "clipping": "minmax", "fold_bn": True, "act_bits": None,
               "calibration": "lt", "calibration_size": 250, "calibration_seed": 0},
        provenance={"wall_seconds": WALL[variant],
                    "device": {"name": "x86_64", "torch_threads": THREADS[variant]}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def qres() -> dict[str, dict]:
    return {v: {c: quant_result(c, v) for c in CFGS} for v in VARIANTS}


@pytest.fixture(scope="module")
def s1() -> dict:
    return {
        c: {"kind": "stage1", "imbalance_factor": c.imbalance_factor, "seed": c.seed,
            "test_labels": LABELS.tolist(), "train_counts": TRAIN_COUNTS[c.imbalance_factor]}
        for c in CFGS
    }  # fmt: skip


@pytest.fixture(scope="module")
def frame(qres) -> pd.DataFrame:
    return frames.quant_frame(qres)


@pytest.fixture(scope="module")
def drops(frame) -> pd.DataFrame:
    return frames.drop_frame(frame)


@pytest.fixture(scope="module")
def paired(qres, s1) -> pd.DataFrame:
    return ch3.paired_tests(qres["default"], s1, QBITS, HEAD, TAIL, n_boot=399)


@pytest.fixture(scope="module")
def abl(drops) -> pd.DataFrame:
    return ch3.ablations(drops, VARIANTS)


def cell(df: pd.DataFrame, **match) -> pd.Series:
    """The one row of ``df`` whose columns equal ``match``."""
    hit = df[np.logical_and.reduce([df[k] == v for k, v in match.items()])]
    assert len(hit) == 1, f"{len(hit)} rows match {match}"
    return hit.iloc[0]


# ------------------------------------------------------------------ setup, blog fallbacks, Figs. 7/8


def test_blog_bits_and_blog_if_fall_back_when_the_blogs_values_were_not_run():
    """blog_bits: "6" when swept, else the middle bit-width; blog_if: 0.01 when run, else the smallest IF."""
    assert ch3.blog_bits(["8", "6", "4"]) == "6"
    assert ch3.blog_bits(["8", "5", "4", "3"]) == "4"  # qbits[4 // 2]
    assert ch3.blog_bits(["8", "5", "4"]) == "5"  # qbits[3 // 2]
    assert ch3.blog_bits(["8"]) == "8"
    assert ch3.blog_if([0.1, 0.02, 0.01]) == 0.01
    assert ch3.blog_if([0.1, 0.02]) == 0.02
    assert ch3.blog_if([0.5]) == 0.5


def test_setup_facts_state_the_quantizer_and_the_sweep(s1):
    """setup_facts: bit list, seeds, smallest IF, test images per class and the quantizer in words."""
    got = ch3.setup_facts(QuantConfig(), s1, QBITS, 2, 399)
    assert got == {
        "bits_list": "8, 6, 4", "n_seeds": 3, "if_lo": "0.01", "n_test_class": "12",
        "granularity": "one scale per output channel", "clipping": "the largest magnitude",
        "n_variants": 2, "n_boot": 399, "calib_size": 250, "much_more": "1",
    }  # fmt: skip
    other = ch3.setup_facts(QuantConfig(granularity="tensor", clipping="mse"), s1, ["4"], 0, 10)
    assert other["granularity"] == "one scale per layer"
    assert other["clipping"] == "an MSE-optimal clipping"


def test_fig78_bars_keeps_only_the_bit_labels_asked_for():
    """fig78_bars: {(method, metric, label): blog value}, 32 bits labelled "float", only the labels given."""
    got = blog.fig78_bars(["float", "8", "6", "4"])
    assert len(got) == 12  # 2 models x 3 bit-widths x head / tail; the blog has no 4 bits
    assert got[("baseline", "tail", "float")] == 46.3
    assert got[("baseline", "tail", "6")] == 39.8
    assert got[("crt", "head", "8")] == 81.6
    assert got[("crt", "tail", "6")] == 65.4
    assert set(blog.fig78_bars(["float", "4"])) == {
        ("baseline", "head", "float"), ("baseline", "tail", "float"),
        ("crt", "head", "float"), ("crt", "tail", "float"),
    }  # fmt: skip
    assert blog.fig78_bars(["32", "4"]) == {}


def test_fig78_table_puts_ours_beside_the_blog(frame):
    """fig78_table: per (model, metric, bits) the blog's value, ours as mean ± CI and ours - blog."""
    t = ch3.fig78_table(ch3.accuracy_summary(frame), 0.01)
    assert len(t) == 12
    r = t.loc[("baseline (CE)", "head", "float (32)")]  # 80, 81, 82
    assert (r["blog"], r["ours"]) == (88.5, "81.0 ± 2.5")
    assert r["difference"] == pytest.approx(81.0 - 88.5)
    r = t.loc[("cRT", "tail", "6")]  # 50 + s - (2 + s) = 48 in every seed
    assert r["blog"] == 65.4 and r["ours"].startswith("48.0 ± 0.0")
    assert r["difference"] == pytest.approx(48.0 - 65.4)


# ------------------------------------------------------------------ drop facts


def test_drop_facts_by_hand(drops):
    """drop_facts: our drops at 6 bits beside the blog's, the largest mean overall drops, the worst one."""
    got = ch3.drop_facts(drops, QBITS, 0.01)
    assert got["b6"] == "6" and got["f_blog"] == "0.01"
    assert got["drop6_baseline_head"] == "1.0 ± 0.0"  # 1 in every seed
    assert got["drop6_baseline_tail"] == "5.0 ± 2.5"  # 1 + (3, 4, 5)
    assert got["drop6_crt_head"] == "2.0 ± 0.0"
    assert got["drop6_crt_tail"] == "3.0 ± 2.5"  # 2 + (0, 1, 2)
    # the blog's own: 88.5 - 88.0, 46.3 - 39.8, 81.4 - 78.7, 72.0 - 65.4
    assert (got["blog_drop6_baseline_head"], got["blog_drop6_baseline_tail"]) == ("0.5", "6.5")
    assert (got["blog_drop6_crt_head"], got["blog_drop6_crt_tail"]) == ("2.7", "6.6")
    assert got["max_drop_8"] == "0.2"  # baseline at IF 0.01
    assert got["max_drop_b6"] == "2.5"  # cRT at IF 0.01
    # tail drop at 6 bits, IF 0.01: default / BN not folded 5 (baseline), per-tensor 5 + 3
    assert got["worst6_drop"] == "8.0"
    assert got["worst6_where"] == "per-tensor, baseline (CE)"


def test_drop_facts_without_6_or_8_bits(drops):
    """drop_facts: the middle bit-width stands in for 6, and "n/a" when 8 bits were not swept."""
    d = drops[drops["bits"] != "6"]
    got = ch3.drop_facts(d, ["8", "4"], 0.01)
    assert got["b6"] == "4"
    assert got["drop6_baseline_tail"] == "12.0 ± 5.0"  # 2 + (8, 10, 12); half 2 x 2.484
    assert got["blog_drop6_baseline_tail"] == "6.5"  # the blog's 6 bits still
    assert got["max_drop_b6"] == "6.0"
    assert got["worst6_drop"] == "18.0" and got["worst6_where"] == "per-tensor, baseline (CE)"  # 12 + 6
    no8 = ch3.drop_facts(drops[drops["bits"] != "8"], ["6", "4"], 0.01)
    assert no8["max_drop_8"] == "n/a" and no8["b6"] == "6"


# ------------------------------------------------------------------ paired tests


def test_paired_tests_rows_estimates_q_and_verdicts(paired):
    """paired_tests: IF descending x methods x bits; Δ by hand; p, one BH family over all 30, verdict."""
    assert len(paired) == 30
    assert list(paired["imbalance_factor"]) == [0.1] * 15 + [0.01] * 15
    assert list(paired["method"]) == [m for m in METHODS for _ in QBITS] * 2
    assert list(paired["bits"]) == QBITS * 10
    # IF 0.01 baseline 6 bits: only seed 0 loses all of class 9 -> every class-9 image drops 1/3
    r = cell(paired, imbalance_factor=0.01, method="baseline", bits="6")
    assert r["drop_high"] == pytest.approx(0.0)
    assert r["drop_low"] == pytest.approx(100 / 3 / 6)
    assert r["ci_low"] == pytest.approx(100 / 18) and r["ci_high"] == pytest.approx(100 / 18)
    # IF 0.01 baseline 4 bits: class 0 loses one and gains one; tail classes 4: -1/36, 7: 8/12, 9: 30/36
    r = cell(paired, imbalance_factor=0.01, method="baseline", bits="4")
    assert r["drop_high"] == pytest.approx(0.0)
    assert r["estimate"] == pytest.approx(100 * (-1 / 36 + 2 / 3 + 5 / 6) / 6)  # 24.54
    assert r["ci_low"] < r["estimate"] < r["ci_high"]
    # IF 0.01 cRT 4 bits: head class 1 loses 1 of 12 in one seed of three, tail class 8 loses all
    r = cell(paired, imbalance_factor=0.01, method="crt", bits="4")
    assert r["drop_high"] == pytest.approx(100 / 36 / 4)
    assert r["drop_low"] == pytest.approx(100 / 6)
    assert r["estimate"] == pytest.approx(100 / 6 - 100 / 144)  # 15.97
    # IF 0.1 baseline 4 bits: the head pays (class 0 lost in every seed)
    r = cell(paired, imbalance_factor=0.1, method="baseline", bits="4")
    assert (r["drop_high"], r["drop_low"], r["estimate"]) == pytest.approx((25.0, 0.0, -25.0))
    # every bootstrap replicate of the three tail-paying tests is > 0, of the two head-paying ones
    # (IF 0.1 baseline and IF 0.01 tau-norm at 4 bits) < 0: two-sided p = 2 / (399 + 1); the others
    # are exactly 0: p = 1; BH over 30 with five equal smallest: q = 0.005 * 30 / 5
    head_pays = (paired["bits"] == "4") & (
        ((paired["imbalance_factor"] == 0.1) & (paired["method"] == "baseline"))
        | ((paired["imbalance_factor"] == 0.01) & (paired["method"] == "tau_norm"))
    )
    tail_pays = (paired["imbalance_factor"] == 0.01) & (
        ((paired["method"] == "baseline") & paired["bits"].isin(["6", "4"]))
        | ((paired["method"] == "crt") & (paired["bits"] == "4"))
    )
    np.testing.assert_allclose(paired.loc[tail_pays | head_pays, "pvalue_two_sided"], 2 / 400)
    np.testing.assert_allclose(paired.loc[~(tail_pays | head_pays), "pvalue_two_sided"], 1.0)
    np.testing.assert_allclose(paired.loc[tail_pays | head_pays, "q"], 0.03)
    np.testing.assert_allclose(paired.loc[~(tail_pays | head_pays), "q"], 1.0)
    # the words are the intervals', in both directions and against the practical threshold
    assert (paired.loc[tail_pays, "reading"] == "tail pays ≥ 1 point more").all()
    assert (paired.loc[head_pays, "reading"] == "head pays more").all()
    assert (paired.loc[~(tail_pays | head_pays), "reading"] == "no detectable difference").all()
    assert (paired.loc[tail_pays | head_pays, "survives BH"] == "yes").all()
    # IF 0.01 tau-norm 4 bits: tail class 5 is right again in every seed (Δ < 0, p = 1)
    r = cell(paired, imbalance_factor=0.01, method="tau_norm", bits="4")
    assert (r["drop_high"], r["drop_low"], r["estimate"]) == pytest.approx((0.0, -100 / 6, -100 / 6))
    assert (paired.loc[~(tail_pays | head_pays), "estimate"] == 0).all()


def test_paired_table_columns(paired):
    """paired_table: indexed (IF, model label, bits), the chapter's column names in order."""
    t = ch3.paired_table(paired)
    assert list(t.columns) == ["head drop", "tail drop", "Δ", "Δ low", "Δ high", "p (two-sided)",
                               "q (BH)", "the 95% interval says", "q < 0.05"]  # fmt: skip
    assert t.loc[(0.01, "cRT", "4"), "q (BH)"] == pytest.approx(0.03)
    assert t.loc[(0.1, "tau-norm", "8"), "the 95% interval says"] == "no detectable difference"


def test_paired_facts_by_hand(paired):
    """paired_facts: n_sig, sig_bits, first significant bits and its largest Δ, Δ at 6 / 4 bits, ranges."""
    got = ch3.paired_facts(paired, QBITS)
    assert (got["n_tests"], got["n_sig"], got["n_sig_head"], got["lowest_bits"]) == (30, 3, 2, "4")
    assert got["n_much_more"] == 3
    assert got["sig_bits"] == "6, 4"
    assert got["first_sig_bits"] == "6 bits"
    assert got["first_sig_max"] == "5.6"  # 100 / 18
    assert got["delta_b6_baseline"] == "5.6 [5.6, 5.6]"  # every resample gives the same value
    assert got["delta_b6_crt"] == "0.0 [0.0, 0.0]"
    r = cell(paired, imbalance_factor=0.01, method="baseline", bits="4")
    assert got["delta_low_baseline"] == f"24.5 [{r['ci_low']:.1f}, {r['ci_high']:.1f}]"
    assert got["delta_low_crt"].startswith("16.0 [")
    assert got["q_low_baseline"] == "0.03" and got["q_low_crt"] == "0.03"
    assert got["delta_range_table"] == "8 bits +0.0 to +0.0, 6 bits +0.0 to +5.6, 4 bits -25.0 to +24.5"


def test_paired_facts_when_nothing_is_significant(qres, s1):
    """With 99 resamples two-sided p >= 2/100 and q >= 0.12: no test survives BH, and the facts say so."""
    few = ch3.paired_tests(qres["default"], s1, QBITS, HEAD, TAIL, n_boot=99)
    assert few["q"].min() == pytest.approx(0.12)  # 0.02 * 30 / 5
    assert (few["survives BH"] == "no").all()
    got = ch3.paired_facts(few, QBITS)
    assert got["n_sig"] == 0
    assert got["sig_bits"] == "none"
    assert got["first_sig_bits"] == "no bit-width tested"
    assert got["first_sig_max"] == "–"


# ------------------------------------------------------------------ per-class changes and McNemar


def test_per_class_change_and_change_grid(qres):
    """per_class_change: change = accuracy - float accuracy of the same run; change_grid: its seed mean."""
    ch = ch3.per_class_change(qres["default"], 0.01)
    assert len(ch) == 3 * 5 * 4 * 10 and set(ch["imbalance_factor"]) == {0.01}
    assert (ch.loc[ch["bits"] == "float", "change"] == 0).all()
    np.testing.assert_allclose(ch["change"], ch["accuracy"] - ch["float"])
    r = cell(ch, seed=0, method="baseline", bits="4", **{"class": 4})
    assert (r["float"], r["accuracy"], r["change"]) == pytest.approx((100 * 11 / 12, 100.0, 100 / 12))
    grid = ch3.change_grid(ch, "baseline", QBITS)
    assert list(grid.index) == QBITS and list(grid.columns) == list(range(10))
    expected = np.zeros((3, 10))
    expected[1, 9] = -100 / 3  # 6 bits: seed 0 loses the whole class
    expected[2, [4, 7, 9]] = [100 / 36, -200 / 3, -250 / 3]  # +1/12 once; 8/12 thrice; 12, 12, 6 of 12
    np.testing.assert_allclose(grid.to_numpy(), expected, atol=1e-9)
    crt = ch3.change_grid(ch, "crt", ["4", "6"])
    assert list(crt.index) == ["4", "6"]
    assert crt.loc["4", 8] == pytest.approx(-100) and crt.loc["4", 1] == pytest.approx(-100 / 36)
    assert (crt.loc["6"] == 0).all()


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_per_class_mcnemar_by_hand():
    """per_class_mcnemar: per (run, class) a_only, b_only, delta = acc(B) - acc(A) in points, exact p."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    a = np.array([[1, 1, 1, 1, 1, 1, 0, 0, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]], dtype=bool)
    b = np.array([[0, 0, 0, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]], dtype=bool)
    t = per_class_mcnemar(labels, a, b, 4)
    assert list(t.columns[:2]) == ["run", "class"] and len(t) == 8
    assert set(t.columns) == {"run", "class", "delta", "a_only", "b_only", "pvalue"}
    r0 = t[t["run"] == 0].set_index("class")
    # class 0: A right on 4, B on 1 -> a_only 3, delta -75, p = 2 * 0.5**3
    assert (r0.loc[0, "a_only"], r0.loc[0, "b_only"]) == (3, 0)
    assert r0.loc[0, "delta"] == pytest.approx(-75.0)
    assert r0.loc[0, "pvalue"] == pytest.approx(0.25)
    # class 1: B gains two -> b_only 2, delta +50, p = 2 * 0.5**2
    assert (r0.loc[1, "a_only"], r0.loc[1, "b_only"], r0.loc[1, "delta"]) == (0, 2, pytest.approx(50.0))
    assert r0.loc[1, "pvalue"] == pytest.approx(0.5)
    assert (r0.loc[2, "a_only"], r0.loc[2, "b_only"], r0.loc[2, "pvalue"]) == (0, 0, 1.0)
    assert math.isnan(r0.loc[3, "delta"]) and r0.loc[3, "pvalue"] == 1.0  # a class without images
    r1 = t[t["run"] == 1]
    assert (r1["a_only"] == 0).all() and (r1["b_only"] == 0).all() and (r1["pvalue"] == 1.0).all()
    one = per_class_mcnemar(labels, a[0], b[0], 3)  # one run as 1-d vectors
    assert len(one) == 3 and (one["run"] == 0).all()
    k = 9
    lost = per_class_mcnemar(np.zeros(k, int), np.ones(k, bool), np.zeros(k, bool), 1).iloc[0]
    assert lost["pvalue"] == pytest.approx(2 * 0.5**k) and lost["delta"] == pytest.approx(-100.0)


def test_per_class_mcnemar_rejects_mismatched_arrays():
    """per_class_mcnemar: ValueError when A, B and the labels disagree in shape."""
    labels = np.array([0, 1, 1])
    ok = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match="do not match"):
        per_class_mcnemar(labels, ok, ok[:1], 2)
    with pytest.raises(ValueError, match="do not match"):
        per_class_mcnemar(labels, ok[:, :2], ok[:, :2], 2)
    with pytest.raises(ValueError, match="do not match"):
        per_class_mcnemar(labels[:2], ok, ok, 2)


def test_class_drop_tests_by_hand(qres, s1):
    """class_drop_tests: exact McNemar per (method, bits, seed, class), BH within (method, seed), dropped."""
    mc = ch3.class_drop_tests(qres["default"], s1, 0.01, QBITS)
    assert len(mc) == 2 * 3 * 3 * 10  # methods x bits x seeds x classes
    assert set(mc["method"]) == {"baseline", "crt"}

    def row(m, b, s, c):
        return cell(mc, method=m, bits=b, seed_index=s, **{"class": c})

    # baseline seed 0: class 9 lost entirely at 6 and at 4 bits (p = 2 * 0.5**12), class 7 loses
    # 8 at 4 bits (p = 2 * 0.5**8); class 0 loses one and gains one (p = 1); 26 more p = 1.
    r = row("baseline", "4", 0, 9)
    assert (r["a_only"], r["b_only"], r["delta"]) == (12, 0, pytest.approx(-100.0))
    assert r["pvalue"] == pytest.approx(2 * 0.5**12)
    assert r["q"] == pytest.approx(2 * 0.5**12 * 30 / 2) and r["dropped"]
    assert row("baseline", "6", 0, 9)["q"] == pytest.approx(2 * 0.5**12 * 30 / 2)
    r = row("baseline", "4", 0, 7)
    assert (r["a_only"], r["b_only"], r["pvalue"]) == (8, 0, pytest.approx(2 * 0.5**8))
    assert r["q"] == pytest.approx(2 * 0.5**8 * 30 / 3) and not r["dropped"]  # 0.078
    r = row("baseline", "4", 0, 0)
    assert (r["a_only"], r["b_only"], r["pvalue"], r["delta"]) == (1, 1, pytest.approx(1.0), 0.0)
    r = row("baseline", "4", 0, 4)  # gained, never dropped
    assert (r["a_only"], r["b_only"], r["delta"]) == (0, 1, pytest.approx(100 / 12)) and not r["dropped"]
    # seed 1: class 9 (rank 1) and class 7 (rank 2) at 4 bits only
    assert row("baseline", "4", 1, 9)["q"] == pytest.approx(2 * 0.5**12 * 30)
    r = row("baseline", "4", 1, 7)
    assert r["q"] == pytest.approx(2 * 0.5**8 * 30 / 2) and not r["dropped"]  # 0.117; per bit-width: 0.039
    assert row("baseline", "6", 1, 9)["pvalue"] == 1.0
    # seed 2: class 9 loses 6 (p = 2 * 0.5**6), class 7 loses 8
    r = row("baseline", "4", 2, 9)
    assert r["pvalue"] == pytest.approx(2 * 0.5**6)
    assert r["q"] == pytest.approx(2 * 0.5**6 * 30 / 2) and not r["dropped"]  # rank 2
    assert row("baseline", "4", 2, 7)["q"] == pytest.approx(2 * 0.5**8 * 30)  # rank 1
    # cRT: class 8 lost in every seed; class 1 loses one image in seed 0 (p = 1)
    for s in SEEDS:
        r = row("crt", "4", s, 8)
        assert r["q"] == pytest.approx(2 * 0.5**12 * 30) and r["dropped"]
    assert row("crt", "4", 0, 1)["pvalue"] == 1.0
    dropped = mc[mc["dropped"]][["method", "bits", "seed_index", "class"]]
    assert sorted(map(tuple, dropped.to_numpy().tolist())) == sorted(
        [("baseline", "6", 0, 9), ("baseline", "4", 0, 9), ("baseline", "4", 1, 9)]
        + [("crt", "4", s, 8) for s in SEEDS]
    )
    assert (mc.loc[mc["bits"] == "8", "pvalue"] == 1.0).all()


def test_class_drop_tests_a_significant_gain_is_not_a_drop(qres, s1):
    """class_drop_tests: q < 0.05 with more images gained than lost (tau-norm's class 5) is not 'dropped'."""
    mc = ch3.class_drop_tests(qres["default"], s1, 0.01, ["4"], ["tau_norm"])
    assert len(mc) == 3 * 10 and set(mc["method"]) == {"tau_norm"}
    gain = mc[mc["class"] == 5]
    assert (gain["a_only"] == 0).all() and (gain["b_only"] == 12).all()
    np.testing.assert_allclose(gain["q"], 2 * 0.5**12 * 10)  # BH over the seed's 10 classes
    np.testing.assert_allclose(gain["delta"], 100.0)
    assert not mc["dropped"].any()


def test_class_drop_counts_as_k_of_n(qres, s1):
    """class_drop_counts: per (model label, bits) x class, in how many seeds the class dropped, as 'k/n'."""
    mc = ch3.class_drop_tests(qres["default"], s1, 0.01, QBITS)
    counts = ch3.class_drop_counts(mc, QBITS, 3)
    assert list(counts.index) == [(METHOD_LABELS[m], b) for m in ("baseline", "crt") for b in QBITS]
    assert list(counts.columns) == list(range(10))
    assert counts.loc[("baseline (CE)", "6"), 9] == "1/3"
    assert counts.loc[("baseline (CE)", "4"), 9] == "2/3"
    assert counts.loc[("baseline (CE)", "4"), 7] == "0/3"
    assert counts.loc[("cRT", "4"), 8] == "3/3"
    assert (counts.loc[("baseline (CE)", "8")] == "0/3").all()
    assert (counts.to_numpy() == "0/3").sum() == 6 * 10 - 3
    only = ch3.class_drop_counts(ch3.class_drop_tests(qres["default"], s1, 0.01, ["4"], ["crt"]), ["4"], 3)
    assert list(only.index) == [("cRT", "4")] and only.loc[("cRT", "4"), 8] == "3/3"


# ------------------------------------------------------------------ flips


def test_flips_by_hand(qres, s1):
    """flips: per model, bits and group, pooled over seeds: float acc, abs / rel drop, flipped, c→w, w→c."""
    t = ch3.flips(qres["default"], s1, 0.01, QBITS, HEAD, TAIL)
    assert len(t) == 2 * 3 * 2
    assert list(t.columns) == ["float", "abs. drop", "rel. drop %", "flipped %", "c→w %", "w→c %"]
    # baseline head, 3 x 48 images: 6 wrong at float; per seed image 0 of class 0 right again, image 2 wrong
    got = t.loc[("baseline (CE)", "4", "head")]
    want = {"float": 100 * 138 / 144, "abs. drop": 0.0, "rel. drop %": 0.0, "flipped %": 100 * 6 / 144,
            "c→w %": 100 * 3 / 138, "w→c %": 100 * 3 / 6}  # fmt: skip
    assert got.to_dict() == pytest.approx(want)
    # baseline tail, 3 x 72 images: 3 wrong at float; 8 + 8 + 8 (class 7) + 12 + 12 + 6 (class 9)
    # correct ones break, one wrong one is right again (seed 0)
    got = t.loc[("baseline (CE)", "4", "tail")]
    want = {"float": 100 * 213 / 216, "abs. drop": 100 * 53 / 216, "rel. drop %": 100 * 53 / 213,
            "flipped %": 100 * 55 / 216, "c→w %": 100 * 54 / 213, "w→c %": 100 * 1 / 3}  # fmt: skip
    assert got.to_dict() == pytest.approx(want)
    got = t.loc[("baseline (CE)", "6", "tail")]  # seed 0 loses class 9
    assert (got["abs. drop"], got["c→w %"], got["w→c %"]) == pytest.approx(
        (100 * 12 / 216, 100 * 12 / 213, 0)
    )
    at8 = t.xs(("baseline (CE)", "8"), level=("method", "bits"))
    assert at8.drop(columns="float").to_numpy() == pytest.approx(0.0)
    # cRT: float always right; one head image (of 144) and 36 tail images (of 216) break; nothing to gain
    got = t.loc[("cRT", "4", "head")]
    one = 100 / 144
    want = {
        "float": 100.0,
        "abs. drop": one,
        "rel. drop %": one,
        "flipped %": one,
        "c→w %": one,
        "w→c %": 0.0,
    }
    assert got.to_dict() == pytest.approx(want)
    got = t.loc[("cRT", "4", "tail")]
    assert (got["abs. drop"], got["flipped %"], got["c→w %"]) == pytest.approx((100 / 6, 100 / 6, 100 / 6))


def test_flip_facts_the_tail_is_more_fragile(qres, s1):
    """flip_facts: one-decimal strings of the flips table; 'more' fragile when the tail's c→w is larger."""
    t = ch3.flips(qres["default"], s1, 0.01, QBITS, HEAD, TAIL)
    got = ch3.flip_facts(t, "4")
    assert (got["cw_baseline_head"], got["cw_baseline_tail"]) == ("2.2", "25.4")  # 3/138, 54/213
    assert (got["rel_baseline_head"], got["rel_baseline_tail"]) == ("0.0", "24.9")  # 53/213
    assert (got["abs_baseline_head"], got["abs_baseline_tail"]) == ("0.0", "24.5")  # 53/216
    assert (got["flip_baseline_head"], got["flip_baseline_tail"]) == ("4.2", "25.5")  # 6/144, 55/216
    assert (got["cw_crt_head"], got["cw_crt_tail"], got["abs_crt_tail"]) == ("0.7", "16.7", "16.7")
    assert got["fragile_word"] == "more"
    assert got["fragile_reading"] == "the tail's larger loss is not only its lower starting point"


def test_flip_facts_the_tail_is_less_fragile():
    """flip_facts: 'less' fragile (and the other reading) when the baseline tail's c→w is not larger."""
    cols = ["float", "abs. drop", "rel. drop %", "flipped %", "c→w %", "w→c %"]
    rows = {
        ("baseline (CE)", "3", "head"): [90, 4, 4.4, 6, 5.0, 10],
        ("baseline (CE)", "3", "tail"): [40, 6, 15.0, 12, 5.0, 8],  # equal c→w: not more fragile
        ("cRT", "3", "head"): [80, 1, 1.25, 2, 1.5, 0],
        ("cRT", "3", "tail"): [70, 1, 1.43, 2, 9.0, 0],  # cRT does not decide the wording
    }
    index = pd.MultiIndex.from_tuples(list(rows), names=["method", "bits", "group"])
    t = pd.DataFrame(list(rows.values()), columns=cols, index=index)
    got = ch3.flip_facts(t, "3")
    assert got["fragile_word"] == "less"
    assert (
        got["fragile_reading"]
        == "the tail's larger absolute loss, where there is one, comes from where it started"
    )
    assert (got["cw_crt_tail"], got["rel_baseline_tail"], got["abs_baseline_head"]) == ("9.0", "15.0", "4.0")


# ------------------------------------------------------------------ compression-identified exemplars

#: CIEs of the baseline at IF 0.01, 4 bits: class-0 images 0 and 2 (all seeds), class-7 images
#: 0-7 (all seeds), class-9 images 0-11 (0-5 in all seeds, 6-11 in two of three). Class-4 image 0
#: changes in seed 0 only: its modal prediction does not.
CIE_4 = np.concatenate([pos(0, [0, 2]), pos(7, range(8)), pos(9, range(12))])


def test_exemplars_are_the_mode_over_seeds(qres, s1):
    """exemplars: images whose modal float prediction over seeds differs from the modal quantized one."""
    ex = ch3.exemplars(qres["default"], s1, 0.01, "4")
    np.testing.assert_array_equal(ex["positions"], CIE_4)
    np.testing.assert_array_equal(ex["labels"], LABELS)
    assert ex["float"][pos(0, 0)[0]] == 1 and ex["quantized"][pos(0, 0)[0]] == 0
    assert ex["float"][pos(4, 0)[0]] == 5 and ex["quantized"][pos(4, 0)[0]] == 5  # 2 of 3 seeds say 5
    assert ex["quantized"][pos(9, 11)[0]] == 4  # two seeds of three
    assert ex["float"].shape == ex["quantized"].shape == LABELS.shape
    # 6 bits: only seed 0 loses class 9, so no mode changes
    assert ch3.exemplars(qres["default"], s1, 0.01, "6")["positions"].size == 0
    crt = ch3.exemplars(qres["default"], s1, 0.01, "4", method="crt")
    np.testing.assert_array_equal(crt["positions"], pos(8, range(12)))  # class-1 image 0: one seed only


def test_exemplar_table_and_facts(qres, s1):
    """exemplar_table: CIEs per class at each bit-width with head / tail sums; exemplar_facts: the shares."""
    t = ch3.exemplar_table(qres["default"], s1, 0.01, QBITS, HEAD, TAIL)
    assert list(t.index) == QBITS
    assert list(t.columns) == [*range(10), "head", "tail"]
    expected = np.zeros((3, 12))
    expected[2, [0, 7, 9, 10, 11]] = [2, 8, 12, 2, 20]
    np.testing.assert_array_equal(t.to_numpy(), expected)
    facts = ch3.exemplar_facts(ch3.exemplars(qres["default"], s1, 0.01, "4"), "4", TAIL)
    assert facts == {
        "cie_bits": "4",
        "cie_n": 22,
        "cie_tail_share": "91",
        "tail_share_test": "60",
    }  # 20/22, 72/120
    empty = ch3.exemplar_facts(ch3.exemplars(qres["default"], s1, 0.01, "8"), "8", TAIL)
    assert empty == {"cie_bits": "8", "cie_n": 0, "cie_tail_share": "n/a", "tail_share_test": "60"}


def test_exemplar_picks_deterministic_within_positions_and_empty(qres, s1):
    """exemplar_picks: up to n distinct CIE positions, the same for the same seed; empty without CIEs."""
    ex = ch3.exemplars(qres["default"], s1, 0.01, "4")
    picks = ch3.exemplar_picks(ex)
    assert len(picks) == 8 and len(set(picks.tolist())) == 8
    assert set(picks.tolist()) <= set(CIE_4.tolist())
    np.testing.assert_array_equal(picks, ch3.exemplar_picks(ex))
    assert not np.array_equal(picks, ch3.exemplar_picks(ex, seed=1))
    every = ch3.exemplar_picks(ex, n=100)
    assert sorted(every.tolist()) == CIE_4.tolist()
    none = ch3.exemplar_picks(ch3.exemplars(qres["default"], s1, 0.01, "8"))
    assert none.size == 0


# ------------------------------------------------------------------ Δ per seed and the ablations


def test_delta_per_seed_is_tail_drop_minus_head_drop(drops):
    """delta_per_seed: per (variant, IF, seed, method, bits) the head and tail drops and Δ = tail - head."""
    d = frames.delta_per_seed(drops)
    assert len(d) == 3 * 2 * 3 * 5 * 3
    assert "float" not in set(d["bits"])
    r = cell(d, variant="default", imbalance_factor=0.01, seed=2, method="baseline", bits="4")
    assert (r["head"], r["tail"], r["delta"]) == pytest.approx((2.0, 14.0, 12.0))
    r = cell(d, variant="per-tensor", imbalance_factor=0.01, seed=0, method="crt", bits="6")
    assert (r["head"], r["tail"], r["delta"]) == pytest.approx((2.0, 5.0, 3.0))  # 2 + 0 + 3
    r = cell(d, variant="default", imbalance_factor=0.1, seed=1, method="crt", bits="4")
    assert r["delta"] == pytest.approx(-4.5)
    np.testing.assert_allclose(d["delta"], d["tail"] - d["head"])


def test_ablations_conclusion_changed_cell_and_mark(abl):
    """ablations: Δ mean ± CI over seeds, tail / head / '–' by the interval, '★' where unlike the default."""
    assert len(abl) == 3 * 2 * 5 * 3
    assert list(abl["variant"].cat.categories) == VARIANTS

    def row(v, f, m, b):
        return cell(abl, variant=v, imbalance_factor=f, method=m, bits=b)

    r = row("default", 0.01, "baseline", "6")  # (3, 4, 5)
    assert (r["delta"], r["ci"]) == pytest.approx((4.0, HALF1))
    assert (r["conclusion"], r["changed"], r["cell"], r["mark"]) == ("tail", False, "4.0 ± 2.5 tail", "+4.0*")
    r = row("default", 0.01, "baseline", "8")  # 0.5 in every seed: a zero-width interval above 0
    assert (r["conclusion"], r["mark"]) == ("tail", "+0.5*")
    r = row("default", 0.01, "crt", "6")  # (0, 1, 2)
    assert (r["conclusion"], r["cell"], r["mark"]) == ("–", "1.0 ± 2.5 –", "+1.0")
    r = row("default", 0.01, "crt", "4")  # (-3, -2, -1): the interval still reaches 0.48
    assert (r["conclusion"], r["mark"]) == ("–", "-2.0")
    r = row("default", 0.1, "crt", "4")  # (-5, -4.5, -4)
    assert (r["delta"], r["ci"]) == pytest.approx((-4.5, HALF1 / 2))
    assert (r["conclusion"], r["cell"], r["mark"]) == ("head", "-4.5 ± 1.2 head", "-4.5*")
    r = row("per-tensor", 0.01, "crt", "6")  # (3, 4, 5): tail, where the default says neither
    assert (r["conclusion"], r["changed"], r["cell"], r["mark"]) == (
        "tail",
        True,
        "4.0 ± 2.5 tail ★",
        "+4.0*★",
    )
    r = row("per-tensor", 0.1, "crt", "4")  # (1, 1.5, 2): tail, where the default says head
    assert (r["conclusion"], r["changed"], r["mark"]) == ("tail", True, "+1.5*★")
    r = row("per-tensor", 0.01, "baseline", "4")  # still tail
    assert (r["conclusion"], r["changed"]) == ("tail", False)
    assert not abl.loc[abl["variant"] == "default", "changed"].any()
    assert not abl.loc[abl["variant"] == "BN not folded", "changed"].any()
    # per-tensor: every cell but the baseline's at IF 0.01 turns to tail
    assert abl.loc[abl["variant"] == "per-tensor", "changed"].sum() == 27
    assert r["column"] == "IF 0.01\n4-bit"


def test_default_conclusions_by_hand(abl):
    """ablations: the default quantizer's who-pays column over every IF, method and bit-width."""
    d = abl[abl["variant"] == "default"].set_index(["imbalance_factor", "method", "bits"])["conclusion"]
    tails = {(0.01, "baseline", b) for b in QBITS}
    assert set(d[d == "tail"].index) == tails
    assert set(d[d == "head"].index) == {(0.1, "crt", "4")}
    assert (d.drop(list(tails) + [(0.1, "crt", "4")]) == "–").all()


def test_ablations_delta_zero_in_every_seed_is_neither():
    """ablations: a bit-width that changes nothing (Δ = 0 in every seed) concludes '–', not 'head'."""
    rows = [
        {"variant": "default", "imbalance_factor": 0.01, "seed": s, "method": "baseline", "bits": b,
         "metric": k, "value": v}
        for s in SEEDS for b in ("float", "8") for k, v in (("head", 80.0), ("tail", 50.0))
    ]  # fmt: skip
    got = ch3.ablations(frames.drop_frame(pd.DataFrame(rows)), ["default"])
    assert got.loc[0, "delta"] == 0.0
    assert got.loc[0, "conclusion"] == "–"
    assert got.loc[0, "mark"] == "+0.0"


def test_ablation_grid_shapes_and_values(abl, drops):
    """ablation_grid: Δ and mark frames, variants (rows, in the given order) x 'IF f\\nb-bit' columns."""
    delta, mark = ch3.ablation_grid(abl, "crt", [0.1, 0.01], QBITS)
    cols = [
        "IF 0.1\n8-bit",
        "IF 0.1\n6-bit",
        "IF 0.1\n4-bit",
        "IF 0.01\n8-bit",
        "IF 0.01\n6-bit",
        "IF 0.01\n4-bit",
    ]
    assert delta.shape == mark.shape == (3, 6)
    assert list(delta.columns) == cols and list(mark.columns) == cols
    assert list(delta.index) == VARIANTS
    assert delta.loc["default", "IF 0.01\n6-bit"] == pytest.approx(1.0)
    assert delta.loc["BN not folded", "IF 0.01\n4-bit"] == pytest.approx(-1.94)
    assert mark.loc["per-tensor", "IF 0.1\n4-bit"] == "+1.5*★"
    assert mark.loc["default", "IF 0.1\n4-bit"] == "-4.5*"
    one, _ = ch3.ablation_grid(abl, "baseline", [0.01], ["4"])
    assert one.shape == (3, 1) and one.loc["per-tensor"].iloc[0] == pytest.approx(16.0)  # 10 + 6
    reordered = ["default", "BN not folded", "per-tensor"]
    rows, _ = ch3.ablation_grid(ch3.ablations(drops, reordered), "crt", [0.01], ["6"])
    assert list(rows.index) == reordered


def test_ablation_table_column_order(abl):
    """ablation_table: rows (model label, variant), columns (IF, bits) from the mildest IF and most bits."""
    t = ch3.ablation_table(abl)
    assert list(t.columns) == [(0.1, "8"), (0.1, "6"), (0.1, "4"), (0.01, "8"), (0.01, "6"), (0.01, "4")]
    assert len(t) == 5 * 3
    assert set(t.index.get_level_values(0)) == {METHOD_LABELS[m] for m in METHODS}
    assert t.loc[("cRT", "per-tensor"), (0.01, "6")] == "4.0 ± 2.5 tail ★"
    assert t.loc[("baseline (CE)", "default"), (0.01, "4")] == f"10.0 ± {2 * HALF1:.1f} tail"


def test_variant_accuracy_table(frame):
    """variant_accuracy(_table): seed means of overall / head / tail per variant and model, float first."""
    acc = ch3.variant_accuracy(frame, 0.01)
    assert set(acc["metric"]) == {"overall", "head", "tail"} and set(acc["method"]) == {"baseline", "crt"}
    assert set(acc["imbalance_factor"]) == {0.01}
    t = ch3.variant_accuracy_table(acc, BITS)
    assert list(t.columns) == BITS
    assert len(t) == 3 * 2 * 3
    # tail: float 51 (50 + seed); drops 0.5, 1 + 4, 2 + 10 on average, per-tensor 1, 3, 6 more
    assert t.loc[("default", "baseline (CE)", "tail")].to_list() == pytest.approx([51, 50.5, 46, 39])
    assert t.loc[("per-tensor", "baseline (CE)", "tail")].to_list() == pytest.approx([51, 49.5, 43, 33])
    assert t.loc[("BN not folded", "cRT", "head")].to_list() == pytest.approx([81, 81, 79, 77])
    assert t.loc[("default", "cRT", "overall")].to_list() == pytest.approx([61, 60.9, 58.5, 58])


def test_ablation_facts_by_hand(frame, abl):
    """ablation_facts: the variant moving the tail most, those changing a conclusion, BN folding's effect."""
    got = ch3.ablation_facts(frame, abl, VARIANTS)
    assert got == {
        "top_variant": "per-tensor",
        "top_effect": "3.3",  # mean of 1, 3, 6 over IFs and methods
        "n_changed_variants": 1,
        "changed_variants": "per-tensor (27 cells)",
        "bn_same": "0.02",  # 0.06 at 4 bits, 0 at 8 and 6
    }
    only_bn = ch3.ablation_facts(frame, abl, ["default", "BN not folded"])
    assert (only_bn["top_variant"], only_bn["top_effect"], only_bn["bn_same"]) == (
        "BN not folded",
        "0.0",
        "0.02",
    )


def test_ablation_facts_without_ablations(qres):
    """ablation_facts: every fact is 'n/a (no ablations run)' when only the default quantizer ran."""
    d = {"default": qres["default"]}
    f = frames.quant_frame(d)
    got = ch3.ablation_facts(f, ch3.ablations(frames.drop_frame(f), ["default"]), ["default"])
    assert got == dict.fromkeys(
        ("top_variant", "top_effect", "n_changed_variants", "changed_variants", "bn_same"),
        "no variant beside the default was run",
    )


def test_ablation_facts_none_changed_and_no_bn(frame, abl):
    """ablation_facts: 'none' when no variant changes a conclusion, 'n/a' for bn_same without that variant."""
    flat = abl.assign(changed=False)
    got = ch3.ablation_facts(frame, flat, ["default", "per-tensor"])
    said = (got["changed_variants"], got["n_changed_variants"], got["bn_same"])
    assert said == ("none of them", 0, "not measured")


# ------------------------------------------------------------------ calibration, cost


def test_calibration_counts_of_the_activation_variants(qres):
    """calibration_counts: None without activation variants; else per (calibration, IF) of the first seed."""
    assert ch3.calibration_counts(qres) is None
    act = {}
    for cal in ("lt", "tail"):
        act[f"+ 8-bit act., {cal} calib."] = {
            c: {"quant": {"calibration": cal},
                "calibration_counts": [100 * c.seed + k + (10 if cal == "tail" else 0) for k in range(10)]}
            for c in CFGS
        }  # fmt: skip
    got = ch3.calibration_counts({"default": qres["default"], **act})
    assert list(got.index) == [("lt", 0.1), ("lt", 0.01), ("tail", 0.1), ("tail", 0.01)]
    assert list(got.columns) == [str(k) for k in range(10)]
    assert got.loc[("lt", 0.01)].to_list() == list(range(10))  # seed 0's
    assert got.loc[("tail", 0.1)].to_list() == list(range(10, 20))


def test_cost_table_and_facts(qres):
    """cost: runs / total / per-run seconds per variant, and the minutes, sweep count and threads stated."""
    table, facts = ch3.cost(qres)
    assert list(table.index) == VARIANTS
    assert list(table.columns) == ["runs", "total (s)", "per run (s)"]
    assert table.loc["default"].to_list() == [6, 360.0, 60.0]
    assert table.loc["per-tensor"].to_list() == [6, 540.0, 90.0]
    # 6 x (60 + 90 + 30) s = 18 min; the default's 6 min
    assert facts == {"wall_min": "18", "wall_default_min": "6.0", "n_sweeps": 18, "threads": "1, 2"}


# ------------------------------------------------------------------ claim 3


def test_claim3_bits_dedups_and_keeps_order():
    """claim3_bits: 6, 4 and the fewest bits swept, each once and only where swept."""
    assert claims.claim3_bits((8, 6, 4)) == ["6", "4"]
    assert claims.claim3_bits((8, 6, 5, 4, 3)) == ["6", "4", "3"]
    assert claims.claim3_bits([8, 5]) == ["5"]
    assert claims.claim3_bits((8, 6)) == ["6"]
    assert claims.claim3_bits((4,)) == ["4"]


def test_claim3_parts_values_and_verdicts(drops):
    """claim3: parts 3a-3d (6 then 4 bits; baseline then cRT), per-seed Δ, strongest IF, default only."""
    parts = claims.claim3(drops, (8, 6, 4))
    assert [p.part for p in parts] == ["3a", "3b", "3c", "3d"]
    assert all(p.claim == 3 and p.threshold == verdicts.MUCH_MORE and p.direction == "greater" for p in parts)
    assert all(p.where == "03_quantization" for p in parts)
    assert [p.statement for p in parts] == [
        "at 6 bits the tail loses much more (baseline (CE))", "at 6 bits the tail loses much more (cRT)",
        "at 4 bits the tail loses much more (baseline (CE))", "at 4 bits the tail loses much more (cRT)",
    ]  # fmt: skip
    assert parts[0].quantity == "tail drop − head drop, 6 bits"
    expected = [(3, 4, 5), (0, 1, 2), (8, 10, 12), (-3, -2, -1)]  # DELTA at IF 0.01
    for p, want in zip(parts, expected, strict=True):
        assert list(p.values.index) == list(SEEDS)
        np.testing.assert_allclose(p.values.to_numpy(), want, atol=1e-9)
    # 3a: 4 - 2.48 > 1; 3b: 1 ± 2.48 contains 1; 3c: 10 - 4.97 > 1; 3d: -2 + 2.48 <= 1
    assert [p.evidence()["verdict"] for p in parts] == [
        verdicts.SUPPORTED, verdicts.INCONCLUSIVE, verdicts.SUPPORTED, verdicts.NOT_SUPPORTED,
    ]  # fmt: skip
    mild = claims.claim3(drops[drops["imbalance_factor"] == 0.1], (8, 4))
    assert [p.part for p in mild] == ["3a", "3b"]
    np.testing.assert_allclose(mild[1].values.to_numpy(), (-5, -4.5, -4), atol=1e-9)


# ------------------------------------------------------------------ plotting smoke


def test_diverging_heatmap_smoke(qres, abl):
    """diverging_heatmap: draws the change grid and the ablation marks with symmetric colour limits."""
    grid = ch3.change_grid(ch3.per_class_change(qres["default"], 0.01), "baseline", QBITS)
    fig, axes = plt.subplots(1, 2)
    try:
        ax = plotting.diverging_heatmap(axes[0], grid, label="change (points)")
        assert ax is axes[0]
        assert ax.collections[0].get_clim() == pytest.approx((-100 / 3 * 2.5, 100 / 3 * 2.5))  # |-83.3|
        delta, mark = ch3.ablation_grid(abl, "crt", [0.1, 0.01], QBITS)
        plotting.diverging_heatmap(axes[1], delta, annot=mark, fmt="", cmap="PuOr_r", label="Δ", lim=7)
        assert axes[1].collections[0].get_clim() == (-7, 7)
        assert "+1.5*★" in {t.get_text() for t in axes[1].texts}
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ the review's rules


@pytest.mark.parametrize(
    ("low", "high", "said"),
    [(1.5, 3.0, "tail pays ≥ 1 point more"), (0.1, 0.5, "tail pays more, < 1 point"),
     (0.2, 2.0, "tail pays more"), (-1.04, -0.56, "head pays more"), (-0.3, 0.4, "no detectable difference"),
     (np.nan, np.nan, "no interval")],
)  # fmt: skip
def test_a_paired_interval_is_read_in_both_directions_with_the_threshold(low, high, said):
    """The review: an interval wholly below zero was 'no significant difference', +0.12 'tail pays more'."""
    assert ch3.reading(low, high) == said


def test_seed_deltas_are_t_intervals_over_seeds():
    head_tail = [(1.0, 2.0), (1.0, 4.0), (0.0, 3.0)]  # per seed: head drop, tail drop
    base = {"variant": "default", "imbalance_factor": 0.01, "method": "crt", "bits": "6"}
    rows = [
        base | {"seed": s, "metric": m, "drop": d}
        for s, ht in enumerate(head_tail)
        for m, d in zip(("head", "tail"), ht, strict=True)
    ]
    drops = pd.DataFrame(rows)
    r = ch3.seed_deltas(drops).iloc[0]
    deltas = np.array([1.0, 3.0, 3.0])
    half = sps.t.ppf(0.975, 2) * deltas.std(ddof=1) / np.sqrt(3)
    assert r["delta"] == pytest.approx(deltas.mean()) and r["ci_low"] == pytest.approx(deltas.mean() - half)
    assert r["reading"] == ch3.reading(deltas.mean() - half, deltas.mean() + half) and r["n"] == 3


def test_seed_delta_facts_name_every_bit_width_and_the_lowest_as_low():
    """The prose reads `seed_delta_*_low`, so a profile whose lowest bit-width is 4 still builds."""
    rows = [
        {"variant": "default", "imbalance_factor": f, "method": m, "bits": b, "seed": s, "metric": t,
         "drop": (1.0 if t == "tail" else 0.0) + s + (10.0 if f == 0.1 else 0.0)}
        for f in (0.01, 0.1) for m in BLOG_MODELS for b in ("6", "4") for s in range(3)
        for t in ("head", "tail")
    ]  # fmt: skip
    facts = ch3.seed_delta_facts(ch3.seed_deltas(pd.DataFrame(rows)), ["6", "4"])
    assert set(facts) == {f"seed_{k}_{m}_{b}" for k in ("delta", "reading") for m in BLOG_MODELS
                          for b in ("6", "4", "low")}  # fmt: skip
    # Δ = 1 in every seed at the strongest imbalance (IF 0.01): a zero-width interval at +1
    assert facts["seed_delta_crt_low"] == facts["seed_delta_crt_4"] == "+1.0 [+1.0, +1.0]"


def test_variants_equal_to_the_default_by_construction_are_not_shown():
    assert ch3.shown_variants(["default", "BN not folded", "per-tensor"]) == ["default", "per-tensor"]
    assert ch3.variant_label("+ 8-bit act., LT calib.") == "+ 8-bit activations, long-tailed calibration"


def test_clipping_facts_average_the_profiles():
    profiles = [{"L1": {"alpha": 0.5, "error_minmax": 0.1, "error_mse": 0.04}},
                {"L1": {"alpha": 0.7, "error_minmax": 0.2, "error_mse": 0.06}}]  # fmt: skip
    base = {"imbalance_factor": 0.01, "seed": 0, "method": "baseline", "bits": "3", "metric": "tail"}
    frame = pd.DataFrame(
        [base | {"variant": v, "value": x} for v, x in (("default", 30.0), ("MSE clipping", 16.0))]
    )
    f = ch3.clipping_facts(profiles, frame, 0.01, "3")
    assert f == {"mse_bits": "3", "mse_alpha": "0.60", "mse_err_minmax": "15.0", "mse_err_mse": "5.0",
                 "mse_tail_default": "30.0", "mse_tail_mse": "16.0"}  # fmt: skip
