"""What the chapters show and load: ltmpq.tables, ltmpq.plotting, ltmpq.load and the public surface."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import ltmpq  # noqa: E402
from ltmpq import load, plotting, tables  # noqa: E402
from ltmpq.config import Stage1Config  # noqa: E402
from ltmpq.tools import gluecheck  # noqa: E402

# ------------------------------------------------------------------ tables


def test_interval_and_ci_text_formats():
    assert tables.interval(5.7123, 4.9, 6.55) == "5.7 [4.9, 6.5]"  # 6.55 rounds half to even as a float
    assert tables.interval(0.39, 0.22, 0.57, digits=2, signed=True) == "+0.39 [+0.22, +0.57]"
    assert tables.ci_text(1.26) == "1.3" and tables.ci_text(float("nan")) == "n/a"


def test_table_formats_numbers_and_scrolls_when_asked():
    df = pd.DataFrame({"a": [1.0, -0.04, np.nan], "b": ["x", "y", "z"]}, index=[0.1, 0.02, 0.01])
    html = tables.table(df).to_html()
    assert ">1<" in html and ">0.0<" in html and ">—<" in html  # integer, no "-0.0", missing
    assert ">0.02<" in html and "0.020000" not in html  # the index as 0.02, not 0.020000
    wrapped = tables.table(df, scroll=True)
    assert wrapped.data.startswith('<div style="overflow-x: auto')
    assert gluecheck.table_cells(wrapped.data) == gluecheck.table_cells(html)  # the same table inside


def test_scrolling_wraps_any_html():
    out = tables.scrolling("<table></table>", font_size="1em")
    assert out == '<div style="overflow-x: auto; font-size: 1em"><table></table></div>'


def test_glue_all_glues_every_value(monkeypatch):
    import myst_nb

    seen = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: seen.append((name, value, display)))
    tables.glue_all({"gap": "11.4", "n": 5})
    assert seen == [("gap", "11.4", False), ("n", 5, False)]


def test_pm_and_wide():
    assert tables.pm(65.84, 0.44) == "65.8 ± 0.4" and tables.pm(65.84, float("nan")) == "65.8"


# ------------------------------------------------------------------ plotting


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


# ------------------------------------------------------------------ load


def test_test_images_follow_the_stored_test_split(patched_data, tiny_cifar):
    """Chapter 3's exemplar pictures: position i of the stored predictions is image i of the split."""
    from ltmpq import artifacts

    cfg = Stage1Config(imbalance_factor=0.5, val_per_class=5, n_max=15, test_per_class=2, width=1 / 16)
    images = load.test_images(cfg)
    split = artifacts.splits_for(cfg, tiny_cifar).test
    assert len(images) == 20 and not np.array_equal(split, np.arange(20))  # a subsample, not the first 20
    np.testing.assert_array_equal(images, tiny_cifar.test_x[split])


def test_test_images_without_data_say_so_and_return_none(capsys):
    assert load.test_images(Stage1Config(imbalance_factor=0.1)) is None
    assert "CIFAR-10 not found, exemplar images not shown" in capsys.readouterr().out


def test_data_source_lines_name_kind_folder_and_digest():
    src = {
        "kind": "imagefolder-jpeg",
        "note": "lossy",
        "path": "/x/y/cifar10-jpeg",
        "lossy": True,
        "sha256": "ab",
    }
    stored = {"cfg": {"provenance": {"data_source": src}}}
    assert (
        load.data_source_lines(stored)
        == "- imagefolder-jpeg: lossy\n  folder: cifar10-jpeg\n  content sha256: ab"
    )
    assert load.data_note(stored) == "the lossy JPEG copy (quality 75) of CIFAR-10"


# ------------------------------------------------------------------ the public surface


def test_the_public_surface_is_small_documented_and_lazy():
    assert set(ltmpq.__all__) == {"ChapterParams", "analysis", "blog", "claims", "frames", "load", "plotting",
                                  "tables", "verdicts"}  # fmt: skip
    assert ltmpq.ChapterParams.__module__ == "ltmpq.params"
    with pytest.raises(AttributeError, match="no attribute 'report'"):
        ltmpq.report  # noqa: B018 - the old catch-all module is gone
    code = "import sys, ltmpq; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # importing the package loads nothing heavy


def test_chapters_import_no_tooling():
    from pathlib import Path

    for nb in sorted(Path(ltmpq.__file__).parent.parent.glob("notebooks/[0-9]*.py")):
        assert "ltmpq.tools" not in nb.read_text(), nb.name
