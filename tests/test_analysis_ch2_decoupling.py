"""Chapter 2's analysis (ltmpq.analysis.ch2_decoupling): Table 1 with cRT, the methods' gaps and
how much each narrows the gap, the choices made on validation, tau curves, classifier norms and
per-class accuracy; and that chapters 0-2's analysis leaves the stored results as they were.

Everything reads the tiny synthetic stored results of :func:`fakes.hand_results` (the ``hand_*``
fixtures), with head and tail accuracies chosen so that every expected gap, mean and 95%
t-interval below can be computed by hand. Nothing is trained and no data is read.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from fakes import (
    HALF1,
    IFS,
    SEEDS,
    T3,
    TAU_GRID,
    frame_of,
    ht,
    spec_frame,
)

from ltmpq import frames, verdicts
from ltmpq.analysis import ch0_introduction as ch0
from ltmpq.analysis import ch1_evaluation as ch1
from ltmpq.analysis import ch2_decoupling as ch2
from ltmpq.config import DecoupleConfig, Stage1Config
from ltmpq.vocab import METHOD_LABELS, METHODS


@pytest.mark.parametrize(
    ("grid", "text"),
    [((0.0, 0.5, 1.0), "0, 0.5, ..., 1"), ((0.7,), "0.7"), (DecoupleConfig().tau_grid, "0, 0.1, ..., 2")],
)
def test_setup_facts(grid, text):
    """setup_facts: stage-2 epochs, the hold-out per class and the tau grid as 'min, 2nd, ..., max'."""
    facts = ch2.setup_facts(DecoupleConfig(epochs=5, tau_grid=grid), 50)
    assert facts == {"dec_epochs": 5, "dec_wd": "0.0005", "val_per_class": 50, "tau_grid": text}
    with_counts = ch2.setup_facts(DecoupleConfig(weight_decay=5e-3, tau_grid=grid), 300, [4700, 2810, 47])
    assert (with_counts["dec_wd"], with_counts["n_largest"], with_counts["n_rarest"]) == ("0.005", 4700, 47)


def test_table1_layout(hand_summary):
    """ch2.table1: columns (model, blog|ours|difference), rows IF descending then overall/head/tail."""
    t = ch2.table1(hand_summary)
    assert list(t.columns) == [(m, v) for m in ("base", "dec (cRT)") for v in ("blog", "ours", "difference")]
    assert list(t.index) == [(f, m) for f in (0.1, 0.02, 0.01) for m in ("overall", "head", "tail")]
    row = t.loc[(0.01, "tail")]
    assert row[("base", "blog")] == 46.3
    assert row[("base", "ours")] == "52.0 ± 5.0"
    assert row[("base", "difference")] == pytest.approx(52 - 46.3)
    assert row[("dec (cRT)", "blog")] == 72.0
    assert row[("dec (cRT)", "ours")] == f"66.0 ± {HALF1:.1f}"
    assert row[("dec (cRT)", "difference")] == pytest.approx(66 - 72.0)


def test_methods_table(hand_summary):
    """methods_table: (IF, method label) rows, the seven metric columns, 'mean ± CI' cells."""
    t = ch2.methods_table(hand_summary)
    assert list(t.columns) == ["overall", "head", "tail", "worst_class", "balanced", "macro_f1", "deployment"]
    assert set(t.index.get_level_values(1)) == {METHOD_LABELS[m] for m in METHODS}
    assert t.loc[(0.01, "cRT"), "tail"] == f"66.0 ± {HALF1:.1f}"
    assert t.loc[(0.01, "LWS"), "head"] == "75.0 ± 0.0"


def test_narrowing_per_if(hand_frame):
    """narrowing: gap(baseline) - gap(cRT) per seed at each IF (mildest first), by the verdict rule."""
    steps = ch2.narrowing(hand_frame)
    assert [s["imbalance_factor"] for s in steps] == [0.1, 0.02, 0.01]
    # 0.1: 10, 10, 13; 0.02: 0, -1, 1; 0.01: 25, 24, 23
    assert [s["estimate"] for s in steps] == pytest.approx([11, 0, 24])
    assert steps[0]["ci_high"] - steps[0]["estimate"] == pytest.approx(T3)  # sd sqrt 3, n 3
    assert [s["verdict"] for s in steps] == [verdicts.SUPPORTED, verdicts.INCONCLUSIVE, verdicts.SUPPORTED]


def test_narrowing_other_method(hand_frame):
    """narrowing(method='tau_norm'): a method that widens the gap at 0.1 is not supported there."""
    steps = ch2.narrowing(hand_frame, method="tau_norm")
    assert steps[0]["estimate"] == pytest.approx(11 - 30)
    assert steps[0]["verdict"] == verdicts.NOT_SUPPORTED
    assert steps[2]["estimate"] == pytest.approx(38 - 30)


def test_gap_facts_ch2_by_hand(hand_frame, hand_summary):
    """ch2.gap_facts: each method's gap at the strongest IF, the best by |gap|, cRT's trade and verdicts."""
    assert ch2.gap_facts(hand_frame, hand_summary) == {
        "if_lo": "0.01",
        "gap_lo_baseline": "38.0",
        "gap_lo_ci_baseline": "5.0",
        "gap_lo_crt": "14.0",
        "gap_lo_ci_crt": "2.5",
        "gap_lo_tau_norm": "30.0",
        "gap_lo_ci_tau_norm": "0.0",
        "gap_lo_lws": "-9.0",
        "gap_lo_ci_lws": "2.5",
        "gap_lo_ncm": "6.0",
        "gap_lo_ci_ncm": "2.5",
        "best_method": "NCM",  # |6| < |-9|: over-correcting LWS does not win
        "gap_lo_best": "6.0 ± 2.5",
        "tail_gain_crt": "14.0",  # 66 - 52
        "head_loss_crt": "10.0",  # 90 - 80
        "overall_gain_crt": "4.4",  # 71.6 - 67.2
        "blog_gap_dec": "9.4",  # 81.4 - 72.0
        "blog_gap_claim_consistent": "below the 10 points of",
        "crt_narrow_n": "2 of 3",
        "crt_gap_lower": "11.5",  # 14 - 2.484
        "crt_gap_closed": "does not close",
    }


def test_gap_facts_ch2_best_method_can_be_an_over_correction():
    """ch2.gap_facts picks LWS when its negative gap is the closest to zero."""
    f = frame_of({(0.01, "lws"): ht(-1, -2, -3, head=75)})
    facts = ch2.gap_facts(f, frames.summarize(f))
    assert facts["best_method"] == "LWS"
    assert facts["gap_lo_best"] == "-2.0 ± 2.5"


def test_gap_facts_ch2_gap_not_distinguishable_from_zero():
    """ch2.gap_facts: cRT's gap 'is not distinguishable from zero' when its interval reaches 0."""
    f = frame_of({(0.01, "crt"): ht(-2, 0, 2, head=80)})
    facts = ch2.gap_facts(f, frames.summarize(f))
    assert facts["crt_gap_lower"] == f"{-2 * HALF1:.1f}" == "-5.0"
    assert facts["crt_gap_closed"] == "is not distinguishable from zero"
    assert facts["gap_lo_crt"] == "0.0"


