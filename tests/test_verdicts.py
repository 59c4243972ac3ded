"""The verdict rule (chapter 4), the paired tail difference and chapter 4's report helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ltmpq import uncertainty, verdicts
from ltmpq.analysis import ch4_mitigation as ch4
from ltmpq.data import class_groups
from ltmpq.results import decode_predictions, encode_predictions
from ltmpq.sensitivity import sensitivity_tables
from ltmpq.verdicts import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED


@pytest.mark.parametrize(
    ("lo", "hi", "threshold", "direction", "expected"),
    [
        (0.5, 2.0, 0.0, "greater", SUPPORTED),
        (-2.0, -0.5, 0.0, "greater", NOT_SUPPORTED),
        (-0.5, 2.0, 0.0, "greater", INCONCLUSIVE),
        (10.5, 12.0, 10.0, "greater", SUPPORTED),
        (8.0, 9.9, 10.0, "greater", NOT_SUPPORTED),
        (9.0, 11.0, 10.0, "greater", INCONCLUSIVE),
        (-0.3, 0.4, 0.5, "less", SUPPORTED),
        (0.6, 1.4, 0.5, "less", NOT_SUPPORTED),
        (0.2, 0.9, 0.5, "less", INCONCLUSIVE),
        (float("nan"), float("nan"), 0.0, "greater", INCONCLUSIVE),
        (0.0, 1.0, 0.0, "greater", INCONCLUSIVE),  # touching the threshold is not excluding it
        (0.0, 0.0, 0.0, "greater", NOT_SUPPORTED),  # exactly no effect in every seed
        (0.5, 0.5, 0.5, "less", NOT_SUPPORTED),
    ],
)
def test_verdict_rule(lo, hi, threshold, direction, expected):
    assert verdicts.verdict(lo, hi, threshold, direction) == expected


def test_evidence_on_synthetic_seeds_gives_the_expected_words():
    rng = np.random.default_rng(0)
    clear_gap = 20 + rng.normal(0, 1, 5)  # a 20-point gap, seed noise 1 point
    assert verdicts.evidence(clear_gap, 10.0)["verdict"] == SUPPORTED
    assert verdicts.evidence(clear_gap, 25.0)["verdict"] == NOT_SUPPORTED
    noisy = rng.normal(0.2, 3, 5)
    assert verdicts.evidence(noisy, 0.0)["verdict"] == INCONCLUSIVE
    tiny_cost = np.array([0.1, -0.1, 0.05, 0.0, 0.02])
    ev = verdicts.evidence(tiny_cost, 0.5, "less")
    assert ev["verdict"] == SUPPORTED and ev["pvalue"] < 0.01 and ev["n"] == 5
    assert ev["ci_low"] < ev["estimate"] < ev["ci_high"]


def test_evidence_matches_a_t_interval():
    v = np.array([1.0, 2.0, 3.0, 4.0])
    ev = verdicts.evidence(v, 0.0)
    mean, half, n = uncertainty.mean_ci(v)
    assert ev["estimate"] == pytest.approx(2.5)
    assert (ev["ci_low"], ev["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert ev["pvalue"] == pytest.approx(0.03047, abs=5e-5)  # two-sided t-test: t = 3.873, df = 3


def test_evidence_with_identical_values_and_one_seed():
    assert verdicts.evidence([2.0, 2.0, 2.0], 0.0)["pvalue"] == 0.0
    assert verdicts.evidence([2.0, 2.0, 2.0], 3.0)["pvalue"] == 0.0  # two-sided: 2 is not 3 either
    assert verdicts.evidence([3.0, 3.0, 3.0], 3.0)["pvalue"] == 1.0
    one = verdicts.evidence([5.0], 0.0)
    assert one["verdict"] == INCONCLUSIVE and np.isnan(one["pvalue"])


def test_combine_parts():
    assert verdicts.combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert verdicts.combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert verdicts.combine([INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED]) == NOT_SUPPORTED


def test_side_words_for_chapter3():
    assert verdicts.side(2.0, 1.0, "tail", "head") == "tail"
    assert verdicts.side(-2.0, 1.0, "tail", "head") == "head"
    assert verdicts.side(0.5, 1.0, "tail", "head") == "–"
    assert verdicts.side(0.5, float("nan"), "tail", "head") == "–"
    # an interval touching zero is neither side, whichever way it touches (zero in every seed)
    assert verdicts.side(0.0, 0.0, "tail", "head") == "–"
    assert verdicts.side(1.0, 1.0, "tail", "head") == "–" and verdicts.side(-1.0, 1.0, "tail", "head") == "–"


def test_verdict_bad_inputs():
    with pytest.raises(ValueError, match="direction must be one of"):
        verdicts.verdict(0, 1, 0, "bigger")
    with pytest.raises(ValueError, match="ci_low 2 is above ci_high 1"):
        verdicts.verdict(2, 1)
    with pytest.raises(ValueError, match="non-empty list"):
        verdicts.combine([])
    with pytest.raises(ValueError, match="non-empty list"):
        verdicts.combine(["maybe"])


def test_paired_difference_against_a_direct_computation():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 50)
    a = rng.random((3, 200)) < 0.6
    b = a.copy()
    b[:, labels == 3] = True  # B is better on class 3 only
    res = uncertainty.paired_difference(labels, a, b, [2, 3], n_boot=500, seed=0)
    expected = 100 * np.mean([(b.astype(float) - a)[:, labels == c].mean() for c in (2, 3)])
    assert res["estimate"] == pytest.approx(expected)
    assert res["ci_low"] > 0 and res["pvalue"] < 0.01
    same = uncertainty.paired_difference(labels, a, a, [0, 1, 2, 3], n_boot=200)
    assert same["estimate"] == 0 and same["ci_low"] == same["ci_high"] == 0 and same["pvalue"] == 1.0
    with pytest.raises(ValueError, match="do not match"):
        uncertainty.paired_difference(labels, a, b[:, :10], [0])
    with pytest.raises(ValueError, match="at least one class"):
        uncertainty.paired_difference(labels, a, b, [])


def _stored_sweep(rng, n_per_class=20, n_classes=10, layers=("L1", "L2", "L3"), bits=(3, 4)):
    labels = np.repeat(np.arange(n_classes), n_per_class)
    flt = np.where(rng.random(labels.size) < 0.8, labels, rng.integers(0, n_classes, labels.size))
    sweep = {"float": encode_predictions(flt), "layers": {}}
    for n in layers:
        for b in bits:
            q = np.where(rng.random(labels.size) < 0.15, rng.integers(0, n_classes, labels.size), flt)
            sweep["layers"].setdefault(n, {})[str(b)] = {
                "predictions": encode_predictions(q),
                "kl": rng.random(n_classes).tolist(),
            }
    counts = [5000 // (i + 1) for i in range(n_classes)]
    return {"val_labels": encode_predictions(labels), "train_counts": counts, "sweep": {"crt": sweep}}, labels


def _direct_losses(r, head, bits, classes=None, images=None):
    """Oracle: points lost per layer, straight from the stored strings on the kept images."""
    labels = decode_predictions(r["val_labels"])
    keep = np.ones(labels.size, bool) if classes is None else np.isin(labels, list(classes))
    if images is not None:
        keep &= np.isin(np.arange(labels.size), images)
    sweep = r["sweep"][head]
    base = np.mean(decode_predictions(sweep["float"])[keep] == labels[keep])
    out = {}
    for layer, e in sweep["layers"].items():
        q = decode_predictions(e[str(bits)]["predictions"])
        out[layer] = 100 * (base - np.mean(q[keep] == labels[keep]))
    return out


def test_layer_losses_are_points_lost_on_the_kept_images():
    r, labels = _stored_sweep(np.random.default_rng(2))
    groups = class_groups(r["train_counts"])
    for metric, classes in (("overall", None), ("tail", groups["tail"]), ("head", groups["head"])):
        got = ch4.layer_losses(r, "crt", 4, metric)
        assert got.to_dict() == pytest.approx(_direct_losses(r, "crt", 4, classes), abs=1e-12)
    # and on a resample of the images (sorted, as split_halves gives them)
    images = np.unique(np.random.default_rng(3).choice(labels.size, labels.size))
    got = ch4.layer_losses(r, "crt", 3, "tail", images)
    assert got.to_dict() == pytest.approx(_direct_losses(r, "crt", 3, groups["tail"], images), abs=1e-12)
    # the same numbers the allocations use
    tables = sensitivity_tables(r["sweep"]["crt"], r["val_labels"], r["train_counts"], groups, ("tail",))
    np.testing.assert_array_equal(
        ch4.layer_losses(r, "crt", 4, "tail").to_numpy(), 100 * tables["tail"][4].to_numpy()
    )


def test_sensitivity_tables_can_keep_one_bit_width():
    r, _ = _stored_sweep(np.random.default_rng(5))
    groups = class_groups(r["train_counts"])
    full = sensitivity_tables(r["sweep"]["crt"], r["val_labels"], r["train_counts"], groups, ("overall",))
    one = sensitivity_tables(
        r["sweep"]["crt"], r["val_labels"], r["train_counts"], groups, ("overall",), bits=[3]
    )
    assert list(one["overall"].columns) == [3]
    pd.testing.assert_series_equal(one["overall"][3], full["overall"][3])


def test_split_halves_are_disjoint_and_stratified():
    labels = np.repeat(np.arange(10), 100)
    a, b = ch4.split_halves(labels, np.random.default_rng(0))
    assert not set(a) & set(b) and len(a) + len(b) == labels.size
    assert (np.bincount(labels[a]) == 50).all() and (np.bincount(labels[b]) == 50).all()


def test_rank_stability_of_clearly_ordered_layers_is_perfect():
    """Layers that break 0%, 20%, 50% and 80% of every class's images rank alike on any half."""
    labels = np.repeat(np.arange(10), 40)
    flt = labels.copy()
    sweep = {"float": encode_predictions(flt), "layers": {}}
    for n, frac in (("L1", 0.0), ("L2", 0.2), ("L3", 0.5), ("L4", 0.8)):
        q = flt.copy()
        broken = (np.arange(labels.size) % 40) < frac * 40  # the same share of every class
        q[broken] = (labels[broken] + 1) % 10
        sweep["layers"][n] = {"4": {"predictions": encode_predictions(q), "kl": [0.0] * 10}}
    r = {"val_labels": encode_predictions(labels), "train_counts": [100] * 10, "sweep": {"crt": sweep}}
    stab = ch4.rank_stability(r, "crt", 4, n_splits=5, seed=0)
    assert list(stab.columns) == ["split", "same", "cross"] and len(stab) == 5
    np.testing.assert_allclose(stab[["same", "cross"]].to_numpy(), 1.0)
    losses = ch4.layer_losses(r, "crt", 4)
    np.testing.assert_allclose(losses.to_numpy(), [0, 20, 50, 80])


