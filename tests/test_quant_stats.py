"""Chapter 3's statistics (ltmpq.stats: BH, exact McNemar, paired drop-gap bootstrap) and its tables
(ltmpq.report: bits_order, quant_frame, quant_per_class, quant_predictions, drop_frame).

The stored quantized sweeps are built by hand in the shape ltmpq.experiments.quantized stores
(fractions, null for an empty group, predictions encoded as strings), so nothing is trained.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ltmpq import frames
from ltmpq.config import Stage1Config
from ltmpq.results import encode_predictions
from ltmpq.uncertainty import benjamini_hochberg, mcnemar_exact, paired_drop_gap

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


def direct_gap(labels, ref, new, high=HIGH, low=LOW) -> tuple[float, float, float]:
    """(mean over runs of low-group drop - high-group drop, mean high drop, mean low drop), in points."""
    ref, new = np.atleast_2d(ref), np.atleast_2d(new)
    gaps, highs, lows = [], [], []
    for r in range(ref.shape[0]):
        acc_drop = {c: ref[r, labels == c].mean() - new[r, labels == c].mean() for c in set(high) | set(low)}
        h = 100 * np.mean([acc_drop[c] for c in high])
        lo = 100 * np.mean([acc_drop[c] for c in low])
        gaps.append(lo - h)
        highs.append(h)
        lows.append(lo)
    return float(np.mean(gaps)), float(np.mean(highs)), float(np.mean(lows))


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
    est, high, low = direct_gap(labels, ref, new)
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


# ------------------------------------------------------------------ bits_order


def test_bits_order_float_first_then_fewer_bits():
    assert frames.bits_order({"4", "float", "8", "6"}) == ["float", "8", "6", "4"]
    assert frames.bits_order(["2", "16", "float", "8", "8"]) == ["float", "16", "8", "2"]  # numeric


def test_bits_order_without_float():
    assert frames.bits_order(["4", "16", "8", "2"]) == ["16", "8", "4", "2"]  # not "8" > "4" > "2" > "16"
    assert frames.bits_order([]) == []


# ------------------------------------------------------------------ stored quantized sweeps

IF = 0.01
SEEDS = (0, 1)
CFGS = [Stage1Config(imbalance_factor=IF, seed=s) for s in SEEDS]
BITS = ("float", "8", "4")
METHODS = ("crt", "lws")
N_CLASSES = 4
LABELS = [0, 1, 2, 3, 0, 1, 2, 3, 3, 0]
#: fractions at float; each bit-width loses LOSS[bits] (and the "ablate" variant 0.01 more)
FLOAT_METRICS = {"overall": 0.80, "head": 0.90, "tail": 0.50, "few": None}
LOSS = {"float": 0.0, "8": 0.02, "4": 0.30}


def metric(variant: str, seed: int, method: str, bits: str, name: str) -> float | None:
    v = FLOAT_METRICS[name]
    if v is None:
        return None
    return round(
        v + 0.01 * seed + (0.05 if method == "lws" else 0) - LOSS[bits] - (variant == "ablate") * 0.01, 6
    )


def per_class(seed: int, method: str, bits: str) -> list[float | None]:
    return [round(0.9 - 0.2 * c - LOSS[bits] + 0.01 * seed, 6) if c != 3 or bits != "4" else None
            for c in range(N_CLASSES)]  # fmt: skip


def predictions(seed: int, method: str, bits: str) -> np.ndarray:
    rng = np.random.default_rng([seed, METHODS.index(method), BITS.index(bits)])
    return rng.integers(0, N_CLASSES, len(LABELS))


def quant_result(cfg: Stage1Config, variant: str = "default", keep: bool = True) -> dict:
    """A stored quantized sweep (ltmpq.experiments.quantized's shape) of float, 8 and 4 bits."""
    entries = {}
    for bits in BITS:
        methods = {}
        for m in METHODS:
            ev = {
                "metrics": {k: metric(variant, cfg.seed, m, bits, k) for k in FLOAT_METRICS},
                "per_class": per_class(cfg.seed, m, bits),
            }
            val = {"metrics": {k: 0.1 for k in FLOAT_METRICS}, "per_class": [0.1] * N_CLASSES}
            if keep:
                ev["predictions"] = encode_predictions(predictions(cfg.seed, m, bits))
            methods[m] = {"val": val, "test": ev}
        entries[bits] = {"bit_map": {}, "size": {}, "methods": methods, "seconds": 0.1}
    return {"kind": "quantized", "profile": "cpu", "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
            "train_counts": [50, 20, 8, 2], "calibration_counts": None, "entries": entries}  # fmt: skip


def stage1_result(cfg: Stage1Config, labels=LABELS) -> dict:
    return {"kind": "stage1", "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed,
            "test_labels": list(labels)}  # fmt: skip


@pytest.fixture
def qres() -> dict[str, dict]:
    return {v: {c: quant_result(c, v, keep=v == "default") for c in CFGS} for v in ("default", "ablate")}


def test_quant_frame_rows_and_values(qres):
    df = frames.quant_frame(qres)
    assert list(df.columns) == ["variant", "imbalance_factor", "seed", "method", "bits", "metric", "value"]
    assert len(df) == 2 * len(CFGS) * len(BITS) * len(METHODS) * len(FLOAT_METRICS)
    assert not df.duplicated(["variant", "seed", "method", "bits", "metric"]).any()
    assert set(df["bits"]) == set(BITS) and set(df["variant"]) == {"default", "ablate"}
    assert (df["imbalance_factor"] == IF).all()
    for row in df.itertuples():
        v = metric(row.variant, row.seed, row.method, row.bits, row.metric)
        if v is None:
            assert math.isnan(row.value)
        else:
            assert row.value == pytest.approx(100 * v)
    one = df[(df.variant == "ablate") & (df.seed == 1) & (df.method == "lws") & (df.bits == "4")]
    assert one.set_index("metric")["value"]["overall"] == pytest.approx(55.0)  # 80 + 1 + 5 - 30 - 1


def test_quant_frame_val_split(qres):
    df = frames.quant_frame(qres, split="val")
    assert len(df) == 2 * len(CFGS) * len(BITS) * len(METHODS) * len(FLOAT_METRICS)
    assert df["value"].to_numpy() == pytest.approx(10.0)


def test_quant_per_class_rows_and_values(qres):
    df = frames.quant_per_class(qres["default"])
    assert list(df.columns) == ["imbalance_factor", "seed", "method", "bits", "class", "accuracy"]
    assert len(df) == len(CFGS) * len(BITS) * len(METHODS) * N_CLASSES
    for seed, method, bits, c, acc in df[["seed", "method", "bits", "class", "accuracy"]].itertuples(
        index=False
    ):
        v = per_class(seed, method, bits)[c]
        if v is None:
            assert math.isnan(acc)
        else:
            assert acc == pytest.approx(100 * v)
    assert df["accuracy"].isna().sum() == len(CFGS) * len(METHODS)  # class 3 at 4 bits


def test_drop_frame_against_the_float_row_of_the_same_run(qres):
    frame = frames.quant_frame(qres)
    out = frames.drop_frame(frame)
    assert len(out) == len(frame)
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    ref = {
        (r.variant, r.seed, r.method, r.metric): r.value for r in frame[frame.bits == "float"].itertuples()
    }
    for row in out.itertuples():
        base = ref[row.variant, row.seed, row.method, row.metric]
        if math.isnan(row.value):
            assert math.isnan(row.drop) and math.isnan(row.relative_drop)
            continue
        assert row.reference == pytest.approx(base)
        assert row.drop == pytest.approx(base - row.value)
        assert row.relative_drop == pytest.approx(100 * (base - row.value) / base)
        assert row.drop == pytest.approx(100 * LOSS[row.bits])  # by construction
    fl = out[out.bits == "float"]
    assert (fl["drop"].dropna() == 0).all()
    one = out[(out.variant == "default") & (out.seed == 0) & (out.method == "crt") & (out.bits == "4")]
    one = one.set_index("metric")
    assert one.loc["tail", "drop"] == pytest.approx(30.0)
    assert one.loc["tail", "relative_drop"] == pytest.approx(60.0)  # 30 of 50 points
    assert one.loc["head", "relative_drop"] == pytest.approx(100 * 30 / 90)


def test_drop_frame_other_reference(qres):
    out = frames.drop_frame(frames.quant_frame(qres), reference="8")
    row = out[(out.variant == "default") & (out.seed == 1) & (out.method == "lws") & (out.bits == "4")]
    row = row.set_index("metric").loc["overall"]
    assert row["reference"] == pytest.approx(84.0)  # 80 + 1 + 5 - 2
    assert row["drop"] == pytest.approx(28.0)
    assert row["relative_drop"] == pytest.approx(100 * 28 / 84)


def test_quant_predictions_decodes_the_stored_strings(qres):
    s1 = {c: stage1_result(c) for c in CFGS}
    labels, preds = frames.quant_predictions(qres["default"], s1, IF, "lws", "4")
    np.testing.assert_array_equal(labels, LABELS)
    assert preds.shape == (len(SEEDS), len(LABELS))
    for i, s in enumerate(SEEDS):
        np.testing.assert_array_equal(preds[i], predictions(s, "lws", "4"))
    assert not np.array_equal(preds[0], preds[1])


def test_quant_predictions_keeps_by_cfg_order_and_filters_the_imbalance_factor():
    other = Stage1Config(imbalance_factor=0.1, seed=0)
    cfgs = [CFGS[1], other, CFGS[0]]
    by_cfg = {c: quant_result(c) for c in cfgs}
    s1 = {c: stage1_result(c, labels=[1, 1] if c is other else LABELS) for c in cfgs}
    labels, preds = frames.quant_predictions(by_cfg, s1, IF, "crt", "float")
    assert preds.shape == (2, len(LABELS))
    np.testing.assert_array_equal(preds[0], predictions(1, "crt", "float"))
    np.testing.assert_array_equal(preds[1], predictions(0, "crt", "float"))


def test_quant_predictions_reads_list_encoded_predictions():
    """More than 10 classes: predictions are stored as a list of ints."""
    labels = np.arange(12)
    pred = np.array([11, 10, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0])
    assert isinstance(encode_predictions(pred), list)
    by_cfg = {c: quant_result(c) for c in CFGS}
    for c in CFGS:
        by_cfg[c]["entries"]["8"]["methods"]["crt"]["test"]["predictions"] = encode_predictions(pred)
    s1 = {c: stage1_result(c, labels) for c in CFGS}
    got_labels, preds = frames.quant_predictions(by_cfg, s1, IF, "crt", "8")
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(preds, np.stack([pred, pred]))


def test_quant_predictions_without_kept_predictions_raises(qres):
    s1 = {c: stage1_result(c) for c in CFGS}
    with pytest.raises(ValueError, match="keep_predictions"):
        frames.quant_predictions(qres["ablate"], s1, IF, "crt", "8")
    mixed = {CFGS[0]: quant_result(CFGS[0]), CFGS[1]: quant_result(CFGS[1], keep=False)}
    with pytest.raises(ValueError, match="did not keep its predictions"):
        frames.quant_predictions(mixed, s1, IF, "crt", "8")


def test_quant_predictions_on_different_test_labels_raises(qres):
    s1 = {CFGS[0]: stage1_result(CFGS[0]), CFGS[1]: stage1_result(CFGS[1], labels=LABELS[::-1])}
    with pytest.raises(ValueError, match="other images"):
        frames.quant_predictions(qres["default"], s1, IF, "crt", "8")


def test_quant_predictions_feed_the_paired_tests(qres):
    """From stored sweeps to McNemar and the drop gap: correctness is prediction == label."""
    s1 = {c: stage1_result(c) for c in CFGS}
    labels, ref = frames.quant_predictions(qres["default"], s1, IF, "crt", "float")
    _, new = frames.quant_predictions(qres["default"], s1, IF, "crt", "4")
    ok_ref, ok_new = ref == labels, new == labels
    got = paired_drop_gap(labels, ok_ref, ok_new, [0, 1], [2, 3], n_boot=100)
    assert got["estimate"] == pytest.approx(direct_gap(labels, ok_ref, ok_new, [0, 1], [2, 3])[0])
    mc = mcnemar_exact(ok_ref[0], ok_new[0])
    assert mc["a_only"] == int(np.sum(ok_ref[0] & ~ok_new[0]))
    assert mc["b_only"] == int(np.sum(~ok_ref[0] & ok_new[0]))
