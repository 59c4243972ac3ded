"""Chapter 1's analysis (ltmpq.analysis.ch1_evaluation): the recipe in words, head-tail gaps and their
growth, Table 1 / Fig. 5 beside the blog, per-class fits, the reported metrics and seed noise.

Everything reads the tiny synthetic stored results of :func:`fakes.hand_results` (the ``hand_*``
fixtures), with head and tail accuracies chosen so that every expected gap, mean and 95%
t-interval below can be computed by hand. Nothing is trained and no data is read.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fakes import (
    HALF1,
    IFS,
    METRICS_SPEC,
    T3,
    Z,
    frame_of,
    ht,
    spec_frame,
)
from scipy import stats as sps

from ltmpq import blog, frames, verdicts
from ltmpq.analysis import ch1_evaluation as ch1
from ltmpq.config import Stage1Config


def test_t_quantile_hand_value():
    """The t quantile the expectations below use is the textbook 4.303 (2 degrees of freedom)."""
    assert T3 == pytest.approx(4.3027, abs=1e-4)
    assert HALF1 == pytest.approx(2.4841, abs=1e-4)


# ------------------------------------------------------------------ recipe


@pytest.mark.parametrize(("warmup", "text"), [(1, "1 epoch"), (5, "5 epochs"), (0, "0 epochs")])
def test_recipe_facts(warmup, text):
    """recipe_facts: the recipe's numbers as the setup paragraph prints them, 'epoch(s)' agreeing."""
    cfg = Stage1Config(imbalance_factor=0.1, warmup_epochs=warmup, lr=0.05, batch_size=128, width=0.5)
    facts = ch1.recipe_facts(cfg, 3)
    schedule = f"peak learning rate 0.05 after {text} of linear warm-up, then cosine decay"
    assert facts == {"n_seeds": 3, "profile_width": "0.5", "epochs": 30, "momentum": "0.9", "batch": 128,
                     "schedule": schedule, "precision": "float32", "wd": "0.0005"}  # fmt: skip


def test_recipe_facts_of_the_one_cycle_schedule_in_bf16():
    """OneCycleLR's defaults in words: from lr / 25 up to lr, down to lr / 25 / 1e4; bf16 named."""
    cfg = Stage1Config(imbalance_factor=0.1, schedule="onecycle", precision="bf16", lr=0.05)
    facts = ch1.recipe_facts(cfg, 5)
    assert facts["schedule"] == (
        "torch's one-cycle schedule: the learning rate rises from 0.002 to 0.05 over the first 30% "
        "of the steps and anneals to 2e-07 while the momentum cycles between 0.85 and 0.9"
    )
    assert facts["precision"] == "bfloat16 autocast"


# ------------------------------------------------------------------ gaps


def test_gap_summary_mean_and_t_half_width(hand_frame):
    """gap_summary: per (IF, method) the mean gap, its 95% t half-width over seeds and n."""
    s = ch1.gap_summary(hand_frame).set_index(["imbalance_factor", "method"])
    assert s.loc[(0.1, "baseline"), "gap"] == pytest.approx(11)
    assert s.loc[(0.1, "baseline"), "ci"] == pytest.approx(HALF1)
    assert s.loc[(0.01, "baseline"), "gap"] == pytest.approx(38)
    assert s.loc[(0.01, "baseline"), "ci"] == pytest.approx(2 * HALF1)  # gaps 40, 38, 36: sd 2
    assert s.loc[(0.01, "baseline"), "ci"] == pytest.approx(4.968, abs=1e-3)
    assert s.loc[(0.01, "crt"), "gap"] == pytest.approx(14)
    assert s.loc[(0.01, "tau_norm"), "ci"] == pytest.approx(0, abs=1e-9)
    assert (s["n"] == 3).all()
    assert len(s) == 15


def test_gap_summary_one_seed_has_no_interval():
    """gap_summary with one seed: the mean is that seed's gap and the half-width is NaN."""
    s = ch1.gap_summary(frame_of(seeds=(0,))).set_index(["imbalance_factor", "method"])
    assert s.loc[(0.01, "baseline"), "gap"] == pytest.approx(40)
    assert math.isnan(s.loc[(0.01, "baseline"), "ci"])
    assert (s["n"] == 1).all()