def test_gap_facts_ch2_one_seed_says_it_cannot_judge():
    """ch2.gap_facts with one seed: 'n/a' intervals, and no verdict on whether the gap closes."""
    f = frame_of(seeds=(0,))
    facts = ch2.gap_facts(f, frames.summarize(f))
    assert facts["gap_lo_ci_crt"] == "n/a"
    assert facts["gap_lo_best"] == "5.0 ± n/a"  # NCM, seed 0
    assert facts["crt_gap_lower"] == "n/a"
    assert facts["crt_gap_closed"] == "cannot be judged from one seed"
    assert facts["crt_narrow_n"] == "0 of 3"


def test_gap_facts_ch2_reversed_gap_is_not_called_indistinguishable_from_zero():
    """ch2.gap_facts: a cRT gap of -11 ± 2.5 (interval wholly below 0) is distinguishable from zero."""
    f = frame_of({(0.01, "crt"): ht(-10, -11, -12, head=70)})
    facts = ch2.gap_facts(f, frames.summarize(f))
    assert facts["gap_lo_crt"] == "-11.0" and facts["gap_lo_ci_crt"] == "2.5"
    assert facts["crt_gap_closed"] == "reverses (the tail ends above the head)"


def test_choices_frame_and_table(hand_stored):
    """choices_frame/choices_table: per (IF, seed) the tau and epoch each method chose on validation."""
    choices = ch2.choices_frame(hand_stored[1])
    assert len(choices) == 9 * 4
    assert set(choices["method"]) == {"cRT", "tau-norm", "LWS", "NCM"}
    assert "val_balanced" not in choices
    assert choices.loc[choices["method"] == "cRT", "val balanced acc (%)"].tolist() == pytest.approx([60] * 9)
    t = ch2.choices_table(choices)
    assert set(t.columns) == {("tau", "tau-norm"), ("epoch", "cRT"), ("epoch", "LWS")}
    assert list(t.index) == [(f, s) for f in sorted(IFS) for s in SEEDS]
    assert t.loc[(0.01, 2), ("tau", "tau-norm")] == 1.0
    assert t.loc[(0.1, 1), ("epoch", "cRT")] == 11
    assert t.loc[(0.02, 0), ("epoch", "LWS")] == 20


