"""ltmpq.uncertainty: intervals over seeds, binomial intervals, Benjamini-Hochberg, exact McNemar and
chapter 3's paired drop-gap bootstrap; each checked against scipy or a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes import direct_gap
from scipy import stats as sps

from ltmpq.uncertainty import benjamini_hochberg, binomial_half_width, mcnemar_exact, mean_ci, paired_drop_gap

# ------------------------------------------------------------------ stats


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.5])
def test_mean_ci_matches_scipy_t_interval(confidence):
    v = np.array([61.0, 63.5, 60.25, 64.0, 62.2])
    mean, half, n = mean_ci(v, confidence)
    lo, hi = sps.t.interval(confidence, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
    assert n == 5
    assert mean == pytest.approx(v.mean())
    assert half == pytest.approx((hi - lo) / 2)
    assert mean - half == pytest.approx(lo) and mean + half == pytest.approx(hi)


def test_mean_ci_two_values_by_hand():
    # t(0.975, 1) = 12.706; std(ddof=1) of (60, 64) = 2 sqrt(2); / sqrt(2) -> 2
    mean, half, n = mean_ci([60.0, 64.0])
    assert (mean, n) == (62.0, 2)
    assert half == pytest.approx(12.7062 * 2, abs=1e-3)


def test_mean_ci_ignores_nans():
    with_nan = mean_ci([1.0, float("nan"), 2.0, 4.0, float("nan")])
    assert with_nan == pytest.approx(mean_ci([1.0, 2.0, 4.0]))
    assert with_nan[2] == 3


def test_mean_ci_single_value_has_nan_half_width():
    mean, half, n = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(half) and n == 1
    mean, half, n = mean_ci([float("nan"), 0.7])  # one value left after dropping NaN
    assert mean == 0.7 and math.isnan(half) and n == 1


@pytest.mark.parametrize("values", [[], [float("nan"), float("nan")], np.array([])])
def test_mean_ci_empty_gives_nan_nan_0(values):
    mean, half, n = mean_ci(values)
    assert math.isnan(mean) and math.isnan(half) and n == 0


@pytest.mark.parametrize("confidence", [0, 1, -0.5, 1.5, 95])
def test_mean_ci_rejects_bad_confidence(confidence):
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0, 3.0], confidence)


def test_binomial_half_width_is_the_wilson_interval_by_hand():
    """Wilson: centre (k + z²/2) / (n + z²), half-width z / (n + z²) * sqrt(k (n - k) / n + z² / 4)."""
    z = sps.norm.ppf(0.975)
    for acc, n in ((0.8, 10_000), (0.563, 1000), (0.39, 6000), (0.1, 40)):
        k = round(acc * n)
        wilson = z / (n + z**2) * math.sqrt(k * (n - k) / n + z**2 / 4)
        assert binomial_half_width(acc, n) == pytest.approx(wilson, rel=1e-9)
    got = binomial_half_width(0.8, 10_000)
    assert got == pytest.approx(0.00784, abs=1e-5)  # ~0.78 points, as the normal approximation says here
    # wider at a lower n, not zero at a perfect accuracy (unlike the normal approximation)
    assert binomial_half_width(0.8, 100) > 9 * got
    assert 0 < binomial_half_width(1.0, 100) < 0.025
    assert binomial_half_width(0.8, 10_000, confidence=0.9) < got


@pytest.mark.parametrize(("acc", "n"), [(1.2, 100), (-0.1, 100), (0.5, 0)])
def test_binomial_half_width_rejects_impossible_inputs(acc, n):
    with pytest.raises(ValueError, match="accuracy must be in"):
        binomial_half_width(acc, n)


# ------------------------------------------------------------------ benjamini_hochberg


def ref_bh(p) -> np.ndarray:
    """Benjamini-Hochberg by the textbook: sort, p*m/rank, cumulative minimum from the top, clip to 1."""
    p = np.asarray(p, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adj = np.empty(m)
    running = np.inf
    for i in range(m - 1, -1, -1):
        running = min(running, scaled[i])
        adj[i] = min(running, 1.0)
    out = np.empty(m)
    out[order] = adj
    return out


def test_ref_bh_by_hand():
    """The oracle itself on a textbook case: (0.01, 0.04, 0.03, 0.2) -> (0.04, 0.0533, 0.0533, 0.2)."""
    np.testing.assert_allclose(ref_bh([0.01, 0.04, 0.03, 0.2]), [0.04, 0.16 / 3, 0.16 / 3, 0.2])


@pytest.mark.parametrize("seed", range(5))
def test_bh_matches_reference_on_random_pvalues(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, 40) ** 3  # many small ones, so the cumulative minimum matters
    got = benjamini_hochberg(p)
    np.testing.assert_allclose(got, ref_bh(p), rtol=1e-12, atol=0)
    assert np.all(got >= p) and np.all(got <= 1)


def test_bh_matches_reference_with_ties_zero_and_one():
    rng = np.random.default_rng(7)
    p = rng.choice([0.0, 0.001, 0.01, 0.02, 0.04, 0.3, 1.0], size=30)  # heavy ties
    got = benjamini_hochberg(p)
    np.testing.assert_allclose(got, ref_bh(p), rtol=1e-12, atol=0)
    for v in np.unique(p):  # tied p-values get one adjusted value
        assert np.unique(got[p == v]).size == 1
    assert np.all(got[p == 0.0] == 0.0) and np.all(got[p == 1.0] == 1.0)


def test_bh_by_hand():
    got = benjamini_hochberg([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(got, [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    np.testing.assert_allclose(benjamini_hochberg([0.5, 0.9, 0.6]), [0.9, 0.9, 0.9])  # all -> the largest


def test_bh_keeps_nan_positions_and_adjusts_only_the_others():
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.2])
    got = benjamini_hochberg(p)
    assert np.isnan(got[[1, 4]]).all()
    ok = ~np.isnan(p)
    # m is the number of real p-values (4), not the length (6)
    np.testing.assert_allclose(got[ok], ref_bh(p[ok]))
    np.testing.assert_allclose(got[ok], [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert got.shape == p.shape


def test_bh_is_monotone_in_p():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, 100)
    got = benjamini_hochberg(p)
    order = np.argsort(p)
    assert np.all(np.diff(got[order]) >= 0)


@pytest.mark.parametrize("p", [[np.nan, np.nan, np.nan], [np.nan]])
def test_bh_all_nan(p):
    got = benjamini_hochberg(p)
    assert got.shape == (len(p),) and np.isnan(got).all()


def test_bh_empty_and_single():
    assert benjamini_hochberg([]).shape == (0,)
    np.testing.assert_allclose(benjamini_hochberg([0.03]), [0.03])


# ------------------------------------------------------------------ mcnemar_exact


def ref_two_sided_binomial(k: int, n: int) -> float:
    """Exact two-sided binomial test (p = 1/2): sum of the pmf values not above the observed one."""
    pmf = sps.binom.pmf(np.arange(n + 1), n, 0.5)
    return float(min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum()))


def test_mcnemar_counts_discordant_pairs_by_hand():
    a = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0]
    b = [1, 0, 0, 1, 0, 1, 0, 0, 1, 0]
    # right under a only: images 1, 2, 7; under b only: image 3; concordant: the rest
    got = mcnemar_exact(a, b)
    assert (got["a_only"], got["b_only"]) == (3, 1)
    assert got["pvalue"] == pytest.approx(ref_two_sided_binomial(3, 4))
    assert got["pvalue"] == pytest.approx(2 * (1 + 4) / 16)  # P(X<=1) + P(X>=3) for Bin(4, 1/2)
    swapped = mcnemar_exact(b, a)
    assert (swapped["a_only"], swapped["b_only"]) == (1, 3)
    assert swapped["pvalue"] == pytest.approx(got["pvalue"])


def test_mcnemar_zero_vs_five_by_hand():
    a = np.array([False] * 5 + [True] * 3 + [False] * 2)
    b = np.array([True] * 5 + [True] * 3 + [False] * 2)
    got = mcnemar_exact(a, b)
    assert (got["a_only"], got["b_only"]) == (0, 5)
    assert got["pvalue"] == pytest.approx(2 * 0.5**5)


@pytest.mark.parametrize(("a_only", "b_only"), [(1, 0), (2, 9), (7, 3), (12, 12), (30, 18), (0, 40)])
def test_mcnemar_pvalue_is_the_exact_binomial(a_only, b_only):
    rng = np.random.default_rng(a_only * 100 + b_only)
    both, neither = 11, 6
    a = np.array([1] * a_only + [0] * b_only + [1] * both + [0] * neither, dtype=bool)
    b = np.array([0] * a_only + [1] * b_only + [1] * both + [0] * neither, dtype=bool)
    perm = rng.permutation(a.size)
    got = mcnemar_exact(a[perm], b[perm])
    assert (got["a_only"], got["b_only"]) == (a_only, b_only)
    assert got["pvalue"] == pytest.approx(ref_two_sided_binomial(a_only, a_only + b_only), rel=1e-9)
    if a_only == b_only:
        assert got["pvalue"] == pytest.approx(1.0)


def test_mcnemar_no_discordant_pairs_gives_one():
    a = np.array([1, 0, 1, 1, 0], dtype=bool)
    got = mcnemar_exact(a, a.copy())
    assert got == {"a_only": 0, "b_only": 0, "pvalue": 1.0}


def test_mcnemar_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        mcnemar_exact([1, 0, 1], [1, 0])


# ------------------------------------------------------------------ paired_drop_gap

HIGH = [0, 1, 2]
LOW = [3, 4, 5, 6, 7, 8, 9]
#: unequal class sizes, so that class-balanced and image-pooled group means differ
CLASS_SIZES = [60, 50, 40, 35, 30, 25, 20, 18, 15, 12]


def make_labels(sizes=CLASS_SIZES, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))


def tail_effect(labels, runs=3, base=0.8, tail_loss=0.3, seed=0):
    """(ref, new) correctness: low-class images lose correctness with probability ``tail_loss``."""
    rng = np.random.default_rng(seed)
    ref = rng.random((runs, labels.size)) < base
    lose = np.isin(labels, LOW)[None, :] & (rng.random(ref.shape) < tail_loss)
    return ref, ref & ~lose


def exchangeable_null(labels, runs=2, flip=0.15, seed=0):
    """(ref, new) correctness with no effect: random flips, ref and new swapped at random per image."""
    rng = np.random.default_rng(seed)
    acc = np.where(np.isin(labels, HIGH), 0.85, 0.55)  # head and tail differ in accuracy, not in drop
    a = rng.random((runs, labels.size)) < acc
    b = a ^ (rng.random(a.shape) < flip)
    swap = rng.random(a.shape) < 0.5
    return np.where(swap, b, a), np.where(swap, a, b)


def test_drop_gap_point_estimate_is_the_direct_computation():
    labels = make_labels()
    ref, new = tail_effect(labels, runs=3, tail_loss=0.2, seed=1)
    rng = np.random.default_rng(5)
    new = new ^ (rng.random(new.shape) < 0.05)  # some head changes too, in both directions
    got = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=200)
    est, high, low = direct_gap(labels, ref, new, HIGH, LOW)
    assert got["estimate"] == pytest.approx(est, abs=1e-9)
    assert got["drop_high"] == pytest.approx(high, abs=1e-9)
    assert got["drop_low"] == pytest.approx(low, abs=1e-9)
    assert got["estimate"] == pytest.approx(got["drop_low"] - got["drop_high"], abs=1e-9)
    # class-balanced, not pooled over the group's images: the two differ on this data
    drop = (ref.astype(float) - new).mean(0)
    pooled = 100 * (drop[np.isin(labels, LOW)].mean() - drop[np.isin(labels, HIGH)].mean())
    assert abs(pooled - est) > 0.1


def test_drop_gap_single_run_by_hand():
    """Two classes of 4 images; one run: class 1 loses 2 of 4 images, class 0 loses 1 and gains 1."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    ref = np.array([1, 1, 0, 1, 1, 1, 1, 0])
    new = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    got = paired_drop_gap(labels, ref, new, [0], [1], n_boot=100)
    assert got["drop_high"] == pytest.approx(0.0)
    assert got["drop_low"] == pytest.approx(50.0)
    assert got["estimate"] == pytest.approx(50.0)