def test_gap_growth_supported_steps(hand_frame):
    """gap_growth: per consecutive IF pair (less -> more imbalanced) the per-seed growth, supported here."""
    steps = ch1.gap_growth(hand_frame)
    assert [(s["from"], s["to"]) for s in steps] == [(0.1, 0.02), (0.02, 0.01)]
    # 0.1 -> 0.02: 20-10, 22-11, 21-12 = 10, 11, 9; 0.02 -> 0.01: 40-20, 38-22, 36-21 = 20, 16, 15
    assert steps[0]["estimate"] == pytest.approx(10)
    assert steps[0]["ci_low"] == pytest.approx(10 - HALF1)
    assert steps[1]["estimate"] == pytest.approx(17)
    assert [s["verdict"] for s in steps] == [verdicts.SUPPORTED, verdicts.SUPPORTED]
    assert all(s["n"] == 3 for s in steps)


def test_gap_growth_not_supported_and_inconclusive():
    """gap_growth: a shrinking gap is 'not supported', a growth whose interval holds 0 'inconclusive'."""
    f = frame_of({(0.02, "baseline"): ht(5, 6, 7), (0.01, "baseline"): ht(4, 6, 11)})
    steps = ch1.gap_growth(f)
    # 0.1 -> 0.02: -5 each seed; 0.02 -> 0.01: -1, 0, 4 (mean 1, sd sqrt 7)
    assert steps[0]["estimate"] == pytest.approx(-5)
    assert steps[0]["verdict"] == verdicts.NOT_SUPPORTED
    assert steps[1]["estimate"] == pytest.approx(1)
    assert steps[1]["ci_high"] - steps[1]["estimate"] == pytest.approx(T3 * math.sqrt(7) / math.sqrt(3))
    assert steps[1]["verdict"] == verdicts.INCONCLUSIVE


def test_gap_growth_of_another_method(hand_frame):
    """gap_growth(method=...) follows that method's gaps (cRT: 0.1 -> 0.02 grows by 20, 22, 21)."""
    steps = ch1.gap_growth(hand_frame, method="crt")
    assert steps[0]["estimate"] == pytest.approx(21)
    assert steps[1]["estimate"] == pytest.approx(-7)  # 15-20, 14-23, 13-20
    assert steps[1]["verdict"] == verdicts.NOT_SUPPORTED


def test_gap_growth_single_if_has_no_steps():
    """gap_growth with one imbalance factor: no consecutive pair, no step."""
    assert ch1.gap_growth(frame_of(ifs=(0.01,))) == []


def test_gap_facts_by_hand(hand_frame, hand_summary):
    """ch1.gap_facts: gaps at the extreme IFs to one decimal, their CIs, blog's gap, growth wording."""
    assert ch1.gap_facts(hand_frame, hand_summary) == {
        "if_lo": "0.01",
        "if_hi": "0.1",
        "gap_lo": "38.0",
        "gap_hi": "11.0",
        "gap_ci_lo": "5.0",  # 2 * 2.484
        "gap_ci_hi": "2.5",
        "overall_lo": "67.2",  # 0.4 * 90 + 0.6 * 52
        "blog_gap_lo": "42.2",  # 88.5 - 46.3
        "gap_grows": "grows",
        "gap_grow_steps": "2 of 2",
        "head_range": "90.0-91.0",
        "tail_range": "52.0-80.0",
    }


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        ({(0.02, "baseline"): ht(5, 6, 7), (0.01, "baseline"): ht(4, 6, 11)}, "0 of 2"),
        ({(0.01, "baseline"): ht(20, 22, 21)}, "1 of 2"),  # the second step is exactly 0: not supported
    ],
)
def test_gap_facts_does_not_grow_consistently(overrides, steps):
    """ch1.gap_facts says 'grows' only when every step is supported."""
    f = frame_of(overrides)
    facts = ch1.gap_facts(f, frames.summarize(f))
    assert facts["gap_grows"] == "does not grow consistently"
    assert facts["gap_grow_steps"] == steps