def test_choices_table_without_any_tau():
    """choices_table keeps only the choice columns that exist (no tau-norm: epochs only)."""
    choices = pd.DataFrame(
        [{"imbalance_factor": 0.01, "seed": 0, "method": "cRT", "epoch": 3, "val balanced acc (%)": 50.0}]
    )
    t = ch2.choices_table(choices)
    assert list(t.columns) == [("epoch", "cRT")]


def test_tau_curves(hand_stored):
    """tau_curves: one row per run and tau, tau-norm's validation balanced accuracy in percent."""
    c = ch2.tau_curves(hand_stored[1], TAU_GRID)
    assert len(c) == 9 * 3
    one = c[(c["imbalance_factor"] == 0.01) & (c["seed"] == 2)]
    assert one["tau"].tolist() == list(TAU_GRID)
    assert one["val balanced accuracy (%)"].tolist() == pytest.approx([50, 62, 55])


def test_tau_curves_grid_of_another_length_raises(hand_stored):
    """tau_curves refuses a grid that does not match the stored curve's length."""
    with pytest.raises(ValueError):
        ch2.tau_curves(hand_stored[1], (0.0, 1.0))


def test_classifier_norms(hand_stored):
    """classifier_norms: one row per run and class with the stage-1 weight norm and bias."""
    n = ch2.classifier_norms(hand_stored[1])
    assert len(n) == 9 * 10
    row = n[(n["imbalance_factor"] == 0.01) & (n["seed"] == 2) & (n["class"] == 9)].iloc[0]
    assert row["weight norm"] == pytest.approx(1.2)
    assert row["bias"] == pytest.approx(-0.3)


def test_norm_facts_by_hand(hand_stored):
    """norm_facts: at the strongest IF the seed-mean norm ratio of class 0 to 9, bias difference, taus."""
    facts = ch2.norm_facts(ch2.classifier_norms(hand_stored[1]), ch2.choices_frame(hand_stored[1]))
    assert facts == {"norm_ratio_lo": "2.00", "bias_diff_lo": "0.80", "tau_lo": "0.6, 0.8, 1"}


def test_per_class_means_order_and_values(hand_stored):
    """per_class_means: seed-mean per-class test accuracy, rows labelled in METHODS order."""
    t = ch2.per_class_means(*hand_stored, 0.01)
    assert list(t.index) == ["baseline (CE)", "cRT", "tau-norm", "LWS", "NCM"]
    assert list(t.columns) == list(range(10))
    assert t.loc["cRT", 3] == pytest.approx(56.0)
    assert t.loc["NCM", 0] == pytest.approx(30.0)
    assert t.loc["baseline (CE)", 9] == pytest.approx(10 + 20 * math.log10(30))
    mild = ch2.per_class_means(*hand_stored, 0.1)
    assert mild.loc["baseline (CE)", 9] == pytest.approx(10 + 20 * math.log10(120))