def test_drop_gap_strong_effect_is_detected():
    labels = make_labels()
    ref, new = tail_effect(labels, runs=3, tail_loss=0.3)
    got = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=2000)
    assert got["estimate"] > 10
    assert got["drop_high"] == pytest.approx(0.0)
    assert 0 < got["ci_low"] < got["estimate"] < got["ci_high"]
    assert got["pvalue"] < 0.01
    assert got["pvalue"] == pytest.approx(1 / 2001)  # no bootstrap replicate at or below 0
    assert got["pvalue_two_sided"] < 0.01


def test_drop_gap_identical_classifiers():
    labels = make_labels()
    ref, _ = tail_effect(labels)
    got = paired_drop_gap(labels, ref, ref.copy(), HIGH, LOW, n_boot=500)
    assert got["estimate"] == 0.0 and got["ci_low"] == 0.0 and got["ci_high"] == 0.0
    assert got["drop_high"] == 0.0 and got["drop_low"] == 0.0
    assert got["pvalue"] == 1.0 and got["pvalue_two_sided"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_drop_gap_under_the_null_contains_zero(seed):
    labels = make_labels(seed=seed)
    ref, new = exchangeable_null(labels, runs=3, seed=seed)
    got = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=1000, seed=seed)
    assert abs(got["estimate"]) < 6  # ~0 (its standard error here is ~2.5 points)
    assert got["ci_low"] < 0 < got["ci_high"]
    assert got["pvalue"] > 0.05 and got["pvalue_two_sided"] > 0.05