def test_gap_facts_one_seed_has_na_intervals():
    """ch1.gap_facts with one seed: the CIs read 'n/a' and no step can be supported."""
    f = frame_of(seeds=(0,))
    facts = ch1.gap_facts(f, frames.summarize(f))
    assert facts["gap_lo"] == "40.0" and facts["gap_hi"] == "10.0"
    assert facts["gap_ci_lo"] == "n/a" and facts["gap_ci_hi"] == "n/a"
    assert facts["gap_grows"] == "does not grow consistently"
    assert facts["gap_grow_steps"] == "0 of 2"


def test_gap_facts_without_a_blog_value_at_the_strongest_if():
    """ch1.gap_facts: 'no value' for the blog's gap when its Table 1 lacks the strongest IF."""
    over = {(0.05, "baseline"): ht(30, 32, 31), (0.05, "crt"): ht(10, 10, 10)}
    f = frame_of(over, ifs=(0.1, 0.05))
    facts = ch1.gap_facts(f, frames.summarize(f))
    assert facts["if_lo"] == "0.05"
    assert facts["blog_gap_lo"] == "no value"
    assert facts["gap_lo"] == "31.0"


# ------------------------------------------------------------------ Table 1 / Fig. 5


def test_table1_vs_blog_differences(hand_summary):
    """table1_vs_blog: per (IF, method, metric) the blog's value, ours 'mean ± CI' and ours - blog."""
    cmp = ch1.table1_vs_blog(hand_summary, methods=("baseline",))
    assert list(cmp.columns) == ["imbalance_factor", "method", "metric", "blog", "ours", "difference", "n"]
    assert len(cmp) == 9 and set(cmp["method"]) == {"baseline"}
    row = cmp.set_index(["imbalance_factor", "metric"]).loc[(0.01, "overall")]
    assert row["blog"] == 63.2
    # overall per seed 66.0, 67.2, 68.4: sd 1.2
    assert row["ours"] == f"67.2 ± {1.2 * HALF1:.1f}" == "67.2 ± 3.0"
    assert row["difference"] == pytest.approx(67.2 - 63.2)
    assert row["n"] == 3
    both = ch1.table1_vs_blog(hand_summary)
    assert len(both) == 18
    crt = both.set_index(["imbalance_factor", "method", "metric"]).loc[(0.01, "crt", "tail")]
    assert crt["difference"] == pytest.approx(66 - 72.0)


@pytest.mark.parametrize(
    ("diffs", "word", "points"),
    [
        ([-3.0, -1.0], "lower than", "2.0"),
        ([-1.5, -0.7], "lower than", "1.1"),
        ([-1.0], "close to", "1.0"),  # exactly one point lower is still 'close to'
        ([0.5, -0.5], "close to", "0.0"),
        ([1.0], "close to", "1.0"),
        ([0.7, 1.5], "higher than", "1.1"),
        ([2.0, 4.0], "higher than", "3.0"),
    ],
)
def test_vs_blog_facts_thresholds(diffs, word, points):
    """vs_blog_facts: the mean difference below -1 is 'lower', above +1 'higher', else 'close to'."""
    facts = ch1.vs_blog_facts(pd.DataFrame({"difference": diffs}))
    assert facts == {"vs_blog": word, "vs_blog_points": points}


def test_vs_blog_facts_on_the_comparison(hand_summary):
    """vs_blog_facts over the baseline's nine Table-1 cells of the synthetic results."""
    cmp = ch1.table1_vs_blog(hand_summary, methods=("baseline",))
    ours = {0.1: (91, 80), 0.02: (90, 69), 0.01: (90, 52)}
    diffs = []
    for f, (h, t) in ours.items():
        b = blog.TABLE1[(f, "baseline")]
        diffs += [0.4 * h + 0.6 * t - b["overall"], h - b["head"], t - b["tail"]]
    # 0.1: -1.2, +3.5, -4.3; 0.02: -1.4, +2.7, -4.1; 0.01: +4.0, +1.5, +5.7 -> mean 6.4 / 9 = 0.71
    assert np.mean(diffs) == pytest.approx(6.4 / 9)
    assert cmp["difference"].mean() == pytest.approx(6.4 / 9)
    assert ch1.vs_blog_facts(cmp) == {"vs_blog": "close to", "vs_blog_points": "0.7"}


