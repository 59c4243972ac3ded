"""Confidence intervals over seeds and over test images (chapters 1-4)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean and half-width of a Student-t confidence interval over runs (seeds).

    Returns ``(mean, half_width, n)``; the half-width is NaN for fewer than two runs.
    """
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if v.size == 0:
        return float("nan"), float("nan"), 0
    if v.size < 2:
        return float(v.mean()), float("nan"), 1
    half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(half), int(v.size)


def binomial_half_width(accuracy: float, n: int, confidence: float = 0.95) -> float:
    """Half-width of the normal-approximation interval of an accuracy measured on ``n`` images.

    The test-set noise of a single run (what the blog's single-run numbers carry).
    """
    z = stats.norm.ppf(0.5 + confidence / 2)
    return float(z * np.sqrt(accuracy * (1 - accuracy) / n))
