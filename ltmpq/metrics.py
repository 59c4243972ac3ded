"""Accuracy metrics for long-tailed evaluation (chapters 1-4).

Built on ``sklearn.metrics``; adds group accuracies (head/tail, many/medium/few), worst-class
accuracy and accuracy re-weighted to the long-tailed (deployment) class prior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from .data import class_groups

#: Metric names in the order the book reports them.
METRICS = ("overall", "head", "tail", "many", "medium", "few", "balanced", "macro_f1",
           "worst_class", "deployment")  # fmt: skip


def group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int]) -> float:
    """Accuracy over the test images whose true class is in ``classes`` (NaN if there are none)."""
    mask = np.isin(y_true, list(classes))
    return float(np.mean(y_pred[mask] == y_true[mask])) if mask.any() else float("nan")


def metric(
    name: str, y_true, y_pred, train_counts: Sequence[int], groups: Mapping[str, Sequence[int]] | None = None
) -> float:
    """One metric of :func:`evaluate`, as a fraction; overall and group accuracies without the rest.

    The same expressions as :func:`evaluate` (so the same floats), fast enough for the hundreds of
    resamples of chapter 4's rank-stability analysis.
    """
    groups = class_groups(train_counts) if groups is None else groups
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if name == "overall":
        return float(np.mean(y_true == y_pred))
    if name in groups:
        return group_accuracy(y_true, y_pred, groups[name])
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {list(METRICS)}")
    return evaluate(y_true, y_pred, train_counts, groups)["metrics"][name]


def evaluate(
    y_true, y_pred, train_counts: Sequence[int], groups: Mapping[str, Sequence[int]] | None = None
) -> dict:
    """All metrics of one prediction vector, as fractions in [0, 1].

    Returns ``{"metrics": {...}, "per_class": [recall per class], "confusion": [[...]]}``.
    ``deployment`` weights each class's recall by its share of the long-tailed training set:
    the accuracy one would measure if test data followed the training prior.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-d of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    num_classes = len(train_counts)
    labels = np.arange(num_classes)
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} labels must be in [0, {num_classes}), got range [{v.min()}, {v.max()}]")
    groups = class_groups(train_counts) if groups is None else groups
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    present = np.isin(labels, y_true)  # classes absent from y_true have no recall
    prior = np.asarray(train_counts, dtype=float) / np.sum(train_counts)
    metrics = {
        "overall": float(np.mean(y_true == y_pred)),
        "balanced": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "worst_class": float(recall[present].min()),
        "deployment": float(np.sum(prior[present] * recall[present]) / prior[present].sum()),
    }
    for name, classes in groups.items():
        metrics[name] = group_accuracy(y_true, y_pred, classes)
    return {
        "metrics": metrics,
        "per_class": [float(r) if p else float("nan") for r, p in zip(recall, present, strict=True)],
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