def test_fig5_table_layout(hand_summary):
    """fig5_table: rows (IF, metric) in Table 1's order, columns blog | ours | difference."""
    t = ch1.fig5_table(ch1.table1_vs_blog(hand_summary, methods=("baseline",)))
    assert list(t.columns) == ["blog", "ours", "difference"]
    assert list(t.index) == [(f, m) for f in IFS for m in ("overall", "head", "tail")]
    assert t.loc[(0.1, "head"), "blog"] == 87.5
    assert t.loc[(0.1, "head"), "ours"] == f"91.0 ± {HALF1:.1f}"
    assert t.loc[(0.1, "head"), "difference"] == pytest.approx(91 - 87.5)


# ------------------------------------------------------------------ per class, metrics, noise


def test_count_accuracy_fit_hand_case():
    """count_accuracy_fit on a hand case: rho 0.5, slope 10 points per decade, r^2 0.25."""
    # seed means at IF 0.01: counts 1000, 100, 10 -> accuracy 90, 50, 70 (ranks 3,2,1 vs 3,1,2)
    rows = []
    for seed, accs in ((0, (85, 55, 60)), (1, (95, 45, 80))):
        for c, (n, a) in enumerate(zip((1000, 100, 10), accs, strict=True)):
            rows.append({"imbalance_factor": 0.01, "seed": seed, "method": "baseline", "class": c,
                         "train_count": n, "accuracy": a})  # fmt: skip
    for c, n in enumerate((1000, 500, 250)):  # another IF, perfectly monotone: must not be read
        rows.append({"imbalance_factor": 0.1, "seed": 0, "method": "baseline", "class": c,
                     "train_count": n, "accuracy": 10.0 * c})  # fmt: skip
    pc = pd.DataFrame(rows)
    assert ch1.count_accuracy_fit(pc, 0.01) == {"rho_lo": "0.50", "slope_lo": "10", "r2_lo": "0.25"}
    fit = sps.linregress([3, 2, 1], [90, 50, 70])  # the same by scipy
    assert (fit.slope, fit.rvalue**2) == pytest.approx((10, 0.25))
    assert ch1.count_accuracy_fit(pc, 0.1)["rho_lo"] == "-1.00"


def test_count_accuracy_fit_perfect_log_linear(hand_stored):
    """count_accuracy_fit on stored accuracies of 10 + 20 log10(count) on average: slope 20, r^2 1."""
    pc = frames.per_class_frame(hand_stored[0])
    assert ch1.count_accuracy_fit(pc, 0.01) == {"rho_lo": "1.00", "slope_lo": "20", "r2_lo": "1.00"}
    lo = pc[pc["imbalance_factor"] == 0.01].groupby("class")[["train_count", "accuracy"]].mean()
    fit = sps.linregress(np.log10(lo["train_count"]), lo["accuracy"])
    assert fit.slope == pytest.approx(20) and fit.intercept == pytest.approx(10)


def test_metrics_table_layout(hand_summary):
    """metrics_table: the baseline's REPORTED metrics as rows, IFs as columns, 'mean ± CI' cells."""
    t = ch1.metrics_table(hand_summary)
    assert list(t.index) == list(ch1.REPORTED)
    assert list(t.columns) == list(IFS)
    assert t.loc["overall", 0.01] == "67.2 ± 3.0"
    assert t.loc["head", 0.1] == f"91.0 ± {HALF1:.1f}"
    assert "few" not in t.index  # Kang et al.'s groups mean nothing with 10 classes
    assert t.loc["deployment", 0.01] == "85.0 ± 0.0"


def test_deployment_facts_by_hand(hand_summary):
    """deployment_facts: worst-class and deployment accuracy at the strongest IF, and deployment - overall."""
    expected = {"worst_lo": "42.0", "deploy_lo": "85.0", "deploy_minus_overall": "17.8"}  # 85 - 67.2
    assert ch1.deployment_facts(hand_summary) == expected


