"""Chapter 5: mechanism. Do classes with less data have larger curvature and lose more under quantization?

Liu et al. (ICML 2025, "Understanding the Unfairness in Network Quantization") argue that groups
with less training data have larger gradient norms and Hessian traces, and therefore lose more
accuracy when the weights are quantized. This module measures both per class with chapter 4's
Hutchinson machinery (:func:`ltmpq.mpq.model_traces`) and tests the claim by rank correlations
over classes, pooled over training seeds, with bootstrap intervals:

- :func:`class_layer_curvature` / :func:`class_curvature`: per class (and per layer) the Hessian
  trace and the squared gradient norm of the class-mean cross-entropy w.r.t. the 16 weights that
  get quantized, and HAWQ's ``Tr(H_n) / N_n * ||Q_b(W_n) - W_n||^2`` summed over layers;
- :func:`rank_correlation`, :func:`partial_rank_correlation`: Spearman (partial) correlations over
  classes, averaged over seeds, with a crossed bootstrap over seeds and classes;
- :func:`compare_predictors`: does curvature predict which classes lose accuracy better than the
  training-set size alone?
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from .config import QuantConfig
from .models import VGG16
from .mpq import hawq_sensitivity, layer_weights, model_traces, prepared
from .quantization import quantize_head, weight_module
from .vocab import FLOAT, LAYER_NAMES, check_bits

# ---------------------------------------------------------------------------------------------
# Per-class curvature


def _check_labels(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``y`` as a 1-d int64 tensor after checking it against ``x`` and ``num_classes``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    y = torch.as_tensor(y).long().flatten()
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels; they must match")
    bad = sorted({int(v) for v in y if not 0 <= int(v) < num_classes})
    if bad:
        raise ValueError(f"labels {bad} are outside the classes 0..{num_classes - 1}")
    empty = [c for c in range(num_classes) if not bool((y == c).any())]
    if empty:
        raise ValueError(f"classes {empty} have no images in y; every class 0..{num_classes - 1} needs one")
    return y


def _gradient_norms(model: VGG16, head: nn.Module, qcfg: QuantConfig) -> Callable:
    """A function ``(x, y) -> {layer: ||d loss / d W_n||^2}`` for the mean cross-entropy of
    ``head(features(x))``, w.r.t. the same weights as :func:`ltmpq.mpq.model_traces` (BN folded as
    configured, L16 the head's linear form). ``model_traces`` returns traces only, hence this."""
    base = prepared(model, qcfg).requires_grad_(False)
    # quantize_head at "float" is the head's linear form (NCM: on L2-normalised features), unrounded
    top = quantize_head(head, FLOAT, qcfg).requires_grad_(False)
    linear = top[-1] if isinstance(top, nn.Sequential) else top
    params = {n: weight_module(base.layers[n]).weight for n in LAYER_NAMES[:-1]} | {"L16": linear.weight}
    for p in params.values():
        p.requires_grad_(True)

    def norms(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        grads = torch.autograd.grad(F.cross_entropy(top(base.features(x)), y), list(params.values()))
        return {n: float((g.double() ** 2).sum()) for n, g in zip(params, grads, strict=True)}

    return norms


def class_layer_curvature(
    model: VGG16,
    head: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    qcfg: QuantConfig,
    *,
    num_classes: int,
    samples: int = 32,
    seed: int = 0,
    bits: Sequence[int] = (),
) -> pd.DataFrame:
    """Per (class, layer): Hessian trace, its standard error, squared gradient norm, HAWQ terms.

    Class c's numbers are those of the mean cross-entropy over class c's images only: one
    :func:`~ltmpq.mpq.model_traces` pass on those images. That is the same quantity as
    ``model_traces`` on all images with one-hot ``class_weights`` (a test asserts it), at
    ``1 / num_classes`` of the cost, because the other classes' images would be carried at zero
    weight. Every class uses the same probes (``seed``): common random numbers, so that the
    count-weighted class traces add up to the whole-set trace probe by probe.

    Columns: ``class``, ``layer``, ``images``, ``params`` (N_n), ``trace``, ``trace_stderr``,
    ``grad_norm2``, and for each ``b`` in ``bits`` ``hawq_b`` = ``trace / N_n * ||Q_b(W_n) -
    W_n||^2`` (chapter 4's :func:`~ltmpq.mpq.hawq_sensitivity`) and ``hawq_b_stderr``.
    """
    y = _check_labels(x, y, num_classes)
    bits = [check_bits(b, "a bit-width") for b in bits]  # a float layer has no HAWQ term
    weights = layer_weights(model, qcfg, head)
    # trace == params makes hawq_sensitivity's entry the plain squared quantization error
    unit = {n: {"trace": float(w.numel()), "params": int(w.numel())} for n, w in weights.items()}
    qerr = hawq_sensitivity(unit, weights, bits, qcfg) if bits else None
    grad_norms = _gradient_norms(model, head, qcfg)
    rows = []
    for c in range(num_classes):
        keep = y == c
        xc, yc = x[keep], y[keep]
        traces = model_traces(model, head, xc, yc, qcfg, samples=samples, seed=seed)
        g2 = grad_norms(xc, yc)
        for n, t in traces.items():
            row = {"class": c, "layer": n, "images": int(keep.sum()), "params": t["params"],
                   "trace": t["trace"], "trace_stderr": t["stderr"], "grad_norm2": g2[n]}  # fmt: skip
            for b in bits:
                per_weight = float(qerr.loc[n, b]) / t["params"]
                row[f"hawq_{b}"] = t["trace"] * per_weight
                row[f"hawq_{b}_stderr"] = t["stderr"] * per_weight
            rows.append(row)
    return pd.DataFrame(rows)


def per_class(layers: pd.DataFrame) -> pd.DataFrame:
    """The per-layer frame of :func:`class_layer_curvature` summed over layers, one row per class.

    Traces, gradient norms and HAWQ terms add up. Their standard errors do not simply: the
    per-layer estimates share probes and are positively correlated (by ``||H_nm||_F^2`` between
    layers n and m). For Rademacher probes the variance of the sum lies between the sum of the
    per-layer variances and twice that, so ``*_stderr`` here is ``sqrt(2 * sum(stderr_n^2))``, an
    upper bound (the exact one needs the per-probe totals, which ``hutchinson_traces`` does not
    return). The same bound holds for any non-negative weighting of the layers (HAWQ).
    """
    _check_columns(layers, ["class", "layer", "trace", "trace_stderr", "grad_norm2"])
    value_cols = ["trace", "grad_norm2"] + [
        c for c in layers.columns if c.startswith("hawq_") and not c.endswith("_stderr")
    ]
    err_cols = [c for c in layers.columns if c.endswith("_stderr")]
    g = layers.groupby("class", sort=True)
    out = g[value_cols].sum()
    for c in err_cols:
        out[c] = np.sqrt(2 * g[c].apply(lambda s: float((s**2).sum())))
    if "images" in layers.columns:
        out.insert(0, "images", g["images"].first())
    order = ["images", "trace", "trace_stderr", "grad_norm2"]
    order = [c for c in order if c in out.columns] + sorted(
        (c for c in out.columns if c.startswith("hawq_")), key=lambda c: (int(c.split("_")[1]), c)
    )
    return out[order].reset_index()


def class_curvature(
    model: VGG16,
    head: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    qcfg: QuantConfig,
    *,
    num_classes: int,
    samples: int = 32,
    seed: int = 0,
    bits: Sequence[int] = (),
) -> pd.DataFrame:
    """One row per class: ``images``, ``trace``, ``trace_stderr``, ``grad_norm2`` and ``hawq_b``
    (with ``hawq_b_stderr``) for each ``b`` in ``bits``, summed over the 16 layers.

    ``per_class(class_layer_curvature(...))``; call those two for the per-layer breakdown too.
    """
    return per_class(
        class_layer_curvature(
            model, head, x, y, qcfg, num_classes=num_classes, samples=samples, seed=seed, bits=bits
        )
    )


# ---------------------------------------------------------------------------------------------
# Rank correlations over classes, pooled over seeds


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
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
    _check_columns(frame, [*columns, group, unit])
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
