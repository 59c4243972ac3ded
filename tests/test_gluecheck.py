"""ltmpq.tools.gluecheck: the book's glued values and table cells, dumped and compared."""

from __future__ import annotations

import json

import nbformat
import pytest

from ltmpq.tools import gluecheck


def _glue_output(name: str, text: str) -> nbformat.NotebookNode:
    """An output exactly as myst-nb's ``glue(name, value, display=False)`` writes it."""
    prefix = "application/papermill.record/"
    return nbformat.v4.new_output(
        "display_data", data={prefix + "text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": prefix}},
    )  # fmt: skip


TABLE = (
    '<style type="text/css">#T_ab12 td {x}</style><table id="T_ab12"><thead><tr>'
    '<th id="T_ab12_l0">metric</th>'
    '<th class="col_heading">ours</th></tr></thead><tbody><tr><th id="T_ab12_r0">tail</th>'
    '<td id="T_ab12_c0">44.6 &plusmn; 6.3</td></tr></tbody></table>'
)


def _notebook(path, glue: dict, tables=(TABLE,)):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [_glue_output(k, v) for k, v in glue.items()]
    cell.outputs += [nbformat.v4.new_output("display_data", data={"text/html": t, "text/plain": "<Styler>"})
                     for t in tables]  # fmt: skip
    nb.cells = [cell]
    nbformat.write(nb, path)


def test_table_cells_are_the_visible_text_without_ids_or_css():
    assert gluecheck.table_cells(TABLE) == ["metric", "ours", "tail", "44.6 ± 6.3"]
    other_ids = TABLE.replace("T_ab12", "T_zz99")
    assert gluecheck.table_cells(other_ids) == gluecheck.table_cells(TABLE)


def test_dump_reads_glue_values_and_tables(tmp_path):
    _notebook(tmp_path / "01_x.ipynb", {"gap": "'11.4'", "n": "5"})
    d = gluecheck.dump(tmp_path)
    assert d == {
        "01_x": {"glue": {"gap": "'11.4'", "n": "5"}, "tables": [["metric", "ours", "tail", "44.6 ± 6.3"]]}
    }


def test_compare_finds_a_changed_value_a_missing_one_and_a_changed_cell(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _notebook(tmp_path / "a" / "ch.ipynb", {"gap": "'11.4'", "gone": "1"})
    _notebook(tmp_path / "b" / "ch.ipynb", {"gap": "'11.5'", "new": "2"}, (TABLE.replace("44.6", "44.7"),))
    lines, counts = gluecheck.compare(gluecheck.dump(tmp_path / "a"), gluecheck.dump(tmp_path / "b"))
    assert counts == {"glue": 2, "tables": 1, "new_keys": 1}
    assert lines == [
        "ch: glue gap: \"'11.4'\" -> \"'11.5'\"",
        "ch: glue gone: '1' -> '<missing>'",
        "ch: table 1 differs at cell 3: '44.6 ± 6.3' -> '44.7 ± 6.3'",
    ]


def test_identical_dumps_compare_clean_and_the_cli_exit_codes(tmp_path, capsys):
    _notebook(tmp_path / "ch.ipynb", {"gap": "'11.4'"})
    assert gluecheck.main(["dump", str(tmp_path), str(tmp_path / "a.json")]) == 0
    assert gluecheck.compare(*[json.loads((tmp_path / "a.json").read_text())] * 2) == (
        [], {"glue": 1, "tables": 1, "new_keys": 0},
    )  # fmt: skip
    assert gluecheck.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    changed = json.loads((tmp_path / "a.json").read_text())
    changed["ch"]["tables"] = []
    (tmp_path / "b.json").write_text(json.dumps(changed))
    assert gluecheck.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "1 tables -> 0" in capsys.readouterr().out


def test_dump_of_a_folder_without_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        gluecheck.dump(tmp_path)