def test_noise_facts_reads_the_right_accuracies_and_image_counts(hand_stored, hand_summary, monkeypatch):
    """noise_facts: half-widths at the strongest IF: overall (1000 images), tail (600), one class (100)."""
    import ltmpq.uncertainty

    calls = []

    def spy(accuracy, n, confidence=0.95):
        calls.append((accuracy, n))
        return 0.01 * len(calls)  # 1, 2, 3 points

    monkeypatch.setattr(ltmpq.uncertainty, "binomial_half_width", spy)
    facts = ch1.noise_facts(hand_stored[0], hand_summary)
    # the seed means at IF 0.01: overall 67.2%, tail 52%, balanced 67.2%
    assert [a for a, _ in calls] == pytest.approx([0.672, 0.52, 0.672])
    assert [n for _, n in calls] == [1000, 600, 100]
    assert facts == {"noise_overall": "1.0", "noise_tail": "2.0", "noise_class": "3.0"}


def test_noise_facts_values(hand_stored, hand_summary):
    """noise_facts: 100 x binomial_half_width of those accuracies and counts, to one decimal."""
    from ltmpq.uncertainty import binomial_half_width

    def half(p, n):
        return f"{100 * binomial_half_width(p, n):.1f}"

    assert ch1.noise_facts(hand_stored[0], hand_summary) == {
        "noise_overall": half(0.672, 1000),
        "noise_tail": half(0.52, 600),
        "noise_class": half(0.672, 100),
    }
    # about z sqrt(p (1 - p) / n) (normal approximation: 2.91, 4.00, 9.20 points), whatever the interval
    normal = [100 * Z * math.sqrt(p * (1 - p) / n) for p, n in ((0.672, 1000), (0.52, 600), (0.672, 100))]
    got = [float(v) for v in ch1.noise_facts(hand_stored[0], hand_summary).values()]
    assert got == pytest.approx(normal, abs=0.15)


def test_seed_spread_min_max_std_range(hand_stored):
    """seed_spread: per IF and metric the min, max, sd (ddof 1) and range over seeds, test split."""
    frame = frames.metrics_frame(hand_stored[0])  # chapter 1's frame: the baseline only
    s = ch1.seed_spread(frame)
    assert list(s.index) == sorted(IFS)
    assert list(dict.fromkeys(s.columns.get_level_values(0))) == ["head", "overall", "tail", "worst_class"]
    assert list(s["tail"].columns) == ["min", "max", "std", "range"]
    assert s.loc[0.01, "tail"].tolist() == pytest.approx([50, 54, 2, 4])
    assert s.loc[0.01, "overall"].tolist() == pytest.approx([66, 68.4, 1.2, 2.4])
    assert s.loc[0.1, "head"].tolist() == pytest.approx([90, 92, 1, 2])
    assert s.loc[0.02, "worst_class"].tolist() == pytest.approx([58, 60, 1, 2])
    only = ch1.seed_spread(frame, metrics=("tail",))
    assert set(only.columns.get_level_values(0)) == {"tail"}


@pytest.fixture
def frame():
    return spec_frame()


def baseline_only(frame):
    return frame[frame["method"] == "baseline"]


def summary_of(frame):
    from ltmpq import frames

    return frames.summarize(frame)


def test_interval_text_by_hand():
    """interval_text: mean [two-sided 95% t-interval]; signed and more digits on request."""
    assert ch1.interval_text([10, 11, 12]) == "11.0 [8.5, 13.5]"  # 11 -+ 2.484
    assert ch1.interval_text([-1, 0, -2], signed=True) == "-1.0 [-3.5, +1.5]"
    assert ch1.interval_text([0.4, 0.42, 0.44], signed=True, digits=2) == "+0.42 [+0.37, +0.47]"


def test_interval_text_without_an_interval():
    """One seed says it has no interval; no seed says that (never 'nan' or 'n/a')."""
    assert ch1.interval_text([5.0]) == "5.0 (one seed, no interval)"
    assert ch1.interval_text([5.0], signed=True) == "+5.0 (one seed, no interval)"
    assert ch1.interval_text([]) == "no run"
    assert ch1.interval_text([float("nan"), 3.0]) == "3.0 (one seed, no interval)"


