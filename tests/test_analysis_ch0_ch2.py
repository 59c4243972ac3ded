"""Chapters 0-2's analysis (ltmpq.analysis.ch0/ch1/ch2), claims 1-2 (ltmpq.claims) and blog.table1_bars.

Everything reads tiny synthetic stored results, built by hand in the shape the stage-1 and
decoupled runs store (fractions, null for an empty group), with head and tail accuracies chosen
so that every expected gap, mean and 95% t-interval below can be computed by hand. Nothing is
trained and no data is read.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ltmpq import blog, claims, frames, verdicts
from ltmpq.analysis import ch0_introduction as ch0
from ltmpq.analysis import ch1_evaluation as ch1
from ltmpq.analysis import ch2_decoupling as ch2
from ltmpq.config import PROFILES, DecoupleConfig, Stage1Config
from ltmpq.params import ChapterParams
from ltmpq.vocab import CLASSES, METHOD_LABELS, METHODS

# ------------------------------------------------------------------ hand constants

#: t(0.975, 2): the 95% two-sided Student quantile for three seeds (hand value 4.3027).
T3 = float(sps.t.ppf(0.975, 2))
#: The 95% t half-width of three seeds whose standard deviation is 1 (e.g. gaps 10, 11, 12).
HALF1 = T3 / math.sqrt(3)
#: z(0.975) of the normal approximation.
Z = 1.959964

SEEDS = (0, 1, 2)
IFS = (0.1, 0.02, 0.01)
VAL_PER_CLASS = 50
N_TEST = 1000  # 100 test images per class

#: Training counts per class (class 0 the largest), by imbalance factor. At IF 0.01 the first four
#: (head) classes hold 3000 of 3750 images: a head share of exactly 80%.
COUNTS = {
    0.1: [1200, 1000, 800, 600, 500, 400, 300, 200, 150, 120],  # total 5270
    0.02: [1200, 950, 700, 500, 400, 300, 200, 130, 80, 60],  # total 4520
    0.01: [1200, 900, 600, 300, 270, 210, 120, 75, 45, 30],  # total 3750
    0.05: [1200, 950, 700, 500, 400, 300, 200, 130, 80, 60],
}
#: The blog's per-class counts (n_max 5000), the standard CIFAR-10-LT ones.
BLOG_001 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # total 12406
BLOG_01 = [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]  # total 20431


def ht(*gaps, head=90.0):
    """(head, tail) accuracies (points), one per seed, with the given head-tail gaps."""
    return [(head, head - g) for g in gaps]


#: (IF, method) -> (head, tail) test accuracy in points for seeds 0, 1, 2.
SPEC = {
    (0.1, "baseline"): [(90, 80), (91, 80), (92, 80)],  # gaps 10, 11, 12
    (0.02, "baseline"): [(90, 70), (90, 68), (90, 69)],  # gaps 20, 22, 21
    (0.01, "baseline"): [(90, 50), (90, 52), (90, 54)],  # gaps 40, 38, 36
    (0.1, "crt"): [(85, 85), (85, 84), (85, 86)],  # gaps 0, 1, -1
    (0.02, "crt"): [(85, 65), (85, 62), (85, 65)],  # gaps 20, 23, 20
    (0.01, "crt"): [(80, 65), (80, 66), (80, 67)],  # gaps 15, 14, 13
    **{(f, "tau_norm"): ht(30, 30, 30, head=85) for f in IFS + (0.05,)},
    **{(f, "lws"): ht(-8, -9, -10, head=75) for f in IFS + (0.05,)},  # over-corrects: tail above head
    **{(f, "ncm"): ht(5, 6, 7, head=80) for f in IFS + (0.05,)},
}
#: tau chosen on validation per IF and seed.
TAUS = {0.1: (0.2, 0.4, 0.4), 0.02: (0.5, 0.5, 0.6), 0.01: (0.6, 0.8, 1.0), 0.05: (0.3, 0.3, 0.3)}
TAU_GRID = (0.0, 0.5, 1.0)
#: Per-class test accuracy (fractions) of the decoupled methods: OFFSET + 0.02 * class (+-0.01 by seed).
OFFSET = {"crt": 0.5, "tau_norm": 0.4, "lws": 0.6, "ncm": 0.3}


def metrics(head: float, tail: float) -> dict:
    """Stored metrics (fractions) of a run with these head / tail accuracies (points).

    The test set is balanced with 4 head and 6 tail classes, so overall = 0.4 head + 0.6 tail.
    """
    overall = 0.4 * head + 0.6 * tail
    return {
        "overall": overall / 100,
        "balanced": overall / 100,
        "macro_f1": (overall - 1) / 100,
        "worst_class": (tail - 10) / 100,
        "head": head / 100,
        "tail": tail / 100,
        "many": head / 100,
        "medium": tail / 100,
        "few": None,
        "deployment": (head - 5) / 100,
    }


def split(head: float, tail: float, per_class: list[float], which: str) -> dict:
    """One split's stored entry; the validation numbers are off (gap 5 points wider)."""
    if which == "val":
        head, tail = head - 5, tail - 10
    return {"metrics": metrics(head, tail), "per_class": per_class}


