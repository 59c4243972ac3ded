"""ltmpq.plotting: bar panels with the blog's values, diverging heatmaps and t-intervals."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from ltmpq import plotting  # noqa: E402


def _bars_frame():
    rows = []
    for f in (0.1, 0.01):
        for seed, noise in ((0, -1.0), (1, 1.0)):
            for m in ("overall", "head", "tail"):
                rows.append(
                    {"imbalance_factor": f, "seed": seed, "metric": m, "who": "ours", "value": 50 + noise}
                )
    return pd.DataFrame(rows)


def test_bar_panels_draw_one_panel_per_value_with_the_blog_diamonds():
    blog = {(0.1, "ours", "overall"): 85.6, (0.1, "ours", "tail"): 84.3, (0.01, "ours", "head"): 88.5}
    order = ["overall", "head", "tail"]
    fig, axes = plotting.bar_panels(
        _bars_frame(),
        panel="imbalance_factor",
        x="metric",
        hue="who",
        order=order,
        hue_order=["ours"],
        blog=blog,
    )
    assert [ax.get_title() for ax in axes] == ["IF = 0.1", "IF = 0.01"]  # mildest imbalance first
    diamonds = [[tuple(o.get_offsets()[0]) for o in ax.collections] for ax in axes]
    # one bar per category at 0, 1, 2 (one hue level: centred); a diamond at each published value
    assert diamonds == [[(0.0, 85.6), (2.0, 84.3)], [(1.0, 88.5)]]
    bars = [p.get_height() for p in axes[0].containers[0]]
    assert bars == pytest.approx([50.0, 50.0, 50.0])  # the mean over the two seeds
    assert axes[0].get_legend() is not None and axes[1].get_legend() is None
    matplotlib.pyplot.close(fig)


def test_diverging_heatmap_limits_are_symmetric_and_at_least_one():
    fig, ax = matplotlib.pyplot.subplots()
    plotting.diverging_heatmap(ax, pd.DataFrame([[0.2, -0.5], [0.1, 0.0]]), label="change")
    assert ax.collections[0].get_clim() == (-1.0, 1.0)
    plotting.diverging_heatmap(ax, pd.DataFrame([[3.0, -7.5]]), label="change")
    assert ax.collections[-1].get_clim() == (-7.5, 7.5)
    matplotlib.pyplot.close(fig)


def test_t_interval_is_the_student_interval_and_degenerates_for_one_value():
    lo, hi = plotting.t_interval([1.0, 3.0])
    assert (lo, hi) == pytest.approx((2 - 12.7062047 / np.sqrt(2) * np.sqrt(2), 2 + 12.7062047))
    assert plotting.t_interval([4.0]) == (4.0, 4.0)


# ------------------------------------------------------------------ the review's rules


def test_the_strongest_imbalance_is_darkest():
    pal = plotting.if_palette([0.1, 0.01, 0.02])
    lum = {f: 0.299 * r + 0.587 * g + 0.114 * b for f, (r, g, b) in pal.items()}
    assert lum[0.01] < lum[0.02] < lum[0.1]