def test_side_text_follows_the_two_sided_interval():
    """side_text: positive / negative only when the interval excludes zero on that side."""
    assert ch1.side_text([2, 2.1, 1.9], "up", "down") == "up"
    assert ch1.side_text([-2, -2.1, -1.9], "up", "down") == "down"
    assert ch1.side_text([-1, 0, 4], "up", "down") == "no detectable difference"
    assert ch1.side_text([-1, 0, 4], "up", "down", "same") == "same"
    assert ch1.side_text([3.0], "up", "down") == "no detectable difference"  # one seed: no interval
    assert ch1.side_text([], "up", "down") == "no detectable difference"
    assert ch1.side_text([0, 0, 0], "up", "down") == "no detectable difference"  # touches zero


def test_side_text_of_a_wide_interval_that_holds_zero():
    """Mean 2, sd 1: [-0.48, 4.48] contains zero, so no direction is claimed."""
    assert ch1.side_text([1, 2, 3], "up", "down") == "no detectable difference"


def test_vs_blog_text():
    """vs_blog_text: below / above / around the blog's value by our interval; no value, no interval."""
    assert ch1.vs_blog_text([10, 11, 12], 3.2) == "ours above the blog's"  # [8.5, 13.5]
    assert ch1.vs_blog_text([10, 11, 12], 14.0) == "ours below the blog's"
    assert ch1.vs_blog_text([10, 11, 12], 13.0) == "our interval contains the blog's value"
    assert ch1.vs_blog_text([10, 11, 12], None) == "the blog gives no value"
    assert ch1.vs_blog_text([10.0], 3.2) == "one seed, no interval"


def test_seed_values(frame):
    """seed_values: one test metric per seed, indexed by seed; a missing cell raises."""
    v = ch1.seed_values(frame, 0.01, "tail", "crt")
    assert v.index.tolist() == [0, 1, 2]
    assert v.tolist() == [70, 70, 70]
    assert ch1.seed_values(frame, 0.1, "head").tolist() == [90, 91, 92]  # the baseline by default
    with pytest.raises(ValueError):
        ch1.seed_values(frame, 0.02, "tail")


def test_reported_leaves_out_kangs_groups():
    """REPORTED: no many / medium / few (empty with ten classes), head and tail kept."""
    assert ch1.REPORTED == ("overall", "balanced", "macro_f1", "worst_class", "head", "tail", "deployment")


def test_metrics_table_has_no_group_rows(frame):
    """metrics_table: one row per REPORTED metric, none for Kang's groups."""
    t = ch1.metrics_table(summary_of(baseline_only(frame)))
    assert list(t.index) == list(ch1.REPORTED)
    assert not {"many", "medium", "few"} & set(t.index)
    assert t.loc["tail", 0.01] == "52.0 ± 5.0"  # 50, 52, 54: sd 2, 2 * 2.484


def test_tidy_metrics_order_index_and_values():
    """tidy_metrics: REPORTED metrics only, indexed by the keys, IF mildest first, then seed,
    methods in vocab order (baseline before cRT whatever the input order), val before test."""
    spec = {k: METRICS_SPEC[k] for k in [(0.01, "crt"), (0.1, "baseline"), (0.01, "baseline")]}
    f = spec_frame(spec, splits=("test", "val"))
    before = f.copy()
    t = ch1.tidy_metrics(f)
    pd.testing.assert_frame_equal(f, before)  # the input is not changed
    assert list(t.index.names) == ["imbalance_factor", "seed", "method", "split", "metric"]
    assert list(t.columns) == ["value"]
    assert len(t) == 3 * 3 * 2 * len(ch1.REPORTED)  # (IF, method) cells x seeds x splits x metrics
    assert set(t.index.get_level_values("metric")) == set(ch1.REPORTED)
    first = t.index[: 2 * len(ch1.REPORTED)]
    assert set(first.get_level_values("imbalance_factor")) == {0.1}
    assert [i[:4] for i in t.index[:: len(ch1.REPORTED)]][:2] == [
        (0.1, 0, "baseline", "val"),
        (0.1, 0, "baseline", "test"),
    ]
    at = t.xs((0.01, 1), level=("imbalance_factor", "seed"))
    assert list(dict.fromkeys(at.index.get_level_values("method"))) == ["baseline", "crt"]
    assert t.loc[(0.01, 2, "crt", "test", "head"), "value"] == 87
    assert list(t.xs((0.1, 0, "baseline", "test"), level=(0, 1, 2, 3)).index) == list(ch1.REPORTED)