def test_drop_gap_pvalues_are_roughly_uniform_under_the_null():
    sizes = [30] * 10
    pvals, hits = [], 0
    for i in range(200):
        labels = make_labels(sizes, seed=i)
        ref, new = exchangeable_null(labels, runs=2, seed=1000 + i)
        got = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=200, seed=i)
        pvals.append(got["pvalue"])
        hits += got["ci_low"] <= 0 <= got["ci_high"]
    pvals = np.array(pvals)
    assert np.mean(pvals < 0.05) < 0.1
    assert 0.35 < np.mean(pvals < 0.5) < 0.65
    assert 0.1 < np.mean(pvals < 0.25) < 0.4
    assert hits / 200 > 0.88  # the 95% interval covers the true gap (0) about 95% of the time


def test_drop_gap_has_power_against_a_moderate_effect():
    """The same simulation with a moderate tail loss: the one-sided test usually rejects."""
    sizes = [30] * 10
    rejected = 0
    for i in range(50):
        labels = make_labels(sizes, seed=i)
        ref, new = tail_effect(labels, runs=2, tail_loss=0.15, seed=2000 + i)
        rejected += paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=200, seed=i)["pvalue"] < 0.05
    assert rejected / 50 > 0.8


def test_drop_gap_is_deterministic_for_a_seed():
    labels = make_labels()
    ref, new = exchangeable_null(labels, seed=4)
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    a = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=300, seed=11)
    b = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=300, seed=11)
    c = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=300, seed=12)
    assert a == b
    assert c["estimate"] == a["estimate"]  # the point estimate does not depend on the seed
    assert (c["ci_low"], c["ci_high"]) != (a["ci_low"], a["ci_high"])
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002 (global RNG untouched)