def test_stored_results_are_not_modified(hand_stored):
    """The analysis functions read the stored results without changing them."""
    s1, dec = hand_stored
    before = copy.deepcopy((s1, dec))
    f = frames.metrics_frame(s1, dec)
    s = frames.summarize(f)
    ch0.data_facts(s1)
    ch1.noise_facts(s1, s)
    ch2.gap_facts(f, s)
    ch2.norm_facts(ch2.classifier_norms(dec), ch2.choices_frame(dec))
    ch2.per_class_means(s1, dec, 0.01)
    assert (s1, dec) == before


@pytest.fixture
def frame():
    return spec_frame()


def classifier(norms, biases=None):
    return {"weight_norm": list(norms), "bias": list(biases if biases is not None else [0.0] * len(norms))}


def tau_run(curve, tau, balanced_s1, head_bias=0.4, tail_bias=-0.2):
    dec = {
        "methods": {"tau_norm": {"val_curve": curve, "choice": {"tau": tau, "val_balanced": max(curve)}}},
        "stage1_classifier": classifier([1.0] * 10, [head_bias] * 4 + [tail_bias] * 6),
    }
    s1 = {
        "val": {"metrics": {"balanced": balanced_s1}},
        "groups": {"head": [0, 1, 2, 3], "tail": [4, 5, 6, 7, 8, 9]},
    }
    return dec, s1


def crt_run(curve, epoch):
    return {
        "methods": {"crt": {"val_curve": curve, "choice": {"epoch": epoch, "val_balanced": curve[epoch - 1]}}}
    }


@pytest.fixture
def epoch_runs():
    dec = {
        Stage1Config(imbalance_factor=0.01, seed=1): crt_run([0.65, 0.64, 0.64, 0.645], 1),
        Stage1Config(imbalance_factor=0.1, seed=0): crt_run([0.70, 0.72, 0.71, 0.71], 2),
        Stage1Config(imbalance_factor=0.01, seed=0): crt_run([0.60, 0.60, 0.59, 0.58], 1),  # a tie
    }
    s1 = {
        c: {"train_counts": [1000, 500, 24] if c.imbalance_factor == 0.01 else [1000, 800, 600]} for c in dec
    }
    return dec, s1


def test_blog_gaps_markers():
    """blog_gaps: the blog's Table 1 gaps by (method label, IF), only where it has them."""
    got = ch2.blog_gaps([0.1, 0.05])
    assert got.keys() == {("baseline (CE)", 0.1), ("cRT", 0.1)}
    assert got[("baseline (CE)", 0.1)] == pytest.approx(3.2)
    assert got[("cRT", 0.1)] == pytest.approx(-0.4)  # 85.8 - 86.2
    assert ch2.blog_gaps([0.01])[("cRT", 0.01)] == pytest.approx(9.4)


def test_change_facts_crt_by_hand(frame):
    """change_facts: cRT minus baseline per seed, each with its interval and its side in words."""
    facts = ch2.change_facts(frame, "crt")
    assert facts["crt_head_change"] == "-4.0 [-6.5, -1.5]"  # -5, -4, -3
    assert facts["crt_head_side"] == "lower"
    assert facts["crt_tail_change"] == "+18.0 [+13.0, +23.0]"  # 20, 18, 16
    assert facts["crt_tail_side"] == "higher"
    assert facts["crt_overall_change"] == "+9.2 [+7.2, +11.2]"  # 10, 9.2, 8.4
    assert facts["crt_worst_class_change"] == "+18.0 [+13.0, +23.0]"  # worst = tail - 10
    assert facts["crt_trade"] == "moves accuracy from the head to the tail"


def test_change_facts_no_detectable_head_change(frame):
    """tau-norm here: the head the same in every seed (interval [0, 0]) is no detectable difference."""
    facts = ch2.change_facts(frame, "tau_norm")
    assert facts["tau_norm_head_change"] == "+0.0 [+0.0, +0.0]"
    assert facts["tau_norm_head_side"] == "no detectable difference"
    assert facts["tau_norm_tail_side"] == "higher"
    assert facts["tau_norm_trade"] == "raises tail accuracy with no detectable change on the head"