def test_blog_gaps_table_by_hand(frame):
    """blog_gaps_table: per IF (mildest first) our gap with its interval, the blog's, and where ours lies."""
    t = ch1.blog_gaps_table(frame)
    assert list(t.index) == [0.1, 0.01]
    assert t.loc[0.1, "ours"] == "11.0 [8.5, 13.5]"
    assert t.loc[0.1, "blog"] == pytest.approx(3.2)  # 87.5 - 84.3
    assert t.loc[0.1, "ours against the blog"] == "ours above the blog's"
    assert t.loc[0.01, "ours"] == "38.0 [33.0, 43.0]"  # 40, 38, 36: 38 -+ 4.968
    assert t.loc[0.01, "blog"] == pytest.approx(42.2)  # inside [33.03, 42.97]
    assert t.loc[0.01, "ours against the blog"] == "our interval contains the blog's value"


def test_blog_gaps_table_where_the_blog_has_no_value():
    """An imbalance factor the blog did not run: no blog value, and it says so."""
    spec = {
        (0.05, "baseline"): METRICS_SPEC[(0.1, "baseline")],
        (0.01, "baseline"): METRICS_SPEC[(0.01, "baseline")],
    }
    t = ch1.blog_gaps_table(spec_frame(spec))
    assert t.loc[0.05, "blog"] is None or np.isnan(t.loc[0.05, "blog"])
    assert t.loc[0.05, "ours against the blog"] == "the blog gives no value"


def test_blog_shape_facts_by_hand(frame):
    """blog_shape_facts: gaps, growth and head / tail changes, ours with intervals beside the blog's."""
    facts = ch1.blog_shape_facts(baseline_only(frame))
    assert facts["gap_hi_ci"] == "11.0 [8.5, 13.5]"
    assert facts["blog_gap_hi"] == "3.2"
    assert facts["gap_hi_vs_blog"] == "ours above the blog's"
    assert facts["gap_hi_side"] == "the head ahead"
    assert facts["gap_lo_ci"] == "38.0 [33.0, 43.0]"
    assert facts["blog_gap_lo"] == "42.2"
    assert facts["gap_lo_vs_blog"] == "our interval contains the blog's value"
    # growth per seed: 40-10, 38-11, 36-12 = 30, 27, 24 (sd 3, half 7.45); the blog's 42.2 - 3.2
    assert facts["growth_ci"] == "+27.0 [+19.5, +34.5]"
    assert facts["blog_growth"] == "+39.0"
    assert facts["growth_vs_blog"] == "ours below the blog's"
    # head 90-90, 90-91, 90-92: -1 -+ 2.48 holds zero; the blog's 88.5 - 87.5 = +1.0 lies inside
    assert facts["head_change"] == "-1.0 [-3.5, +1.5]"
    assert facts["head_change_side"] == "no detectable change"
    assert facts["blog_head_change"] == "+1.0"
    assert facts["head_change_vs_blog"] == "our interval contains the blog's value"
    # tail 50-80, 52-80, 54-80 = -30, -28, -26; the blog's 46.3 - 84.3 = -38.0
    assert facts["tail_change"] == "-28.0 [-33.0, -23.0]"
    assert facts["tail_change_side"] == "falls"
    assert facts["blog_tail_change"] == "-38.0"
    assert facts["tail_change_vs_blog"] == "ours above the blog's"
    assert facts["tail_hi_ci"] == "80.0 [80.0, 80.0]"  # the same in every seed
    assert facts["blog_tail_hi"] == "84.3"
    assert facts["tail_hi_vs_blog"] == "ours below the blog's"
    assert facts["head_lo_ci"] == "90.0 [90.0, 90.0]"
    assert facts["head_lo_vs_blog"] == "ours above the blog's"  # 88.5