def test_drop_gap_resamples_within_classes():
    """Every image of a class has the same drop: a class-stratified bootstrap has zero spread."""
    labels = make_labels()
    per_class_drop = np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 1], dtype=bool)
    ref = np.ones((2, labels.size), dtype=bool)
    new = ~per_class_drop[labels][None, :].repeat(2, 0)
    got = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=300)
    expected = 100 * (per_class_drop[LOW].mean() - per_class_drop[HIGH].mean())
    assert got["estimate"] == pytest.approx(expected)
    assert got["ci_low"] == pytest.approx(expected) and got["ci_high"] == pytest.approx(expected)


def test_drop_gap_repeated_runs_change_nothing():
    """The bootstrap resamples images (the same for all runs): two copies of one run = that run."""
    labels = make_labels()
    ref, new = tail_effect(labels, runs=1, tail_loss=0.1, seed=3)
    one = paired_drop_gap(labels, ref[0], new[0], HIGH, LOW, n_boot=300, seed=5)
    two = paired_drop_gap(labels, np.vstack([ref, ref]), np.vstack([new, new]), HIGH, LOW, n_boot=300, seed=5)
    assert one == pytest.approx(two)


@pytest.mark.parametrize(("kind", "seed"), [("null", 1), ("null", 4), ("tail", 8)])
def test_drop_gap_swapping_groups_negates_and_gives_the_two_sided_pvalue(kind, seed):
    """Same classes, same draws: swapping high and low negates every bootstrap replicate."""
    labels = make_labels(seed=seed)
    if kind == "null":
        ref, new = exchangeable_null(labels, runs=3, seed=seed)
    else:  # a small effect: many replicates exactly at 0
        ref, new = tail_effect(labels, runs=2, tail_loss=0.01, seed=seed)
    fwd = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=1000, seed=3)
    rev = paired_drop_gap(labels, ref, new, LOW, HIGH, n_boot=1000, seed=3)
    assert rev["estimate"] == pytest.approx(-fwd["estimate"])
    assert rev["ci_low"] == pytest.approx(-fwd["ci_high"]) and rev["ci_high"] == pytest.approx(-fwd["ci_low"])
    assert 0.01 < fwd["pvalue"] < 0.99  # an intermediate case, not a clipped one
    assert fwd["pvalue_two_sided"] == pytest.approx(min(1.0, 2 * min(fwd["pvalue"], rev["pvalue"])))
    assert rev["pvalue_two_sided"] == pytest.approx(fwd["pvalue_two_sided"])
    toward = fwd if fwd["estimate"] > 0 else rev  # the one-sided test in the direction of the effect
    assert toward["estimate"] > 0
    assert toward["pvalue"] < 0.5
    assert toward["pvalue"] <= fwd["pvalue_two_sided"] <= 1
    # the one-sided p-values of the two directions add up to 1 plus the share of replicates at 0
    assert fwd["pvalue"] + rev["pvalue"] >= 1


