"""Chapter 5's mechanism test, without torch: do classes with larger curvature (or less data) lose
more accuracy under quantization? Spearman (partial) rank correlations over classes, averaged over
seeds, with a crossed bootstrap over seeds and classes (:func:`rank_correlation`,
:func:`partial_rank_correlation`), and :func:`compare_predictors`: does curvature predict which
classes lose accuracy better than the training-set size alone? The curvature itself is measured by
:mod:`ltmpq.fairness`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats


def check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"unknown columns {missing}; the frame has {list(frame.columns)}")


def _plain(values) -> list:
    """numpy scalars as Python ones, for error messages that read ``[2]``, not ``[np.int64(2)]``."""
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _grid(
    frame: pd.DataFrame, columns: Sequence[str], group: str, unit: str
) -> tuple[dict[str, np.ndarray], int, int]:
    """Each column as a (seeds, classes) array, classes aligned across seeds."""
    columns = list(dict.fromkeys(columns))
    check_columns(frame, [*columns, group, unit])
    seeds = pd.unique(frame[group])
    if len(seeds) < 2:
        raise ValueError(
            f"a confidence interval needs at least 2 values of {group!r} (seeds), got {len(seeds)}: "
            f"{_plain(seeds)}"
        )
    dup = frame.duplicated([group, unit])
    if dup.any():
        first = _plain(frame.loc[dup, [group, unit]].iloc[0].tolist())
        raise ValueError(f"({group}, {unit}) = {tuple(first)} appears more than once; one row each")
    classes = sorted(pd.unique(frame[unit]))
    for s, sub in frame.groupby(group, sort=False):
        lacking = _plain(sorted(set(classes) - set(sub[unit])))
        if lacking:
            raise ValueError(
                f"{group} {_plain([s])[0]!r} lacks {unit} {lacking}: every seed needs the same classes"
            )
    if len(classes) < 3:
        raise ValueError(f"a rank correlation over {unit} needs at least 3 of them, got {len(classes)}")
    out = {}
    for c in columns:
        wide = frame.pivot(index=group, columns=unit, values=c).loc[list(seeds), classes]
        a = wide.to_numpy(dtype=float)
        if not np.isfinite(a).all():
            raise ValueError(f"column {c!r} has missing or infinite values")
        flat = _plain([s for s, row in zip(seeds, a, strict=True) if np.ptp(row) == 0])
        if flat:
            raise ValueError(f"column {c!r} is constant over {unit} in {group} {flat}: no ranks to correlate")
        out[c] = a
    return out, len(seeds), len(classes)


def _rank_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis of the (average) ranks: Spearman's rho, vectorised."""
    ra, rb = stats.rankdata(a, axis=-1), stats.rankdata(b, axis=-1)
    ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


def _partial(rxy: np.ndarray, rxz: np.ndarray, ryz: np.ndarray) -> np.ndarray:
    # |r| within rounding of 1 (spearmanr gives 0.9999999999999999 for identical ranks): the
    # variable is a monotone function of the control and the partial correlation is undefined
    rxz = np.where(np.abs(rxz) > 1 - 1e-9, np.nan, rxz)
    ryz = np.where(np.abs(ryz) > 1 - 1e-9, np.nan, ryz)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


