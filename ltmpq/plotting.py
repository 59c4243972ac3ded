"""Figure helpers shared by the chapters (seaborn theme, grouped bars with CIs and blog markers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .stats import mean_ci

BLOG_STYLE = dict(marker="D", color="black", s=28, zorder=5, label="blog (published)")


def setup() -> None:
    """The book's plotting style (called once at the top of each chapter)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.figsize": (8, 4)})


def t_interval(values) -> tuple[float, float]:
    """Seaborn ``errorbar=`` callable: the 95% Student-t interval over seeds."""
    m, h, _ = mean_ci(np.asarray(values, dtype=float))
    return (m, m) if np.isnan(h) else (m - h, m + h)


def grouped_bars(
    ax,
    categories: Sequence[str],
    series: Mapping[str, Sequence[Sequence[float]]],
    blog: Mapping[str, Sequence[float | None]] | None = None,
    ylabel: str = "accuracy (%)",
):
    """Bars of the mean over seeds with 95% t-interval whiskers; blog values as black diamonds.

    ``series[label][i]`` holds the per-seed values of category ``i``; ``blog[label][i]`` the
    published value (None where the blog has none).
    """
    n = len(series)
    width = 0.8 / n
    x = np.arange(len(categories))
    colors = sns.color_palette(n_colors=n)
    blog_labelled = False
    for k, (label, per_cat) in enumerate(series.items()):
        stats_ = [mean_ci(np.asarray(v, dtype=float)) for v in per_cat]
        means = [s[0] for s in stats_]
        errs = [0 if np.isnan(s[1]) else s[1] for s in stats_]
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, means, width, yerr=errs, capsize=3, label=label, color=colors[k])
        if blog and label in blog:
            for p, b in zip(pos, blog[label], strict=True):
                if b is not None:
                    ax.scatter(
                        [p], [b], **{**BLOG_STYLE, "label": None if blog_labelled else BLOG_STYLE["label"]}
                    )
                    blog_labelled = True
    ax.set_xticks(x, categories)
    ax.set_ylabel(ylabel)
    # below the axes: bars start at zero and the blog markers sit near the top, so inside covers data
    ax.legend(fontsize="small", ncols=min(3, n + 1), loc="upper left", bbox_to_anchor=(0, -0.12))
    return ax
