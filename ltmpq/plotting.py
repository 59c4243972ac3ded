"""Figure helpers shared by the chapters: the seaborn theme, the 95% t-interval as seaborn's
``errorbar=``, and bar panels with the blog's values beside ours."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .uncertainty import mean_ci

BLOG_STYLE = dict(marker="D", color="black", s=28, zorder=5, label="blog (published)")


def setup() -> None:
    """The book's plotting style (called once at the top of each chapter)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (8, 4)})


def if_palette(imbalance_factors) -> dict[float, tuple]:
    """One colour per imbalance factor, the strongest imbalance (smallest IF) darkest: a reader's
    eye goes to the dark bars, and they are the long tail's. Every chapter's IF colours."""
    ifs = sorted(set(imbalance_factors), reverse=True)  # mildest first: lightest
    colours = sns.color_palette("crest", len(ifs) + 1)[1:]  # the palest shade barely shows on white
    return dict(zip(ifs, colours, strict=True))


def t_interval(values) -> tuple[float, float]:
    """Seaborn ``errorbar=`` callable: the 95% Student-t interval over seeds."""
    m, h, _ = mean_ci(np.asarray(values, dtype=float))
    return (m, m) if np.isnan(h) else (m - h, m + h)


def bar_panels(
    data: pd.DataFrame,
    *,
    panel: str,
    x: str,
    hue: str,
    order: Sequence,
    hue_order: Sequence,
    panels: Sequence | None = None,
    blog: Mapping[tuple, float | None] | None = None,
    titles: Callable[[Any], str] = lambda p: f"IF = {p:g}",
    xticklabels: Sequence[str] | None = None,
    value: str = "value",
    ylabel: str = "accuracy (%)",
    panel_width: float = 3.6,
    height: float = 3.8,
    suptitle: str | None = None,
):
    """One bar chart per value of ``panel``: seaborn bars of the mean over seeds with 95%
    t-interval whiskers (:func:`t_interval`), and the blog's values as black diamonds.

    ``blog[(panel value, hue value, x value)]`` is the published value of that bar (None or
    absent where the blog has none). Chapters 1-3 (Fig. 5, Table 1, Figs. 7/8).
    """
    panels = list(panels) if panels is not None else sorted(data[panel].unique(), reverse=True)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(panel_width * len(panels), height), sharey=True, squeeze=False
    )
    width = 0.8 / len(hue_order)  # seaborn's dodged bar width for this many hue levels
    for ax, p in zip(axes[0], panels, strict=True):
        sns.barplot(
            data[data[panel] == p],
            x=x,
            y=value,
            hue=hue,
            order=list(order),
            hue_order=list(hue_order),
            errorbar=t_interval,
            capsize=0.1,
            err_kws={"linewidth": 1},
            ax=ax,
        )
        labelled = False
        for k, h in enumerate(hue_order):
            for i, xv in enumerate(order):
                v = (blog or {}).get((p, h, xv))
                if v is not None:
                    ax.scatter(
                        [i - 0.4 + width * (k + 0.5)],
                        [v],
                        **{**BLOG_STYLE, "label": None if labelled else BLOG_STYLE["label"]},
                    )
                    labelled = True
        ax.set_title(titles(p))
        ax.set_ylim(0, 100)
        ax.set_xlabel("")
        ax.set_ylabel(ylabel if ax is axes[0][0] else "")
        if xticklabels is not None:
            ax.set_xticks(range(len(order)), xticklabels)
        if ax is axes[0][0]:
            # below the axes: bars start at zero and the blog markers sit near the top
            ax.legend(
                fontsize="small",
                ncols=min(3, len(hue_order) + 1),
                loc="upper left",
                bbox_to_anchor=(0, -0.12),
            )
        else:
            ax.get_legend().remove()
    if suptitle:
        fig.suptitle(suptitle, y=1.02)
    return fig, axes[0]


def diverging_heatmap(
    ax, values: pd.DataFrame, *, label: str, annot=True, fmt: str = ".1f", cmap: str = "RdBu",
    lim: float | None = None, cbar: bool = True, fontsize: int = 7,
):  # fmt: skip
    """An annotated heatmap of changes centred on zero (symmetric colour limits, at least ±1).

    Chapter 3's per-class changes and ablations, chapter 4's per-class MPQ differences.
    """
    if lim is None:
        lim = max(1.0, float(np.nanmax(np.abs(values.to_numpy(dtype=float)))))
    sns.heatmap(values, annot=annot, fmt=fmt, cmap=cmap, center=0, vmin=-lim, vmax=lim, ax=ax, cbar=cbar,
                cbar_kws={"label": label}, annot_kws={"fontsize": fontsize})  # fmt: skip
    return ax