@pytest.mark.parametrize("tail_loss", [0.0, 0.01, 0.05, 0.3])
def test_drop_gap_two_sided_pvalue_bounds(tail_loss):
    labels = make_labels()
    ref, new = tail_effect(labels, runs=2, tail_loss=tail_loss, seed=9)
    got = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=500)
    assert got["estimate"] >= 0  # the effect (if any) is in the tested direction
    assert 0 < got["pvalue"] <= got["pvalue_two_sided"] <= 1


def test_drop_gap_narrower_interval_at_lower_confidence():
    labels = make_labels()
    ref, new = exchangeable_null(labels, seed=6)
    wide = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=1000, confidence=0.95)
    narrow = paired_drop_gap(labels, ref, new, HIGH, LOW, n_boot=1000, confidence=0.5)
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]


def test_drop_gap_shape_mismatch_raises():
    labels = make_labels()
    ref, new = tail_effect(labels, runs=2)
    with pytest.raises(ValueError, match="do not match"):
        paired_drop_gap(labels, ref, new[:, :-1], HIGH, LOW, n_boot=10)
    with pytest.raises(ValueError, match="do not match"):
        paired_drop_gap(labels, ref, new[:1], HIGH, LOW, n_boot=10)
    with pytest.raises(ValueError, match="do not match"):
        paired_drop_gap(labels[:-1], ref[:, :-1], new, HIGH, LOW, n_boot=10)
    with pytest.raises(ValueError, match="do not match"):
        paired_drop_gap(labels[:-1], ref, new, HIGH, LOW, n_boot=10)


def test_drop_gap_class_without_images_raises():
    labels = make_labels()
    ref, new = tail_effect(labels, runs=2)
    with pytest.raises(ValueError, match="class 10 has no test images"):
        paired_drop_gap(labels, ref, new, HIGH, [*LOW, 10], n_boot=10)
    keep = labels != 4
    with pytest.raises(ValueError, match="class 4 has no test images"):
        paired_drop_gap(labels[keep], ref[:, keep], new[:, keep], HIGH, LOW, n_boot=10)
