"""Chapter 5: mechanism. Do classes with less data have larger curvature and lose more under quantization?

Liu et al. (ICML 2025, "Understanding the Unfairness in Network Quantization") argue that groups
with less training data have larger gradient norms and Hessian traces, and therefore lose more
accuracy when the weights are quantized. This module measures both per class with chapter 4's
Hutchinson machinery (:func:`ltmpq.mpq.model_traces`) and tests the claim by rank correlations
over classes, pooled over training seeds, with bootstrap intervals:

- :func:`class_layer_curvature` / :func:`class_curvature`: per class (and per layer) the Hessian
  trace and the squared gradient norm of the class-mean cross-entropy w.r.t. the 16 weights that
  get quantized, and HAWQ's ``Tr(H_n) / N_n * ||Q_b(W_n) - W_n||^2`` summed over layers;

and :mod:`ltmpq.correlation` tests the claim (rank correlations over classes, pooled over seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .config import QuantConfig
from .correlation import check_columns
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
    check_columns(layers, ["class", "layer", "trace", "trace_stderr", "grad_norm2"])
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