def _nanmean(a, axis: int | None = None) -> np.ndarray | float:
    """``np.nanmean`` that gives NaN for an all-NaN slice without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(a, dtype=float), axis)


def _check_boot(n_boot: int, confidence: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 10:
        raise ValueError(f"n_boot must be an int >= 10, got {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


class _Crossed:
    """The pigeonhole bootstrap (Owen 2007) of a (seeds x classes) design: each replicate draws
    seeds and classes independently with replacement, the same class draw for every seed (the
    classes are the same classes in every run). ``scipy.stats.bootstrap`` resamples along one
    axis only, hence this. Statistics computed on one instance share the draws: paired."""

    def __init__(self, n_seeds: int, n_classes: int, n_boot: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.classes = rng.integers(0, n_classes, (n_boot, n_classes))
        self.seeds = rng.integers(0, n_seeds, (n_boot, n_seeds))

    def resample(self, a: np.ndarray) -> np.ndarray:
        """(seeds, classes) -> (n_boot, seeds, classes), classes resampled."""
        return np.moveaxis(a[:, self.classes], 1, 0)

    def pool(self, per_seed: np.ndarray) -> np.ndarray:
        """(n_boot, seeds) statistics -> (n_boot,) means over the resampled seeds."""
        return _nanmean(np.take_along_axis(per_seed, self.seeds, 1), 1)


def _summary(estimate: float, boot: np.ndarray, confidence: float, n_classes: int, n_seeds: int) -> dict:
    ok = boot[np.isfinite(boot)]
    lo, hi = np.quantile(ok, [(1 - confidence) / 2, (1 + confidence) / 2]) if ok.size else (np.nan, np.nan)
    tail = min(np.sum(ok <= 0), np.sum(ok >= 0))
    return {"estimate": float(estimate), "ci_low": float(lo), "ci_high": float(hi),
            "pvalue": float(min(1.0, 2 * (tail + 1) / (ok.size + 1))),  # two-sided, bootstrap
            "n": n_classes, "n_seeds": n_seeds}  # fmt: skip


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.spearmanr(x, y).statistic)


def _partial_point(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    rxy, rxz, ryz = _spearman(x, y), _spearman(x, z), _spearman(y, z)
    return float(_partial(np.asarray(rxy), np.asarray(rxz), np.asarray(ryz)))


def rank_correlation(
    frame: pd.DataFrame,
    x: str,
    y: str,
    group: str = "seed",
    n_boot: int = 2000,
    seed: int = 0,
    *,
    unit: str = "class",
    confidence: float = 0.95,
) -> dict:
    """Spearman's rho of columns ``x`` and ``y`` over classes, pooled over seeds.

    ``frame``: one row per (``group``, ``unit``) = (seed, class), every seed with the same
    classes. The estimate is the mean over seeds of each seed's rho (``scipy.stats.spearmanr``),
    not one rho of ranks pooled across seeds: a seed's shift of every class would otherwise count
    as signal. The interval is a percentile interval of the pigeonhole bootstrap over seeds and
    classes; ``pvalue`` is the two-sided bootstrap p-value of rho = 0. Returns ``estimate``,
    ``ci_low``, ``ci_high``, ``pvalue``, ``n`` (classes), ``n_seeds`` and ``per_seed``.
    """
    _check_boot(n_boot, confidence)
    grid, n_seeds, n_classes = _grid(frame, [x, y], group, unit)
    a, b = grid[x], grid[y]
    per_seed = [_spearman(a[s], b[s]) for s in range(n_seeds)]
    boot = _Crossed(n_seeds, n_classes, n_boot, seed)
    dist = boot.pool(_rank_pearson(boot.resample(a), boot.resample(b)))
    return _summary(float(np.mean(per_seed)), dist, confidence, n_classes, n_seeds) | {"per_seed": per_seed}


def partial_rank_correlation(
    frame: pd.DataFrame,
    x: str,
    y: str,
    control: str,
    group: str = "seed",
    n_boot: int = 2000,
    seed: int = 0,
    *,
    unit: str = "class",
    confidence: float = 0.95,
) -> dict:
    """Partial Spearman correlation of ``x`` and ``y`` given ``control``, pooled over seeds.

    Per seed, ``(r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))`` of the Spearman rhos (the
    Pearson partial correlation of the ranks), averaged over seeds; the interval as in
    :func:`rank_correlation`. NaN where ``x`` or ``y`` is a monotone function of ``control``.
    """
    _check_boot(n_boot, confidence)
    grid, n_seeds, n_classes = _grid(frame, [x, y, control], group, unit)
    a, b, z = grid[x], grid[y], grid[control]
    per_seed = [_partial_point(a[s], b[s], z[s]) for s in range(n_seeds)]
    boot = _Crossed(n_seeds, n_classes, n_boot, seed)
    ra, rb, rz = boot.resample(a), boot.resample(b), boot.resample(z)
    dist = boot.pool(_partial(_rank_pearson(ra, rb), _rank_pearson(ra, rz), _rank_pearson(rb, rz)))
    return _summary(float(_nanmean(per_seed)), dist, confidence, n_classes, n_seeds) | {"per_seed": per_seed}


def compare_predictors(
    frame: pd.DataFrame,
    target: str,
    predictors: Mapping[str, str],
    *,
    control: str | None = None,
    reference: str | None = None,
    group: str = "seed",
    unit: str = "class",
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Which per-class quantity best predicts ``target`` (e.g. the accuracy drop), by rank.

    ``predictors``: label -> column, e.g. ``{"trace": "trace", "grad_norm2": "grad_norm2",
    "-log count": "neg_log_count"}``. Rows (``kind``):

    - ``spearman``: rho of each predictor with ``target`` (as :func:`rank_correlation`);
    - ``partial``: with ``control`` (a label of ``predictors``, e.g. the training count), the
      partial rho of every other predictor with ``target`` given it: what curvature adds to
      training-set size;
    - ``difference``: with ``reference`` (a label), ``|rho_p| - |rho_reference|`` for every other
      predictor, from the same bootstrap draws (paired): > 0 means p ranks the classes' drops
      better than the reference does.

    Every row's interval comes from one set of pigeonhole draws over seeds and classes.
    Columns: ``kind``, ``predictor``, ``versus`` (the control or reference), ``estimate``,
    ``ci_low``, ``ci_high``, ``pvalue`` (two-sided, bootstrap), ``n`` (classes), ``n_seeds``.
    """
    _check_boot(n_boot, confidence)
    if not predictors:
        raise ValueError("predictors must name at least one column")
    for name, role in ((control, "control"), (reference, "reference")):
        if name is not None and name not in predictors:
            raise ValueError(f"unknown {role} {name!r}; choose one of the predictors {list(predictors)}")
    grid, n_seeds, n_classes = _grid(frame, [target, *predictors.values()], group, unit)
    boot = _Crossed(n_seeds, n_classes, n_boot, seed)
    t = grid[target]
    tb = boot.resample(t)
    rho, rho_boot, rows = {}, {}, []

    def add(kind: str, label: str, versus: str | None, est: float, dist: np.ndarray) -> None:
        rows.append({"kind": kind, "predictor": label, "versus": versus}
                    | _summary(est, dist, confidence, n_classes, n_seeds))  # fmt: skip

    resampled = {label: boot.resample(grid[col]) for label, col in predictors.items()}
    for label, col in predictors.items():
        rho[label] = float(np.mean([_spearman(grid[col][s], t[s]) for s in range(n_seeds)]))
        rho_boot[label] = boot.pool(_rank_pearson(resampled[label], tb))
        add("spearman", label, None, rho[label], rho_boot[label])
    if control is not None:
        z, zb = grid[predictors[control]], resampled[control]
        rzt = _rank_pearson(zb, tb)
        for label, col in predictors.items():
            if label == control:
                continue
            a = grid[col]
            est = float(_nanmean([_partial_point(a[s], t[s], z[s]) for s in range(n_seeds)]))
            ab = resampled[label]
            dist = boot.pool(_partial(_rank_pearson(ab, tb), _rank_pearson(ab, zb), rzt))
            add("partial", label, control, est, dist)
    if reference is not None:
        for label in predictors:
            if label != reference:
                dist = np.abs(rho_boot[label]) - np.abs(rho_boot[reference])
                add("difference", label, reference, abs(rho[label]) - abs(rho[reference]), dist)
    return pd.DataFrame(rows)