def test_trades_cover_every_pair_of_sides():
    """TRADES has a phrase for each (head side, tail side) that change_facts can produce."""
    sides = ("higher", "lower", "no detectable difference")
    assert set(ch2.TRADES) == {(h, t) for h in sides for t in sides}


def test_best_gap_facts_by_hand(frame):
    """best_gap_facts: the smallest mean |gap| (cRT: 16) and every other gap minus it per seed."""
    assert ch2.best_gap_facts(frame) == {
        "best_method": "cRT",
        "others_vs_best": "tau-norm's +21.0 [+13.5, +28.5] (larger); "  # 24, 21, 18
        "LWS's +1.0 [-1.5, +3.5] (no detectable difference); "  # 1, 0, 2
        "NCM's +24.0 [+21.5, +26.5] (larger)",  # 25, 24, 23
    }


def test_answer_facts_by_hand(frame):
    """answer_facts: seeds, the baseline's and cRT's gaps with intervals, cRT's against the blog's 9.4."""
    assert ch2.answer_facts(frame) == {
        "n_seeds": 3,
        "gap_lo_baseline_ci": "38.0 [33.0, 43.0]",
        "gap_lo_crt_ci": "16.0 [13.5, 18.5]",
        "crt_gap_vs_blog": "ours above the blog's",
        "la_sentence": "",  # no logit adjustment in these runs
    }


def test_logit_adjustment_sentence_by_hand():
    """With post-hoc logit adjustment: its gap (8 in every seed) and its overall and tail accuracy
    minus cRT's per seed (overall = 0.4 head + 0.6 tail: -0.8, -0.2, +0.4; tail +2, +3, +4)."""
    from fakes import METRICS_SPEC

    spec = METRICS_SPEC | {(0.01, "logit_adj"): [(80, 72), (81, 73), (82, 74)]}
    text = ch2.logit_adjustment_sentence(spec_frame(spec))
    assert "leaves a gap of 8.0 [8.0, 8.0] points" in text
    assert "overall accuracy by -0.2 [-1.7, +1.3] points (no detectable difference)" in text
    assert "tail accuracy by +3.0 [+0.5, +5.5] (higher)" in text


def test_norm_table_ratio_and_rank_correlation():
    """norm_table: max/min norm per run and the norms' rank correlation with the training counts
    (class 0 has the most images: norms falling with the class number correlate +1)."""
    falling = [2.0 - 0.1 * c for c in range(10)]  # 2.0 .. 1.1
    rising = [1.0 + 0.1 * c for c in range(10)]  # 1.0 .. 1.9
    dec = {
        Stage1Config(imbalance_factor=0.01, seed=0): {"stage1_classifier": classifier(falling)},
        Stage1Config(imbalance_factor=0.1, seed=0): {"stage1_classifier": classifier(rising)},
    }
    t = ch2.norm_table(ch2.classifier_norms(dec))
    assert t["imbalance_factor"].tolist() == [0.1, 0.01]  # mildest first
    assert t["norm max/min"].tolist() == pytest.approx([1.9, 2.0 / 1.1])
    assert t["rho(norm, count)"].tolist() == pytest.approx([-1.0, 1.0])


def test_tau_table_by_hand():
    """tau_table: spread of the curve, the chosen tau's gain over tau = 0, dropping the bias, and the
    head-minus-tail bias (points for accuracies)."""
    cfg = Stage1Config(imbalance_factor=0.01, seed=0)
    dec, s1 = tau_run([0.60, 0.62, 0.61], 0.5, 0.59)
    t = ch2.tau_table({cfg: dec}, {cfg: s1}, (0.0, 0.5, 1.0))
    row = t.iloc[0]
    assert row["tau"] == 0.5
    assert row["spread"] == pytest.approx(2.0)
    assert row["gain over tau 0"] == pytest.approx(2.0)
    assert row["bias dropped"] == pytest.approx(1.0)  # 60 - 59
    assert row["head - tail bias"] == pytest.approx(0.6)


