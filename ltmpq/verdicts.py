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
    """Per-seed ``values`` of a quantity -> estimate, two-sided t-interval, two-sided p-value and
    verdict.

    The p-value tests H0 "the quantity equals ``threshold``" (one-sample t, two-sided), the
    same question the two-sided interval answers: p < 0.05 exactly when the interval excludes the
    threshold, on whichever side.
    """
    _check_direction(direction)
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    mean, half, n = mean_ci(v, confidence)
    lo, hi = mean - half, mean + half
    p = float("nan")
    if n >= 2 and v.std() > 0:
        p = float(sps.ttest_1samp(v, threshold).pvalue)
    elif n >= 2:  # identical values: the t statistic is undefined, the answer is not
        p = 1.0 if mean == threshold else 0.0
    return {"estimate": mean, "ci_low": lo, "ci_high": hi, "n": n, "pvalue": p, "threshold": threshold,
            "direction": direction, "verdict": verdict(lo, hi, threshold, direction)}  # fmt: skip


def reproduces(ci_low: float, ci_high: float, published: float | None) -> str:
    """Does our seed-level interval cover the blog's value? ``yes``, ``no: ours lower`` (the whole
    interval below it), ``no: ours higher``, or ``–`` where the blog gives no value or we have no
    interval. Agreement with the blog is asked apart from the verdict: a claim can hold here for
    other numbers than the blog's."""
    if published is None or np.isnan(published) or np.isnan(ci_low) or np.isnan(ci_high):
        return "–"
    if ci_high < published:
        return "no: ours lower"
    return "no: ours higher" if ci_low > published else "yes"


def combine(verdicts: Iterable[str]) -> str:
    """A multi-part claim's verdict from its parts' verdicts."""
    vs = list(verdicts)
    unknown = [v for v in vs if v not in VERDICTS]
    if not vs or unknown:
        raise ValueError(f"verdicts must be a non-empty list of {VERDICTS}, got {vs!r}")
    if all(v == SUPPORTED for v in vs):
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in vs else INCONCLUSIVE


#: How :func:`where_it_holds` words each verdict of a group of conditions.
HOLDS = {SUPPORTED: "holds", NOT_SUPPORTED: "not", INCONCLUSIVE: "inconclusive"}


def where_it_holds(by_condition: dict[str, Iterable[str]]) -> str:
    """A claim's verdict with its conditions, from its parts' verdicts grouped by the condition
    each is measured under (e.g. ``{"6 bits": [...], "3 bits": [...]}``): the verdict itself when
    every condition agrees, else which conditions it holds at, which not and which are open:
    ``"holds at 3 bits; not at 6 and 4 bits"``. Each condition's verdict is :func:`combine`'s."""
    each = {c: combine(vs) for c, vs in by_condition.items()}
    if not each:
        raise ValueError("a claim needs at least one condition with its parts' verdicts")
    if len(set(each.values())) == 1:
        return next(iter(each.values()))
    out = []
    for v in VERDICTS:
        conds = [c for c, w in each.items() if w == v]
        if conds:
            listed = conds[0] if len(conds) == 1 else ", ".join(conds[:-1]) + " and " + conds[-1]
            # "at 6 bits and 4 bits" reads as "at 6 and 4 bits" when they share their unit
            units = {c.split(" ", 1)[1] for c in conds if " " in c}
            if len(conds) > 1 and len(units) == 1 and all(" " in c for c in conds):
                unit = units.pop()
                heads = [c.split(" ", 1)[0] for c in conds]
                listed = ", ".join(heads[:-1]) + " and " + heads[-1] + " " + unit
            out.append(f"{HOLDS[v]} at {listed}")
    return "; ".join(out)


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
