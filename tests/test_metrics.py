"""ltmpq.metrics.evaluate against sklearn and against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
)

from ltmpq.data import long_tail_counts
from ltmpq.metrics import METRICS, evaluate, group_accuracy

COUNTS_001 = long_tail_counts(4900, 0.01)


def _random_predictions(seed: int, per_class: int = 30, p_correct: float = 0.6):
    """A balanced test set and predictions that are right with a class-dependent probability."""
    rng = np.random.default_rng(seed)
    y_true = rng.permutation(np.repeat(np.arange(10), per_class))
    right = rng.random(len(y_true)) < p_correct * (1 - y_true / 20)
    y_pred = np.where(right, y_true, rng.integers(0, 10, len(y_true)))
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluate_agrees_with_sklearn(seed):
    y_true, y_pred = _random_predictions(seed)
    out = evaluate(y_true, y_pred, COUNTS_001)
    m = out["metrics"]
    labels = list(range(10))
    assert m["overall"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["balanced"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro"))
    np.testing.assert_allclose(out["per_class"], recall_score(y_true, y_pred, labels=labels, average=None))
    assert out["confusion"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    recall = np.array(out["per_class"])
    assert m["worst_class"] == pytest.approx(recall.min())
    prior = np.array(COUNTS_001) / sum(COUNTS_001)
    assert m["deployment"] == pytest.approx(float(prior @ recall))
    assert set(METRICS) <= set(m)
    assert all(0 <= v <= 1 for k, v in m.items() if not math.isnan(v))


@pytest.mark.parametrize("seed", [0, 3])
def test_head_tail_weighted_mean_is_overall_on_balanced_test(seed):
    # blog split: 4 head and 6 tail classes; on a balanced test set 0.4 head + 0.6 tail = overall
    y_true, y_pred = _random_predictions(seed, per_class=25)
    m = evaluate(y_true, y_pred, COUNTS_001)["metrics"]
    assert 0.4 * m["head"] + 0.6 * m["tail"] == pytest.approx(m["overall"])
    assert m["head"] == pytest.approx(np.mean((y_pred == y_true)[y_true < 4]))
    assert m["tail"] == pytest.approx(np.mean((y_pred == y_true)[y_true >= 4]))
    # Kang et al.'s groups at IF 0.01: many = classes 0-7, medium = 8-9, few empty (NaN)
    assert m["many"] == pytest.approx(np.mean((y_pred == y_true)[y_true <= 7]))
    assert m["medium"] == pytest.approx(np.mean((y_pred == y_true)[y_true >= 8]))
    assert math.isnan(m["few"])


def test_evaluate_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 1])
    counts = [60, 30, 10]
    out = evaluate(y_true, y_pred, counts, groups={"head": (0,), "tail": (1, 2)})
    m = out["metrics"]
    assert out["per_class"] == [0.75, 0.5, 0.5]
    assert out["confusion"] == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert m["overall"] == pytest.approx(5 / 8)
    assert m["balanced"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert m["worst_class"] == pytest.approx(0.5)
    assert m["head"] == pytest.approx(3 / 4)
    assert m["tail"] == pytest.approx(2 / 4)
    # deployment: recall weighted by the training prior 0.6 / 0.3 / 0.1
    assert m["deployment"] == pytest.approx(0.6 * 0.75 + 0.3 * 0.5 + 0.1 * 0.5)
    # macro F1: precision 3/4, 1/3, 1/1; recall 3/4, 1/2, 1/2
    f1 = [2 * p * r / (p + r) for p, r in ((3 / 4, 3 / 4), (1 / 3, 1 / 2), (1.0, 1 / 2))]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


def test_deployment_and_per_class_ignore_classes_absent_from_test():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    out = evaluate(y_true, y_pred, [60, 30, 10], groups={"g": (2,)})
    assert out["per_class"][:2] == [0.5, 1.0] and math.isnan(out["per_class"][2])
    m = out["metrics"]
    assert m["deployment"] == pytest.approx((0.6 * 0.5 + 0.3 * 1.0) / 0.9)
    assert m["worst_class"] == pytest.approx(0.5)
    assert math.isnan(m["g"])  # a group with no test image


def test_deployment_equals_overall_when_test_follows_training_prior():
    counts = [50, 30, 20]
    y_true = np.repeat([0, 1, 2], counts)
    rng = np.random.default_rng(7)
    y_pred = np.where(rng.random(len(y_true)) < 0.7, y_true, rng.integers(0, 3, len(y_true)))
    m = evaluate(y_true, y_pred, counts, groups={})["metrics"]
    assert m["deployment"] == pytest.approx(m["overall"])
    assert m["deployment"] != pytest.approx(m["balanced"])


def test_confusion_rows_sum_to_class_sizes():
    y_true, y_pred = _random_predictions(5)
    conf = np.array(evaluate(y_true, y_pred, COUNTS_001)["confusion"])
    assert conf.shape == (10, 10)
    assert conf.sum(1).tolist() == np.bincount(y_true, minlength=10).tolist()
    assert np.trace(conf) == int((y_true == y_pred).sum())


def test_group_accuracy():
    y_true = np.array([0, 1, 2, 2, 3])
    y_pred = np.array([0, 0, 2, 1, 3])
    assert group_accuracy(y_true, y_pred, [2]) == 0.5
    assert group_accuracy(y_true, y_pred, (0, 3)) == 1.0
    assert group_accuracy(y_true, y_pred, [1, 2]) == pytest.approx(1 / 3)
    assert math.isnan(group_accuracy(y_true, y_pred, [7]))


def test_evaluate_shape_and_label_errors():
    with pytest.raises(ValueError, match="1-d of equal length"):
        evaluate([0, 1, 2], [0, 1], COUNTS_001)
    with pytest.raises(ValueError, match="1-d"):
        evaluate(np.zeros((2, 2), int), np.zeros((2, 2), int), COUNTS_001)
    with pytest.raises(ValueError, match="labels"):
        evaluate([0, 10], [0, 1], COUNTS_001)
    with pytest.raises(ValueError, match="labels"):
        evaluate([-1, 0], [0, 1], COUNTS_001)


@pytest.mark.parametrize("bad_pred", [10, -1])
def test_evaluate_rejects_predictions_outside_the_classes(bad_pred):
    # A prediction outside [0, num_classes) counts as wrong in "overall" but is silently dropped
    # from the confusion matrix, so the two disagree; it should be rejected like a bad label.
    y_true = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    y_pred = y_true.copy()
    y_pred[0] = bad_pred
    with pytest.raises(ValueError, match="pred"):
        evaluate(y_true, y_pred, COUNTS_001)