def test_carry_over_facts_by_hand(frame):
    """carry_over_facts: the signs that agree with the blog, and the sizes our intervals exclude."""
    facts = ch1.carry_over_facts(baseline_only(frame))
    assert facts["carries_over"] == (
        "a head–tail gap at IF 0.1, the gap's growth with the imbalance and the tail's fall with "
        "the imbalance"
    )
    # the gap at IF 0.01 (38 [33.0, 43.0]) contains the blog's 42.2: not listed
    assert facts["does_not_carry_over"] == (
        "the gap's size at IF 0.1 (ours above the blog's) and its growth (ours below the blog's)"
    )


def test_carry_over_facts_a_shrinking_gap_does_not_carry_over():
    """A gap that shrinks with imbalance (interval below zero) is listed as not carrying over."""
    spec = {
        (0.1, "baseline"): [(90, 60), (90, 61), (90, 62)],
        (0.01, "baseline"): [(90, 80), (90, 80), (90, 81)],
    }
    facts = ch1.carry_over_facts(spec_frame(spec))
    assert "the gap's growth with the imbalance" in facts["does_not_carry_over"]
    assert "the tail's fall with the imbalance" in facts["does_not_carry_over"]
    assert facts["carries_over"] == "a head–tail gap at IF 0.1"


def test_vs_blog_cells_by_hand(frame):
    """vs_blog_cells: of the six Table 1 cells (2 IFs x overall/head/tail), ours below in 2, above in 4."""
    # IF 0.1: overall 84.4 -+ 0.99 < 85.6 (below), head 91 -+ 2.48 > 87.5 (above), tail 80 < 84.3
    # IF 0.01: overall 67.2 -+ 2.98 > 63.2, head 90 > 88.5, tail 52 -+ 4.97 > 46.3: all above
    facts = ch1.vs_blog_cells(summary_of(frame))
    assert facts == {"vs_blog_n": 6, "vs_blog_below": "2 of 6", "vs_blog_within": "0", "vs_blog_above": "4"}


def test_headline_and_deployment_facts_by_hand(frame):
    """headline_facts and deployment_gain_facts at the strongest imbalance, with intervals."""
    assert ch1.headline_facts(frame) == {
        "overall_lo_ci": "67.2 [64.2, 70.2]",  # 66, 67.2, 68.4: sd 1.2, half 2.98
        "head_lo_ci": "90.0 [90.0, 90.0]",
        "tail_lo_ci": "52.0 [47.0, 57.0]",
    }
    assert ch1.deployment_gain_facts(frame) == {
        "deploy_vs_overall": "+22.0 [+17.0, +27.0]",  # 20, 22, 24
        "deploy_side": "higher on the training distribution",
    }


def test_deployment_gain_facts_without_a_detectable_difference():
    """Deployment minus overall whose interval holds zero is no detectable difference."""
    facts = ch1.deployment_gain_facts(spec_frame(deploy=[-1, 0, 4]))
    assert facts["deploy_side"] == "no detectable difference"
    assert facts["deploy_vs_overall"].startswith("+1.0 [")


def test_precision_note():
    """precision_note explains the arithmetic of each precision."""
    bf16 = ch1.precision_note(Stage1Config(imbalance_factor=0.1, precision="bf16"))["precision_note"]
    assert "bfloat16" in bf16 and "float32" in bf16 and "16-bit" in bf16
    fp32 = ch1.precision_note(Stage1Config(imbalance_factor=0.1, precision="fp32"))
    assert fp32 == {"precision_note": "every operation in 32-bit floating point"}


def test_kang_group_facts_reads_the_strongest_imbalance():
    """kang_group_facts: the group sizes of the most imbalanced runs' stored groups."""
    s1 = {
        Stage1Config(imbalance_factor=0.1): {"groups": {"many": list(range(10)), "medium": [], "few": []}},
        Stage1Config(imbalance_factor=0.01): {
            "groups": {"many": list(range(8)), "medium": [8, 9], "few": []}
        },
    }
    assert ch1.kang_group_facts(s1) == {"kang_sizes": "8, 2 and 0"}
