"""The verdict rule and the thresholds that turn the blog's words into numbers (chapters 1-4).

A (sub-)claim is "some quantity is greater (or less) than a threshold", e.g. "the tail loses at
least 1 point more than the head at 6 bits". The quantity is measured once per seed; the rule:

* **supported**: the whole 95% confidence interval (Student t over seeds) lies on the claimed
  side of the threshold;
* **not supported**: the whole interval lies on the other side, the threshold included (an
  effect that is exactly zero in every seed does not support "greater than zero");
* **inconclusive**: the interval contains the threshold (or there are too few seeds).

A claim made of several parts is supported when every part is, not supported when any part is
not, and inconclusive otherwise. The claims and their parts are in :mod:`ltmpq.claims`; the
thresholds below are the one place where the blog's words become numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import stats as sps

from .uncertainty import mean_ci

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
DIRECTIONS = ("greater", "less")

#: Claim 3's "much more": the tail loses at least this many accuracy points more than the head.
MUCH_MORE = 1.0
#: Claim 4's "almost no cost": tail-driven MPQ loses less than this many points of overall accuracy.
ALMOST_NO_COST = 0.5
#: Claim 2's "a gap of more than 10 points remains" (head minus tail accuracy, points).
GAP_REMAINS = 10.0


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def verdict(ci_low: float, ci_high: float, threshold: float = 0.0, direction: str = "greater") -> str:
    """The rule above for one interval: is the quantity ``direction`` than ``threshold``?"""
    _check_direction(direction)
    if np.isnan(ci_low) or np.isnan(ci_high):
        return INCONCLUSIVE
    if ci_low > ci_high:
        raise ValueError(f"ci_low {ci_low!r} is above ci_high {ci_high!r}")
    if direction == "greater":
        return SUPPORTED if ci_low > threshold else NOT_SUPPORTED if ci_high <= threshold else INCONCLUSIVE
    return SUPPORTED if ci_high < threshold else NOT_SUPPORTED if ci_low >= threshold else INCONCLUSIVE


def evidence(values, threshold: float = 0.0, direction: str = "greater", confidence: float = 0.95) -> dict:
    """Per-seed ``values`` of a quantity -> estimate, t-interval, one-sided p-value and verdict.

    The p-value tests H0 "the quantity is not ``direction`` than ``threshold``" (one-sample t).
    """
    _check_direction(direction)
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    mean, half, n = mean_ci(v, confidence)
    lo, hi = mean - half, mean + half
    p = float("nan")
    if n >= 2 and v.std() > 0:
        p = float(sps.ttest_1samp(v, threshold, alternative=direction).pvalue)
    elif n >= 2:  # identical values: the t statistic is undefined, the answer is not
        p = 0.0 if (mean > threshold if direction == "greater" else mean < threshold) else 1.0
    return {"estimate": mean, "ci_low": lo, "ci_high": hi, "n": n, "pvalue": p, "threshold": threshold,
            "direction": direction, "verdict": verdict(lo, hi, threshold, direction)}  # fmt: skip


def combine(verdicts: Iterable[str]) -> str:
    """A multi-part claim's verdict from its parts' verdicts."""
    vs = list(verdicts)
    unknown = [v for v in vs if v not in VERDICTS]
    if not vs or unknown:
        raise ValueError(f"verdicts must be a non-empty list of {VERDICTS}, got {vs!r}")
    if all(v == SUPPORTED for v in vs):
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in vs else INCONCLUSIVE


def side(mean: float, half: float, positive: str, negative: str, neither: str = "–") -> str:
    """Which side of zero a mean ± half-width interval lies on, in words (chapters 2-3): the rule
    above asked both ways, so an interval that touches zero (e.g. zero in every seed) is neither."""
    lo, hi = mean - half, mean + half
    if verdict(lo, hi, 0.0, "greater") == SUPPORTED:
        return positive
    return negative if verdict(lo, hi, 0.0, "less") == SUPPORTED else neither


def dominates(tail_gain, overall_change) -> bool:
    """Chapter 4's dominance rule, per seed paired differences against norm-driven allocation:
    the tail gains (interval above 0) while overall accuracy loses less than
    :data:`ALMOST_NO_COST` (interval above its negative)."""
    return (
        evidence(tail_gain, 0.0, "greater")["verdict"] == SUPPORTED
        and evidence(overall_change, -ALMOST_NO_COST, "greater")["verdict"] == SUPPORTED
    )