def test_tau_table_grid_without_zero_and_wrong_length():
    """Without tau = 0 in the grid the two tau-0 columns are NaN; a grid of another length raises."""
    cfg = Stage1Config(imbalance_factor=0.01, seed=0)
    dec, s1 = tau_run([0.60, 0.62, 0.61], 1.0, 0.59)
    row = ch2.tau_table({cfg: dec}, {cfg: s1}, (0.5, 1.0, 1.5)).iloc[0]
    assert np.isnan(row["gain over tau 0"]) and np.isnan(row["bias dropped"])
    assert row["spread"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        ch2.tau_table({cfg: dec}, {cfg: s1}, (0.0, 1.0))


def test_tau_facts_by_hand(frame):
    """tau_facts: per-seed ratios, correlations and spreads at the strongest IF, ranges over runs,
    the gain over tau = 0, the bias facts and tau-norm's narrowing of the test gap."""
    norm_t = pd.DataFrame(
        {
            "imbalance_factor": [0.1, 0.01, 0.01, 0.01],
            "seed": [0, 0, 1, 2],
            "norm max/min": [1.5, 1.2, 1.25, 1.3],
            "rho(norm, count)": [0.9, 0.1, -0.2, 0.3],
        }
    )
    tau_t = pd.DataFrame(
        {
            "imbalance_factor": [0.1, 0.01, 0.01, 0.01],
            "seed": [0, 0, 1, 2],
            "tau": [1.0, 0.0, 0.5, 1.0],
            "spread": [3.0, 0.5, 1.0, 1.5],
            "gain over tau 0": [1.0, 0.0, 0.5, 1.0],
            "bias dropped": [5.0, 1.0, 1.0, 1.0],
            "head - tail bias": [0.0, 0.40, 0.42, 0.44],
        }
    )
    facts = ch2.tau_facts(norm_t, tau_t, frame)
    assert facts == {
        "norm_ratio_seeds": "1.20, 1.25, 1.30",
        "norm_ratio_range": "1.20-1.50",
        "norm_rho_seeds": "0.10, -0.20, 0.30",
        "norm_rho_range": "-0.20 to +0.90",
        "tau_spread_seeds": "0.5, 1.0, 1.5",
        "tau_spread_max": "3.0",
        "tau_gain_lo": "+0.5 [-0.7, +1.7]",  # 0, 0.5, 1: sd 0.5, half 1.24
        "tau_gain_side": "no detectable difference",
        "bias_gap_lo": "+0.42 [+0.37, +0.47]",
        "bias_gap_side": "larger for the head",
        "bias_drop_lo": "+1.0 [+1.0, +1.0]",
        "bias_drop_side": "higher",
        "tau_narrowing_lo": "+1.0 [+1.0, +1.0]",  # baseline 40, 38, 36 - tau-norm 39, 37, 35
        "tau_narrowing_side": "narrower",
    }


def test_tau_curves_change_from_tau_zero():
    """tau_curves: the change from tau = 0 in points; NaN for a grid without tau = 0."""
    cfg = Stage1Config(imbalance_factor=0.01, seed=0)
    dec = {cfg: {"methods": {"tau_norm": {"val_curve": [0.5, 0.6, 0.55]}}}}
    c = ch2.tau_curves(dec, (0.0, 0.5, 1.0))
    assert c["change from tau = 0 (points)"].tolist() == pytest.approx([0, 10, 5])
    assert c["val balanced accuracy (%)"].tolist() == pytest.approx([50, 60, 55])
    assert ch2.tau_curves(dec, (0.5, 1.0, 1.5))["change from tau = 0 (points)"].isna().all()


def test_epoch_table_by_hand(epoch_runs):
    """epoch_table: per run (mildest IF first, then seed) the kept epoch, its margins and ties."""
    t = ch2.epoch_table(epoch_runs[0])
    assert list(zip(t["imbalance_factor"], t["seed"], strict=True)) == [(0.1, 0), (0.01, 0), (0.01, 1)]
    assert t["kept epoch"].tolist() == [2, 1, 1]
    assert t["kept"].tolist() == pytest.approx([72, 60, 65])
    assert t["last"].tolist() == pytest.approx([71, 58, 64.5])
    assert t["kept - last"].tolist() == pytest.approx([1.0, 2.0, 0.5])
    assert t["spread"].tolist() == pytest.approx([2.0, 2.0, 1.0])
    assert t["epochs at the maximum"].tolist() == [1, 2, 1]
    assert t["first maximum"].tolist() == [True, True, True]


def test_epoch_table_flags_a_kept_epoch_that_is_not_the_first_maximum():
    """A kept epoch other than the curve's first maximum (what a wrong choice rule would store)."""
    cfg = Stage1Config(imbalance_factor=0.01, seed=0)
    t = ch2.epoch_table({cfg: crt_run([0.60, 0.62, 0.62, 0.61], 3)})
    assert t["first maximum"].tolist() == [False]
    assert t["epochs at the maximum"].tolist() == [2]


def test_epoch_facts_by_hand(epoch_runs):
    """epoch_facts: epoch-1 picks and where, ties, kept epochs at the strongest IF, the ranges, the
    steps of one epoch and the Wilson noise of one validation accuracy."""
    from ltmpq.uncertainty import binomial_half_width

    dec, s1 = epoch_runs
    facts = ch2.epoch_facts(ch2.epoch_table(dec), s1, DecoupleConfig(), 300)
    noise = 100 * binomial_half_width((72 + 60 + 65) / 300, 300)
    assert noise == pytest.approx(5.4, abs=0.1)
    assert facts == {
        "crt_epoch1": "2 of 3 runs (IF 0.01 seeds 0, 1)",
        "crt_epoch1_ties": "1 of the 2 epoch-1 choices was such a tie",
        "crt_kept_lo": "1, 1",
        "crt_kept_minus_last": "0.5-2.0",
        "crt_curve_spread": "1.0-2.0",
        "crt_epoch1_minus_last": "-1.0 to +2.0",
        "crt_rule_ok": "3 of 3",
        "crt_kept_vs_noise": "smaller than",
        "dec_lr": "0.2",
        "dec_batch": 512,
        "steps_lo": 3,  # ceil(1524 / 512)
        "n_val": 300,
        "val_noise": f"{noise:.1f}",
    }


def test_epoch_facts_without_epoch_1_and_with_a_prefix():
    """No run kept epoch 1: plain words, not an empty list; the prefix names the keys."""
    cfg = Stage1Config(imbalance_factor=0.01, seed=0)
    dec = {cfg: {"methods": {"lws": crt_run([0.5, 0.6, 0.55], 2)["methods"]["crt"]}}}
    facts = ch2.epoch_facts(
        ch2.epoch_table(dec, "lws"), {cfg: {"train_counts": [600]}}, DecoupleConfig(), 3000, "lws"
    )
    assert facts["lws_epoch1"] == "0 of 1 run"
    assert facts["lws_epoch1_ties"] == "no run kept epoch 1"
    assert facts["lws_kept_lo"] == "2"
    assert facts["steps_lo"] == 2
    # a margin of 5 points is not smaller than the ~1.8-point noise of one accuracy on 3000 images
    assert facts["lws_kept_vs_noise"] == "not smaller than"


@pytest.mark.parametrize(
    ("tie", "text"),
    [(True, "the one epoch-1 choice was such a tie"), (False, "the one epoch-1 choice was not such a tie")],
)
def test_epoch_facts_one_epoch_1_choice(tie, text):
    """One run kept epoch 1: the sentence speaks of one choice, tied with a later epoch or not."""
    cfg = Stage1Config(imbalance_factor=0.01, seed=0)
    curve = [0.6, 0.6, 0.5] if tie else [0.6, 0.55, 0.5]
    facts = ch2.epoch_facts(
        ch2.epoch_table({cfg: crt_run(curve, 1)}), {cfg: {"train_counts": [600]}}, DecoupleConfig(), 3000
    )
    assert facts["crt_epoch1"] == "1 of 1 run (IF 0.01 seed 0)"
    assert facts["crt_epoch1_ties"] == text
