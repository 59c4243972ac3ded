"""The blog's published numbers (``shared/reference/blog.md``), as data the chapters compare to.

Bar-chart values were read off the figures (about +-0.5 points). Accuracies in percent.
Used by chapters 1-4.
"""

from __future__ import annotations

import pandas as pd

#: Table 1 (and Fig. 5 for the baseline): (imbalance factor, method) -> overall / head / tail.
TABLE1: dict[tuple[float, str], dict[str, float]] = {
    (0.1, "baseline"): {"overall": 85.6, "head": 87.5, "tail": 84.3},
    (0.1, "crt"): {"overall": 86.1, "head": 85.8, "tail": 86.2},
    (0.02, "baseline"): {"overall": 78.8, "head": 87.3, "tail": 73.1},
    (0.02, "crt"): {"overall": 81.5, "head": 83.3, "tail": 80.3},
    (0.01, "baseline"): {"overall": 63.2, "head": 88.5, "tail": 46.3},
    (0.01, "crt"): {"overall": 75.8, "head": 81.4, "tail": 72.0},
}

#: The imbalance factor of Figs. 7-10 and Table 2.
FIG7_8_IF = 0.01
#: Figs. 7 and 8, IF 0.01: (method, weight bits; 32 = float) -> head / tail.
FIG7_8: dict[tuple[str, int], dict[str, float]] = {
    ("baseline", 32): {"head": 88.5, "tail": 46.3},
    ("baseline", 8): {"head": 88.3, "tail": 45.9},
    ("baseline", 6): {"head": 88.0, "tail": 39.8},
    ("crt", 32): {"head": 81.4, "tail": 72.0},
    ("crt", 8): {"head": 81.6, "tail": 72.2},
    ("crt", 6): {"head": 78.7, "tail": 65.4},
}

#: Table 2: overall accuracy of mixed precision on the decoupled model (IF 0.01).
TABLE2 = {"float": 70.7, "norm-driven 6&4": 70.3, "tail-driven 6&4": 70.4}


#: Fig. 9: nine layers in the order of the blog's norm panel, and the rank its tail panel gives
#: each. The bars are accuracy after quantizing one layer, and rank 1 (L13) is the *highest*
#: accuracy, i.e. the smallest loss, although the blog's text ranks by descending sensitivity.
FIG9_NORM_ORDER = ("L13", "L14", "L15", "L16", "L6", "L9", "L4", "L10", "L2")
FIG9_TAIL_RANK = {"L4": 1, "L13": 2, "L14": 3, "L15": 4, "L16": 5, "L6": 6, "L10": 7, "L9": 8, "L2": 9}

#: Fig. 10 (approximate): the per-class accuracies the text quotes, norm-driven -> tail-driven MPQ.
FIG10 = {2: {"norm-driven": 71.0, "tail-driven": 65.0}, 8: {"norm-driven": 67.0, "tail-driven": 76.0}}


def gap(imbalance_factor: float, method: str) -> float | None:
    """The blog's head-tail gap (points) of Table 1, or None where it has no such cell."""
    cell = TABLE1.get((imbalance_factor, method))
    return None if cell is None else round(cell["head"] - cell["tail"], 6)


def drop_delta(method: str, bits: int) -> float | None:
    """The blog's tail drop minus head drop (points) from float to ``bits`` (Figs. 7/8), or None."""
    if (method, bits) not in FIG7_8:
        return None
    ref, q = FIG7_8[(method, 32)], FIG7_8[(method, bits)]
    return round((ref["tail"] - q["tail"]) - (ref["head"] - q["head"]), 6)


def table1_frame() -> pd.DataFrame:
    """Table 1 in long form: imbalance_factor, method, metric, blog (percent)."""
    rows = [
        {"imbalance_factor": f, "method": m, "metric": k, "blog": v}
        for (f, m), d in TABLE1.items()
        for k, v in d.items()
    ]
    return pd.DataFrame(rows)


def table1_bars(metrics, methods=("baseline", "crt"), label=lambda method: method) -> dict[tuple, float]:
    """Table 1 as :func:`ltmpq.plotting.bar_panels` reads it: ``{(IF, label(method), metric): value}``."""
    return {(f, label(m), k): v[k] for (f, m), v in TABLE1.items() if m in methods for k in metrics if k in v}


def fig78_bars(bits) -> dict[tuple, float]:
    """Figs. 7/8 as bar values: ``{(method, metric, bits label): value}``, bits labels as chapter 3's
    (``"float"`` for 32 bits, else the number as text)."""
    return {(m, k, "float" if b == 32 else str(b)): v[k] for (m, b), v in FIG7_8.items() for k in v
            if ("float" if b == 32 else str(b)) in bits}  # fmt: skip
