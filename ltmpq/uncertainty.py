"""Uncertainty: confidence intervals over seeds and over test images, and paired tests.

Named so as not to shadow ``scipy.stats``, on which it is built. Used by chapters 1-4.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
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
    """Half-width of the Wilson score interval (scipy's ``binomtest(...).proportion_ci``) of an
    accuracy measured on ``n`` images: the test-set noise of a single run (what the blog's
    single-run numbers carry). The accuracy is rounded to a whole number of correct images.
    """
    if not 0 <= accuracy <= 1 or n < 1:
        raise ValueError(f"accuracy must be in [0, 1] and n >= 1, got {accuracy!r} and {n!r}")
    ci = stats.binomtest(round(accuracy * n), n).proportion_ci(confidence, method="wilson")
    return float((ci.high - ci.low) / 2)


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy's ``false_discovery_control``); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test of two classifiers' correctness on the same images (chapters 3-4).

    Only discordant images count: ``a_only`` right under A and wrong under B, ``b_only`` the
    reverse. Two-sided p-value of a binomial test of ``a_only`` out of the discordant ones.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correctness vectors must have the same shape, got {a.shape} and {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(stats.binomtest(a_only, n, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "pvalue": p}


def per_class_mcnemar(labels, correct_a, correct_b, num_classes: int) -> pd.DataFrame:
    """:func:`mcnemar_exact` of A against B on each class's images, for every run (row).

    ``correct_a`` / ``correct_b``: (runs, images) correctness on the same test images. One row
    per (run, class): ``a_only``, ``b_only``, ``pvalue`` and ``delta`` = accuracy of B minus A
    (points). Multiple-testing correction is the caller's: its family differs by chapter.
    """
    labels = np.asarray(labels)
    a = np.atleast_2d(np.asarray(correct_a, dtype=bool))
    b = np.atleast_2d(np.asarray(correct_b, dtype=bool))
    if a.shape != b.shape or a.shape[1] != labels.size:
        raise ValueError(f"correctness arrays {a.shape} / {b.shape} do not match {labels.size} labels")
    rows = []
    for run in range(a.shape[0]):
        for c in range(num_classes):
            m = labels == c
            rows.append({"run": run, "class": c, "delta": 100 * (b[run][m].mean() - a[run][m].mean()),
                         **mcnemar_exact(a[run][m], b[run][m])})  # fmt: skip
    return pd.DataFrame(rows)


def paired_drop_gap(
    labels,
    correct_ref,
    correct_new,
    high: Sequence[int],
    low: Sequence[int],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Does going from ``ref`` to ``new`` cost the ``low`` classes more than the ``high`` ones?

    ``correct_ref`` / ``correct_new``: (runs, images) correctness of the same test images before
    and after (e.g. float and quantized, one row per seed). The statistic is the mean over runs
    of ``drop(low) - drop(high)``, drops in accuracy points of each group (class-balanced means
    over the group's classes). Its interval and one-sided p-value (H0: <= 0) come from a paired
    bootstrap that resamples test images within each class, the same images for every run, so
    the correlation between runs evaluated on one test set is kept.
    """
    labels = np.asarray(labels)
    ref = np.atleast_2d(np.asarray(correct_ref, dtype=float))
    new = np.atleast_2d(np.asarray(correct_new, dtype=float))
    if ref.shape != new.shape or ref.shape[1] != labels.size:
        raise ValueError(f"correctness arrays {ref.shape} / {new.shape} do not match {labels.size} labels")
    if not len(high) or not len(low):
        raise ValueError(f"both class groups need at least one class, got high={high!r}, low={low!r}")
    drop = (ref - new).mean(0)  # per image: mean over runs of the change in correctness
    rng = np.random.default_rng(seed)
    classes = sorted(set(high) | set(low))
    boot, point = {}, {}
    for c in classes:
        d = drop[labels == c]
        if d.size == 0:
            raise ValueError(f"class {c} has no test images")
        point[c] = d.mean()
        boot[c] = d[rng.integers(0, d.size, (n_boot, d.size))].mean(1)

    def gap(values: dict) -> np.ndarray:
        return 100 * (np.mean([values[c] for c in low], 0) - np.mean([values[c] for c in high], 0))

    est, dist = float(gap(point)), gap(boot)
    lo, hi = np.quantile(dist, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {
        "estimate": est,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "pvalue": float((np.sum(dist <= 0) + 1) / (n_boot + 1)),  # one-sided: low drops more
        "pvalue_two_sided": float(
            min(1.0, 2 * (min(np.sum(dist <= 0), np.sum(dist >= 0)) + 1) / (n_boot + 1))
        ),
        "drop_high": float(100 * np.mean([point[c] for c in high])),
        "drop_low": float(100 * np.mean([point[c] for c in low])),
    }


def paired_difference(
    labels,
    correct_a,
    correct_b,
    classes: Sequence[int],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Accuracy of B minus accuracy of A over ``classes`` (points), with a paired bootstrap CI.

    ``correct_a`` / ``correct_b``: (runs, images) correctness of the same test images (one row
    per seed). The accuracy is the class-balanced mean over ``classes``, averaged over runs; the
    bootstrap resamples test images within each class, the same images for every run and both
    models (chapter 4: tail-driven vs norm-driven mixed precision). The p-value is two-sided.
    """
    labels = np.asarray(labels)
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    if a.shape != b.shape or a.shape[1] != labels.size:
        raise ValueError(f"correctness arrays {a.shape} / {b.shape} do not match {labels.size} labels")
    if not len(classes):
        raise ValueError("classes must name at least one class")
    diff = (b - a).mean(0)
    rng = np.random.default_rng(seed)
    point, boot = [], []
    for c in classes:
        d = diff[labels == c]
        if d.size == 0:
            raise ValueError(f"class {c} has no test images")
        point.append(d.mean())
        boot.append(d[rng.integers(0, d.size, (n_boot, d.size))].mean(1))
    est, dist = 100 * float(np.mean(point)), 100 * np.mean(boot, 0)
    lo, hi = np.quantile(dist, [(1 - confidence) / 2, (1 + confidence) / 2])
    tail = min(np.sum(dist <= 0), np.sum(dist >= 0))
    return {"estimate": est, "ci_low": float(lo), "ci_high": float(hi),
            "pvalue": float(min(1.0, 2 * (tail + 1) / (n_boot + 1)))}  # fmt: skip


def ranking_reliability(float_correct, layer_correct, sizes: Sequence[int]) -> dict:
    """How well single-layer sensitivities measured on a validation split rank the layers, and how
    well they would on splits of other ``sizes`` (chapter 4's noise; the v2 split size).

    ``float_correct``: (n,) 0/1 correctness of the float model on the split; ``layer_correct``:
    (L, n), the same with only layer l quantized. A layer's sensitivity is the mean of the paired
    differences, its noise variance their variance / n. The spread of the L sensitivities is
    true spread plus noise: ``true_var = max(var(sens) - mean(noise var), 0)``. On a split of m
    images the noise variance scales by n / m, and the reliability
    ``true_var / (true_var + noise_var * n / m)`` is the correlation expected between the
    sensitivities measured on two independent splits of m images (Spearman-Brown).

    Returns ``{"n", "spread", "noise_sd", "true_sd", "reliability": {m: r}}`` in the units of
    the inputs' mean (fractions; x100 for points).
    """
    f = np.asarray(float_correct, dtype=float)
    q = np.atleast_2d(np.asarray(layer_correct, dtype=float))
    if f.ndim != 1 or q.shape[1] != f.size or f.size < 2 or q.shape[0] < 2:
        raise ValueError(
            f"need float_correct (n,) with n >= 2 and layer_correct (L >= 2, n), got {f.shape} and {q.shape}"
        )
    bad = [m for m in sizes if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1]
    if bad:
        raise ValueError(f"sizes must be ints >= 1, got {bad}")
    d = f[None, :] - q
    n = f.size
    sens = d.mean(axis=1)
    noise = float(np.mean(d.var(axis=1, ddof=1) / n))
    observed = float(sens.var(ddof=1))
    true = max(observed - noise, 0.0)
    rel = {int(m): (true / (true + noise * n / m) if true + noise > 0 else float("nan")) for m in sizes}
    return {"n": n, "spread": observed**0.5, "noise_sd": noise**0.5, "true_sd": true**0.5, "reliability": rel}