# ------------------------------------------------------------------ the review's rules


def test_the_p_value_is_two_sided_and_agrees_with_the_interval():
    v = np.array([0.5, 1.5, 1.0, 2.0, 1.2])
    ev = verdicts.evidence(v, 0.0, "greater")
    assert ev["pvalue"] == pytest.approx(sps.ttest_1samp(v, 0.0).pvalue)  # two-sided, not one-sided
    assert (ev["pvalue"] < 0.05) == (ev["ci_low"] > 0 or ev["ci_high"] < 0)
    below = verdicts.evidence(-v, 0.0, "greater")  # the same distance on the other side: the same p
    assert below["pvalue"] == pytest.approx(ev["pvalue"]) and below["verdict"] == NOT_SUPPORTED
    assert verdicts.evidence([1.0, 1.0, 1.0], 1.0)["pvalue"] == 1.0
    assert verdicts.evidence([2.0, 2.0, 2.0], 1.0)["pvalue"] == 0.0


@pytest.mark.parametrize(
    ("low", "high", "blog_value", "said"),
    [(1.0, 2.0, 1.5, "yes"), (1.0, 2.0, 2.5, "no: ours lower"), (1.0, 2.0, 0.5, "no: ours higher"),
     (1.0, 2.0, None, "–"), (np.nan, np.nan, 1.0, "–"), (1.0, 2.0, 2.0, "yes")],
)  # fmt: skip
def test_reproduces_asks_whether_our_interval_covers_the_blog(low, high, blog_value, said):
    assert verdicts.reproduces(low, high, blog_value) == said


def test_where_a_claim_holds_groups_its_parts_by_condition():
    w = verdicts.where_it_holds
    assert w(
        {"6 bits": [NOT_SUPPORTED, INCONCLUSIVE], "4 bits": [INCONCLUSIVE] * 2, "3 bits": [SUPPORTED] * 2}
    ) == ("holds at 3 bits; not at 6 bits; inconclusive at 4 bits")
    assert w({"6 bits": [NOT_SUPPORTED], "4 bits": [NOT_SUPPORTED], "3 bits": [SUPPORTED]}) == (
        "holds at 3 bits; not at 6 and 4 bits"
    )
    assert w({"": [SUPPORTED, SUPPORTED]}) == SUPPORTED  # one condition: the verdict itself
    assert w({"a": [INCONCLUSIVE], "b": [INCONCLUSIVE]}) == INCONCLUSIVE
    with pytest.raises(ValueError, match="at least one condition"):
        w({})
