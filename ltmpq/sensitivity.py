"""Chapter 4's per-layer sensitivity, from stored predictions (and per-class KL): what the
allocations rank layers by and what the chapter tabulates. Without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .config import ALL_METRICS, KL_METRICS, SENSITIVITY_METRICS
from .metrics import metric as accuracy_metric
from .results import decode_predictions


def check_metric(metric: str, allowed: Sequence[str] = ALL_METRICS) -> str:
    """``metric`` itself if known; an error listing the allowed names otherwise."""
    if metric not in allowed:
        raise ValueError(f"unknown sensitivity metric {metric!r}; choose one of {list(allowed)}")
    return metric


def sensitivity(
    metric: str,
    labels,
    float_predictions,
    q_predictions=None,
    *,
    train_counts: Sequence[int],
    groups: Mapping[str, Sequence[int]],
    kl_class: Sequence[float] | None = None,
    images: np.ndarray | None = None,
) -> float:
    """One layer's sensitivity under ``metric``, from stored predictions (and per-class KL).

    Accuracy metrics: the metric of the float model minus that of the model with the layer
    quantized (points lost, as a fraction). KL metrics: the class-balanced mean of the per-class
    KL over all, head or tail classes. ``images``: indices of a resample of the evaluation
    images (accuracy metrics only), for the rank-stability analysis.
    """
    check_metric(metric, SENSITIVITY_METRICS)
    if metric in KL_METRICS:
        if kl_class is None:
            raise ValueError(f"metric {metric!r} needs the per-class KL")
        classes = range(len(kl_class)) if metric == "kl" else groups[metric.removeprefix("kl_")]
        return float(np.nanmean([kl_class[c] for c in classes]))
    y, pf, pq = (np.asarray(a) for a in (labels, float_predictions, q_predictions))
    if images is not None:
        y, pf, pq = y[images], pf[images], pq[images]
    return float(
        accuracy_metric(metric, y, pf, train_counts, groups)
        - accuracy_metric(metric, y, pq, train_counts, groups)
    )


def sensitivity_tables(
    sweep_head: dict, labels, counts, groups, metrics=None, images: np.ndarray | None = None, bits=None
) -> dict[str, pd.DataFrame]:
    """Sensitivity tables (layers x bits) of one head's stored sweep, one per metric.

    ``images``: a resample of the validation images (accuracy metrics only); ``bits``: only
    these bit-widths (default: every one swept).
    """
    metrics = SENSITIVITY_METRICS if metrics is None else metrics
    labels = decode_predictions(labels) if isinstance(labels, str) else np.asarray(labels)
    pf = decode_predictions(sweep_head["float"])
    out = {}
    for m in metrics:
        if images is not None and m in KL_METRICS:
            continue
        rows = {
            layer: {
                int(b): sensitivity(
                    m,
                    labels,
                    pf,
                    decode_predictions(e["predictions"]),
                    train_counts=counts,
                    groups=groups,
                    kl_class=e["kl"],
                    images=images,
                )
                for b, e in by_bits.items()
                if bits is None or int(b) in bits
            }  # fmt: skip
            for layer, by_bits in sweep_head["layers"].items()
        }
        out[m] = pd.DataFrame.from_dict(rows, orient="index").sort_index(axis=1)
    return out
