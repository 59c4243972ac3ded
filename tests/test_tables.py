"""ltmpq.tables: the text of intervals and cells, HTML tables, and glue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltmpq import tables
from ltmpq.tools import gluecheck


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


# ------------------------------------------------------------------ the review's rules


def test_a_download_lands_where_the_book_links_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LTMPQ_DOWNLOADS", str(tmp_path / "data"))
    (path,) = tables.download(pd.DataFrame({"a": [1, 2]}), "03_quantization_paired")
    assert path == tmp_path / "data" / "03_quantization_paired.csv"
    assert pd.read_csv(path, index_col=0)["a"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="a download's name"):
        tables.download(pd.DataFrame(), "../escape")


def test_a_download_in_parquet_keeps_the_column_types(tmp_path, monkeypatch):
    monkeypatch.setenv("LTMPQ_DOWNLOADS", str(tmp_path))
    df = pd.DataFrame({"k": pd.array([8, None], dtype="Int64"), "bits": ["float", "6"], "acc": [61.5, 0.1]})
    csv, parquet = tables.download(df, "runs", ("csv", "parquet"))
    assert (csv.name, parquet.name) == ("runs.csv", "runs.parquet")
    back = pd.read_parquet(parquet)
    pd.testing.assert_frame_equal(back, df)
    with pytest.raises(ValueError, match=r"download formats \['xlsx'\]: allowed are \['csv', 'parquet'\]"):
        tables.download(df, "runs", ("xlsx",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.parquet"]  # nothing half-written