def groups(counts) -> dict:
    return {
        "head": [0, 1, 2, 3],
        "tail": [4, 5, 6, 7, 8, 9],
        "many": [c for c, n in enumerate(counts) if n > 100],
        "medium": [c for c, n in enumerate(counts) if 20 <= n <= 100],
        "few": [c for c, n in enumerate(counts) if n < 20],
    }


def baseline_per_class(counts, seed: int) -> list[float]:
    """Exactly log-linear on average over seeds: 10 + 20 log10(count) percent (seeds +-2)."""
    return [(10 + 20 * math.log10(n) + 2 * (seed - 1)) / 100 for n in counts]


def stage1_result(f: float, seed: int, spec: dict) -> dict:
    counts = COUNTS[f]
    head, tail = spec[(f, "baseline")][seed]
    pc = baseline_per_class(counts, seed)
    return {
        "kind": "stage1",
        "imbalance_factor": f,
        "seed": seed,
        "train_counts": list(counts),
        "groups": groups(counts),
        "split_sizes": {"train": sum(counts), "val": 10 * VAL_PER_CLASS, "test": N_TEST},
        "test_labels": np.repeat(np.arange(10), N_TEST // 10).tolist(),
        "val": split(head, tail, pc, "val"),
        "test": split(head, tail, pc, "test"),
    }


def choice(method: str, f: float, seed: int) -> dict:
    return {
        "crt": {"epoch": 10 + seed, "val_balanced": 0.6},
        "tau_norm": {"tau": TAUS[f][seed], "val_balanced": 0.55},
        "lws": {"epoch": 20 + seed, "val_balanced": 0.62},
        "ncm": {"val_balanced": 0.5},
    }[method]


def classifier(f: float, seed: int) -> dict:
    """At IF 0.01 class 0's norm is 2.0/2.2/2.4 (mean 2.2), class 9's 1.0/1.1/1.2 (mean 1.1): ratio 2;
    biases 0.6 and -0.2 on average: difference 0.8. Elsewhere ratio 1.5 and difference 0.3."""
    d = seed - 1
    if f == 0.01:
        n0, n9, b0, b9 = 2.2 + 0.2 * d, 1.1 + 0.1 * d, 0.6 + 0.1 * d, -0.2 - 0.1 * d
    else:
        n0, n9, b0, b9 = 1.5, 1.0, 0.3, 0.0
    return {
        "weight_norm": list(np.linspace(n0, n9, 10)),
        "bias": list(np.linspace(b0, b9, 10)),
    }


def decoupled_result(f: float, seed: int, spec: dict) -> dict:
    methods = {}
    for m in ("crt", "tau_norm", "lws", "ncm"):
        head, tail = spec[(f, m)][seed]
        pc = [OFFSET[m] + 0.02 * c + 0.01 * (seed - 1) for c in range(10)]
        curve = [0.5, 0.6 + 0.01 * seed, 0.55] if m == "tau_norm" else [0.6]
        methods[m] = {
            "choice": choice(m, f, seed),
            "val_curve": curve,
            "val": split(head, tail, pc, "val"),
            "test": split(head, tail, pc, "test"),
        }
    return {
        "kind": "decoupled",
        "imbalance_factor": f,
        "seed": seed,
        "methods": methods,
        "stage1_classifier": classifier(f, seed),
    }


def build(overrides: dict | None = None, ifs=IFS, seeds=SEEDS):
    """(stage-1 results, decoupled results), both keyed by Stage1Config, IF-major then seed."""
    spec = {**SPEC, **(overrides or {})}
    cfgs = [Stage1Config(imbalance_factor=f, seed=s, val_per_class=VAL_PER_CLASS) for f in ifs for s in seeds]
    s1 = {c: stage1_result(c.imbalance_factor, c.seed, spec) for c in cfgs}
    dec = {c: decoupled_result(c.imbalance_factor, c.seed, spec) for c in cfgs}
    return s1, dec


def frame_of(overrides=None, ifs=IFS, seeds=SEEDS) -> pd.DataFrame:
    return frames.metrics_frame(*build(overrides, ifs, seeds))


@pytest.fixture
def stored():
    return build()


@pytest.fixture
def frame(stored):
    return frames.metrics_frame(*stored)


@pytest.fixture
def summary(frame):
    return frames.summarize(frame)


def test_t_quantile_hand_value():
    """The t quantile the expectations below use is the textbook 4.303 (2 degrees of freedom)."""
    assert T3 == pytest.approx(4.3027, abs=1e-4)
    assert HALF1 == pytest.approx(2.4841, abs=1e-4)


# ------------------------------------------------------------------ chapter 0


def test_train_counts_one_row_per_if_from_the_first_seed(stored):
    """train_counts: IF rows (stored order), class columns, read from the first seed's runs only."""
    s1, _ = stored
    for c in s1:
        if c.seed == 1:  # another seed's counts must not be read
            s1[c]["train_counts"] = [1] * 10
    counts = ch0.train_counts(s1)
    assert list(counts.index) == list(IFS)
    assert counts.index.name == "IF"
    assert list(counts.columns) == list(CLASSES)
    for f in IFS:
        assert counts.loc[f].tolist() == COUNTS[f]


def test_blog_counts_are_the_cifar10_lt_counts():
    """blog_counts: the blog's n_max = 5000 long tail, per imbalance factor."""
    b = ch0.blog_counts([0.1, 0.01])
    assert list(b.columns) == list(CLASSES)
    assert b.loc[0.01].tolist() == BLOG_001
    assert b.loc[0.1].tolist() == BLOG_01


def test_counts_beside_blog_layout_and_totals(stored):
    """counts_beside_blog: class rows + 'train total', columns (IF, ours | blog), totals by hand."""
    counts = ch0.train_counts(stored[0])
    both = ch0.counts_beside_blog(counts)
    assert list(both.index) == [*CLASSES, "train total"]
    assert list(both.columns) == [(f"IF {f:g}", who) for f in IFS for who in ("ours", "blog")]
    assert both.loc["train total", ("IF 0.1", "ours")] == 5270
    assert both.loc["train total", ("IF 0.02", "ours")] == 4520
    assert both.loc["train total", ("IF 0.01", "ours")] == 3750
    assert both.loc["train total", ("IF 0.1", "blog")] == 20431
    assert both.loc["train total", ("IF 0.01", "blog")] == 12406
    assert both.loc["truck", ("IF 0.01", "ours")] == 30
    assert both.loc["truck", ("IF 0.01", "blog")] == 50


def test_head_share_by_hand(stored):
    """head_share: the first four classes' fraction of the training set at one IF."""
    counts = ch0.train_counts(stored[0])
    assert ch0.head_share(counts, 0.01) == pytest.approx(3000 / 3750)
    assert ch0.head_share(counts, 0.1) == pytest.approx(3600 / 5270)
    assert ch0.head_share(counts, 0.01, num_head=1) == pytest.approx(1200 / 3750)


def test_data_facts_by_hand(stored):
    """data_facts: split sizes, n_max, the strongest IF's counts, head shares (ours, blog's), few."""
    assert ch0.data_facts(stored[0]) == {
        "val_per_class": VAL_PER_CLASS,
        "n_max": "1,200",
        "n_val": "500",
        "n_test": "1,000",
        "most_lt_if": "0.01",
        "head_share": "80",
        "tail_min": 30,
        "blog_head_share": f"{100 * sum(BLOG_001[:4]) / sum(BLOG_001):.0f}",  # 10870 / 12406 = 87.6%
        "few_group": "is empty here",
    }
    assert ch0.data_facts(stored[0])["blog_head_share"] == "88"


@pytest.mark.parametrize(
    ("few", "text"), [([], "is empty here"), ([9], "holds class 9"), ([8, 9], "holds classes 8, 9")]
)
def test_data_facts_few_group_text_at_the_strongest_imbalance(stored, few, text):
    """data_facts' few_group reads the most imbalanced setting's few group (singular/plural/empty)."""
    s1, _ = stored
    for c, r in s1.items():
        r["groups"]["few"] = list(few) if c.imbalance_factor == 0.01 else [5, 6, 7]
    assert ch0.data_facts(s1)["few_group"] == text


def test_profiles_table_lists_every_profile():
    """profiles_table: one row per profile with its IFs as text, seed count, width and epochs."""
    t = ch0.profiles_table()
    assert list(t.index) == list(PROFILES)
    cpu = t.loc["cpu"]
    assert cpu["imbalance factors"] == "0.1, 0.02, 0.01"
    assert cpu["seeds"] == len(PROFILES["cpu"].seeds)
    assert cpu["VGG16 width"] == PROFILES["cpu"].stage1_config(1.0, 0).width
    assert cpu["epochs"] == PROFILES["cpu"].stage1_config(1.0, 0).epochs
    assert (cpu["schedule"], cpu["precision"], cpu["validation per class"]) == ("onecycle", "bf16", 300)
    assert t.loc["cpu-v1", "schedule"] == "cosine" and t.loc["cpu-v1", "epochs"] == 30
    assert cpu["what for"] == PROFILES["cpu"].description


def test_profile_facts():
    """profile_facts: the profile name, width as %g, epochs and the number of seeds shown."""
    cfg = Stage1Config(imbalance_factor=0.1, width=0.25, epochs=7)
    facts = ch0.profile_facts(ChapterParams("cpu", seeds=(0, 1)), cfg)
    assert facts == {"profile_name": "cpu", "profile_width": "0.25", "profile_epochs": 7, "profile_seeds": 2}


# ------------------------------------------------------------------ chapter 1: recipe, gaps


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


def test_gap_frame_is_head_minus_tail_per_test_run(frame):
    """gap_frame: one row per (IF, method, seed), gap = head - tail of the test split."""
    g = frames.gap_frame(frame)
    assert list(g.columns) == ["imbalance_factor", "method", "seed", "gap"]
    assert len(g) == 3 * 5 * 3
    base = g[(g["imbalance_factor"] == 0.01) & (g["method"] == "baseline")].sort_values("seed")
    assert base["gap"].tolist() == pytest.approx([40, 38, 36])
    lws = g[(g["imbalance_factor"] == 0.1) & (g["method"] == "lws")].sort_values("seed")
    assert lws["gap"].tolist() == pytest.approx([-8, -9, -10])


def test_gap_frame_other_split_and_groups(frame):
    """gap_frame reads the split and the two groups asked for (val is 5 wider; overall - tail = 0.4 gap)."""
    g = frames.gap_frame(frame, split="val").set_index(["imbalance_factor", "method", "seed"])["gap"]
    assert g.loc[(0.01, "baseline", 0)] == pytest.approx(45)
    g = frames.gap_frame(frame, high="overall", low="tail").set_index(["imbalance_factor", "method", "seed"])
    assert g.loc[(0.01, "baseline", 0), "gap"] == pytest.approx(0.4 * 40)


def test_gap_summary_mean_and_t_half_width(frame):
    """gap_summary: per (IF, method) the mean gap, its 95% t half-width over seeds and n."""
    s = ch1.gap_summary(frame).set_index(["imbalance_factor", "method"])
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


def test_gap_per_seed_is_indexed_by_seed(frame):
    """gap_per_seed: one IF and method's gaps as a Series indexed by seed."""
    g = frames.gap_per_seed(frame, 0.02, "crt")
    assert list(g.index) == [0, 1, 2]
    assert g.tolist() == pytest.approx([20, 23, 20])


@pytest.mark.parametrize(("f", "method", "named"), [(0.01, "focal", "'focal'"), (0.5, "baseline", "0.5")])
def test_gap_per_seed_unknown_method_or_if_raises_naming_it(frame, f, method, named):
    """gap_per_seed raises ValueError naming a method or imbalance factor that has no runs."""
    with pytest.raises(ValueError, match=named):
        frames.gap_per_seed(frame, f, method)


def test_gap_growth_supported_steps(frame):
    """gap_growth: per consecutive IF pair (less -> more imbalanced) the per-seed growth, supported here."""
    steps = ch1.gap_growth(frame)
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


def test_gap_growth_of_another_method(frame):
    """gap_growth(method=...) follows that method's gaps (cRT: 0.1 -> 0.02 grows by 20, 22, 21)."""
    steps = ch1.gap_growth(frame, method="crt")
    assert steps[0]["estimate"] == pytest.approx(21)
    assert steps[1]["estimate"] == pytest.approx(-7)  # 15-20, 14-23, 13-20
    assert steps[1]["verdict"] == verdicts.NOT_SUPPORTED


def test_gap_growth_single_if_has_no_steps():
    """gap_growth with one imbalance factor: no consecutive pair, no step."""
    assert ch1.gap_growth(frame_of(ifs=(0.01,))) == []


def test_gap_facts_by_hand(frame, summary):
    """ch1.gap_facts: gaps at the extreme IFs to one decimal, their CIs, blog's gap, growth wording."""
    assert ch1.gap_facts(frame, summary) == {
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


# ------------------------------------------------------------------ chapter 1: Table 1 / Fig. 5


def test_table1_vs_blog_differences(summary):
    """table1_vs_blog: per (IF, method, metric) the blog's value, ours 'mean ± CI' and ours - blog."""
    cmp = ch1.table1_vs_blog(summary, methods=("baseline",))
    assert list(cmp.columns) == ["imbalance_factor", "method", "metric", "blog", "ours", "difference", "n"]
    assert len(cmp) == 9 and set(cmp["method"]) == {"baseline"}
    row = cmp.set_index(["imbalance_factor", "metric"]).loc[(0.01, "overall")]
    assert row["blog"] == 63.2
    # overall per seed 66.0, 67.2, 68.4: sd 1.2
    assert row["ours"] == f"67.2 ± {1.2 * HALF1:.1f}" == "67.2 ± 3.0"
    assert row["difference"] == pytest.approx(67.2 - 63.2)
    assert row["n"] == 3
    both = ch1.table1_vs_blog(summary)
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


def test_vs_blog_facts_on_the_comparison(summary):
    """vs_blog_facts over the baseline's nine Table-1 cells of the synthetic results."""
    cmp = ch1.table1_vs_blog(summary, methods=("baseline",))
    ours = {0.1: (91, 80), 0.02: (90, 69), 0.01: (90, 52)}
    diffs = []
    for f, (h, t) in ours.items():
        b = blog.TABLE1[(f, "baseline")]
        diffs += [0.4 * h + 0.6 * t - b["overall"], h - b["head"], t - b["tail"]]
    # 0.1: -1.2, +3.5, -4.3; 0.02: -1.4, +2.7, -4.1; 0.01: +4.0, +1.5, +5.7 -> mean 6.4 / 9 = 0.71
    assert np.mean(diffs) == pytest.approx(6.4 / 9)
    assert cmp["difference"].mean() == pytest.approx(6.4 / 9)
    assert ch1.vs_blog_facts(cmp) == {"vs_blog": "close to", "vs_blog_points": "0.7"}


def test_fig5_table_layout(summary):
    """fig5_table: rows (IF, metric) in Table 1's order, columns blog | ours | difference."""
    t = ch1.fig5_table(ch1.table1_vs_blog(summary, methods=("baseline",)))
    assert list(t.columns) == ["blog", "ours", "difference"]
    assert list(t.index) == [(f, m) for f in IFS for m in ("overall", "head", "tail")]
    assert t.loc[(0.1, "head"), "blog"] == 87.5
    assert t.loc[(0.1, "head"), "ours"] == f"91.0 ± {HALF1:.1f}"
    assert t.loc[(0.1, "head"), "difference"] == pytest.approx(91 - 87.5)


# ------------------------------------------------------------------ chapter 1: per class, metrics, noise


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


def test_count_accuracy_fit_perfect_log_linear(stored):
    """count_accuracy_fit on stored accuracies of 10 + 20 log10(count) on average: slope 20, r^2 1."""
    pc = frames.per_class_frame(stored[0])
    assert ch1.count_accuracy_fit(pc, 0.01) == {"rho_lo": "1.00", "slope_lo": "20", "r2_lo": "1.00"}
    lo = pc[pc["imbalance_factor"] == 0.01].groupby("class")[["train_count", "accuracy"]].mean()
    fit = sps.linregress(np.log10(lo["train_count"]), lo["accuracy"])
    assert fit.slope == pytest.approx(20) and fit.intercept == pytest.approx(10)


def test_metrics_table_layout(summary):
    """metrics_table: the baseline's REPORTED metrics as rows, IFs as columns, 'mean ± CI' cells."""
    t = ch1.metrics_table(summary)
    assert list(t.index) == list(ch1.REPORTED)
    assert list(t.columns) == list(IFS)
    assert t.loc["overall", 0.01] == "67.2 ± 3.0"
    assert t.loc["head", 0.1] == f"91.0 ± {HALF1:.1f}"
    assert t.loc["few", 0.01] == "—"  # an empty group
    assert t.loc["deployment", 0.01] == "85.0 ± 0.0"


def test_deployment_facts_by_hand(summary):
    """deployment_facts: worst-class and deployment accuracy at the strongest IF, and deployment - overall."""
    expected = {"worst_lo": "42.0", "deploy_lo": "85.0", "deploy_minus_overall": "17.8"}  # 85 - 67.2
    assert ch1.deployment_facts(summary) == expected


def test_noise_facts_reads_the_right_accuracies_and_image_counts(stored, summary, monkeypatch):
    """noise_facts: half-widths at the strongest IF: overall (1000 images), tail (600), one class (100)."""
    import ltmpq.uncertainty

    calls = []

    def spy(accuracy, n, confidence=0.95):
        calls.append((accuracy, n))
        return 0.01 * len(calls)  # 1, 2, 3 points

    monkeypatch.setattr(ltmpq.uncertainty, "binomial_half_width", spy)
    facts = ch1.noise_facts(stored[0], summary)
    # the seed means at IF 0.01: overall 67.2%, tail 52%, balanced 67.2%
    assert [a for a, _ in calls] == pytest.approx([0.672, 0.52, 0.672])
    assert [n for _, n in calls] == [1000, 600, 100]
    assert facts == {"noise_overall": "1.0", "noise_tail": "2.0", "noise_class": "3.0"}


def test_noise_facts_values(stored, summary):
    """noise_facts: 100 x binomial_half_width of those accuracies and counts, to one decimal."""
    from ltmpq.uncertainty import binomial_half_width

    def half(p, n):
        return f"{100 * binomial_half_width(p, n):.1f}"

    assert ch1.noise_facts(stored[0], summary) == {
        "noise_overall": half(0.672, 1000),
        "noise_tail": half(0.52, 600),
        "noise_class": half(0.672, 100),
    }
    # about z sqrt(p (1 - p) / n) (normal approximation: 2.91, 4.00, 9.20 points), whatever the interval
    normal = [100 * Z * math.sqrt(p * (1 - p) / n) for p, n in ((0.672, 1000), (0.52, 600), (0.672, 100))]
    got = [float(v) for v in ch1.noise_facts(stored[0], summary).values()]
    assert got == pytest.approx(normal, abs=0.15)


def test_seed_spread_min_max_std_range(stored):
    """seed_spread: per IF and metric the min, max, sd (ddof 1) and range over seeds, test split."""
    frame = frames.metrics_frame(stored[0])  # chapter 1's frame: the baseline only
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


# ------------------------------------------------------------------ chapter 2


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


def test_table1_layout(summary):
    """ch2.table1: columns (model, blog|ours|difference), rows IF descending then overall/head/tail."""
    t = ch2.table1(summary)
    assert list(t.columns) == [(m, v) for m in ("base", "dec (cRT)") for v in ("blog", "ours", "difference")]
    assert list(t.index) == [(f, m) for f in (0.1, 0.02, 0.01) for m in ("overall", "head", "tail")]
    row = t.loc[(0.01, "tail")]
    assert row[("base", "blog")] == 46.3
    assert row[("base", "ours")] == "52.0 ± 5.0"
    assert row[("base", "difference")] == pytest.approx(52 - 46.3)
    assert row[("dec (cRT)", "blog")] == 72.0
    assert row[("dec (cRT)", "ours")] == f"66.0 ± {HALF1:.1f}"
    assert row[("dec (cRT)", "difference")] == pytest.approx(66 - 72.0)


def test_methods_table(summary):
    """methods_table: (IF, method label) rows, the seven metric columns, 'mean ± CI' cells."""
    t = ch2.methods_table(summary)
    assert list(t.columns) == ["overall", "head", "tail", "worst_class", "balanced", "macro_f1", "deployment"]
    assert set(t.index.get_level_values(1)) == {METHOD_LABELS[m] for m in METHODS}
    assert t.loc[(0.01, "cRT"), "tail"] == f"66.0 ± {HALF1:.1f}"
    assert t.loc[(0.01, "LWS"), "head"] == "75.0 ± 0.0"


def test_narrowing_per_if(frame):
    """narrowing: gap(baseline) - gap(cRT) per seed at each IF (mildest first), by the verdict rule."""
    steps = ch2.narrowing(frame)
    assert [s["imbalance_factor"] for s in steps] == [0.1, 0.02, 0.01]
    # 0.1: 10, 10, 13; 0.02: 0, -1, 1; 0.01: 25, 24, 23
    assert [s["estimate"] for s in steps] == pytest.approx([11, 0, 24])
    assert steps[0]["ci_high"] - steps[0]["estimate"] == pytest.approx(T3)  # sd sqrt 3, n 3
    assert [s["verdict"] for s in steps] == [verdicts.SUPPORTED, verdicts.INCONCLUSIVE, verdicts.SUPPORTED]


def test_narrowing_other_method(frame):
    """narrowing(method='tau_norm'): a method that widens the gap at 0.1 is not supported there."""
    steps = ch2.narrowing(frame, method="tau_norm")
    assert steps[0]["estimate"] == pytest.approx(11 - 30)
    assert steps[0]["verdict"] == verdicts.NOT_SUPPORTED
    assert steps[2]["estimate"] == pytest.approx(38 - 30)


def test_gap_facts_ch2_by_hand(frame, summary):
    """ch2.gap_facts: each method's gap at the strongest IF, the best by |gap|, cRT's trade and verdicts."""
    assert ch2.gap_facts(frame, summary) == {
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


def test_choices_frame_and_table(stored):
    """choices_frame/choices_table: per (IF, seed) the tau and epoch each method chose on validation."""
    choices = ch2.choices_frame(stored[1])
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


def test_tau_curves(stored):
    """tau_curves: one row per run and tau, tau-norm's validation balanced accuracy in percent."""
    c = ch2.tau_curves(stored[1], TAU_GRID)
    assert len(c) == 9 * 3
    one = c[(c["imbalance_factor"] == 0.01) & (c["seed"] == 2)]
    assert one["tau"].tolist() == list(TAU_GRID)
    assert one["val balanced accuracy (%)"].tolist() == pytest.approx([50, 62, 55])


def test_tau_curves_grid_of_another_length_raises(stored):
    """tau_curves refuses a grid that does not match the stored curve's length."""
    with pytest.raises(ValueError):
        ch2.tau_curves(stored[1], (0.0, 1.0))


def test_classifier_norms(stored):
    """classifier_norms: one row per run and class with the stage-1 weight norm and bias."""
    n = ch2.classifier_norms(stored[1])
    assert len(n) == 9 * 10
    row = n[(n["imbalance_factor"] == 0.01) & (n["seed"] == 2) & (n["class"] == 9)].iloc[0]
    assert row["weight norm"] == pytest.approx(1.2)
    assert row["bias"] == pytest.approx(-0.3)


def test_norm_facts_by_hand(stored):
    """norm_facts: at the strongest IF the seed-mean norm ratio of class 0 to 9, bias difference, taus."""
    facts = ch2.norm_facts(ch2.classifier_norms(stored[1]), ch2.choices_frame(stored[1]))
    assert facts == {"norm_ratio_lo": "2.00", "bias_diff_lo": "0.80", "tau_lo": "0.6, 0.8, 1"}


def test_per_class_means_order_and_values(stored):
    """per_class_means: seed-mean per-class test accuracy, rows labelled in METHODS order."""
    t = ch2.per_class_means(*stored, 0.01)
    assert list(t.index) == ["baseline (CE)", "cRT", "tau-norm", "LWS", "NCM"]
    assert list(t.columns) == list(range(10))
    assert t.loc["cRT", 3] == pytest.approx(56.0)
    assert t.loc["NCM", 0] == pytest.approx(30.0)
    assert t.loc["baseline (CE)", 9] == pytest.approx(10 + 20 * math.log10(30))
    mild = ch2.per_class_means(*stored, 0.1)
    assert mild.loc["baseline (CE)", 9] == pytest.approx(10 + 20 * math.log10(120))


# ------------------------------------------------------------------ claims 1 and 2


def test_claim1_parts(frame):
    """claim1: 1a the mildest IF's gap > 0, 1b strongest minus mildest gap > 0, values per seed."""
    a, b = claims.claim1(frame)
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


def test_claim2_parts(frame):
    """claim2: 2a gap(baseline) - gap(cRT) > 0 and 2b gap(cRT) > 10 at the strongest IF."""
    a, b = claims.claim2(frame)
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
    expected_p = sps.ttest_1samp([5, 6, 7], 0.5, alternative="greater").pvalue
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


def test_verdict_table_rows(frame):
    """verdict_table: one row per part with the measured question, estimate [CI], one-sided p, verdict."""
    t = claims.verdict_table(claims.claim1(frame) + claims.claim2(frame))
    assert list(t.columns) == ["claim", "part", "statement", "measured", "estimate [95% CI]", "p", "verdict",
                               "where"]  # fmt: skip
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
            sps.ttest_1samp([10, 11, 12], 0, alternative="greater").pvalue,
            sps.ttest_1samp([30, 27, 24], 0, alternative="greater").pvalue,
            sps.ttest_1samp([25, 24, 23], 0, alternative="greater").pvalue,
            sps.ttest_1samp([15, 14, 13], 10, alternative="greater").pvalue,
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


def test_part_facts_text(frame):
    """part_facts: 'verdict (+est [+lo, +hi])' per part and one sentence per claim."""
    facts = claims.part_facts(claims.claim1(frame))
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


# ------------------------------------------------------------------ blog.table1_bars


def test_table1_bars_one_method_relabelled():
    """table1_bars: {(IF, label, metric): value} for the chosen methods and metrics the blog has."""
    bars = blog.table1_bars(["overall", "tail", "worst_class"], ("baseline",), label=lambda m: "ours")
    assert bars == {
        (0.1, "ours", "overall"): 85.6,
        (0.1, "ours", "tail"): 84.3,
        (0.02, "ours", "overall"): 78.8,
        (0.02, "ours", "tail"): 73.1,
        (0.01, "ours", "overall"): 63.2,
        (0.01, "ours", "tail"): 46.3,
    }


def test_table1_bars_default_methods_with_chapter_labels():
    """table1_bars' defaults: baseline and cRT, labelled as chapter 2 does (METHOD_LABELS)."""
    bars = blog.table1_bars(["head"], label=METHOD_LABELS.get)
    assert bars == {
        (0.1, "baseline (CE)", "head"): 87.5,
        (0.1, "cRT", "head"): 85.8,
        (0.02, "baseline (CE)", "head"): 87.3,
        (0.02, "cRT", "head"): 83.3,
        (0.01, "baseline (CE)", "head"): 88.5,
        (0.01, "cRT", "head"): 81.4,
    }
    assert blog.table1_bars(["head"], ("lws",)) == {}


def test_stored_results_are_not_modified(stored):
    """The analysis functions read the stored results without changing them."""
    s1, dec = stored
    before = copy.deepcopy((s1, dec))
    f = frames.metrics_frame(s1, dec)
    s = frames.summarize(f)
    ch0.data_facts(s1)
    ch1.noise_facts(s1, s)
    ch2.gap_facts(f, s)
    ch2.norm_facts(ch2.classifier_norms(dec), ch2.choices_frame(dec))
    ch2.per_class_means(s1, dec, 0.01)
    assert (s1, dec) == before
