"""ltmpq.tools.execute: an output that cannot receive the executed chapter is refused before it runs, and
so is an unknown chapter parameter; every chapter declares its parameters once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ltmpq.tools.execute as execute
from ltmpq.paths import ROOT, chapter_sources
from ltmpq.tools.execute import execute_chapter, parameter_names

SOURCE = "notebooks/01_evaluation.py"  # relative to ROOT, the working directory below
SAME = "error: output {out} is the chapter source {src}; name the .ipynb notebook to write"
FOLDER = "error: output {out} is a folder; name the .ipynb notebook to write, e.g. {out}/01_evaluation.ipynb"
SUFFIX = "error: output {out} must end in .ipynb (an executed notebook), got {suffix!r}"
UNDER_FILE = "error: output {out} cannot be written: {tmp}/afile is a file, not a folder"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("{src}", SAME),
        ("notebooks/../{src}", SAME),
        ("./{src}", SAME.replace("{out}", "{src}")),  # pathlib drops the "./"
        (f"{ROOT}/{{src}}", SAME),
        ("{tmp}/link.py", SAME),  # symlinks to the source
        ("{tmp}/link.ipynb", SAME),
        ("{tmp}", FOLDER),
        ("notebooks", FOLDER),
        ("{tmp}/out.py", SUFFIX),
        ("{tmp}/out", SUFFIX),
        ("{tmp}/afile/out.ipynb", UNDER_FILE),
    ],
    ids=["source", "source-dotdot", "source-dot", "source-absolute", "symlink-py", "symlink-ipynb", "folder",
         "notebooks-folder", "suffix-py", "no-suffix", "under-a-file"],
)  # fmt: skip
def test_an_output_that_cannot_take_the_notebook_is_refused_before_running(
    output, message, tmp_path, monkeypatch, capsys
):
    """Probe: `python -m ltmpq.tools.execute notebooks/01_evaluation.py notebooks/01_evaluation.py`
    overwrote the chapter source with the executed notebook; a folder as output failed obscurely
    once the chapter had run for minutes."""

    def no_execution(*args, **kwargs):
        raise AssertionError("the chapter was executed")

    monkeypatch.setattr(execute.papermill, "execute_notebook", no_execution)
    monkeypatch.delenv("LTMPQ_DEBUG", raising=False)
    monkeypatch.chdir(ROOT)
    out = output.format(src=SOURCE, tmp=tmp_path)
    if out.startswith(f"{tmp_path}/link"):
        Path(out).symlink_to(ROOT / SOURCE)
    (tmp_path / "afile").write_text("x")
    expected = message.format(out=out, src=SOURCE, tmp=tmp_path, suffix=Path(out).suffix)
    source_bytes = (ROOT / SOURCE).read_bytes()
    listings = {d: sorted(os.listdir(d)) for d in (ROOT / "notebooks", tmp_path)}

    assert execute.main([SOURCE, out, "-p", "profile", "smoke"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [expected] and "Traceback" not in captured.err
    assert "executed" not in captured.out
    with pytest.raises(ValueError) as err:  # the library entry point refuses it the same way
        execute.execute_chapter(Path(SOURCE), Path(out), {"profile": "smoke"})
    assert f"error: {err.value}" == expected
    assert (ROOT / SOURCE).read_bytes() == source_bytes and not (ROOT / SOURCE).is_symlink()
    assert {d: sorted(os.listdir(d)) for d in listings} == listings  # no output, no temporary file


# ------------------------------------------------------------------ chapter parameters


def test_an_unknown_chapter_parameter_is_refused_before_anything_runs(tmp_path):
    """Probe: -p sedes '[0]' was only a warning and the chapter ran with its defaults."""
    nb = ROOT / "notebooks" / "04_mitigation.py"
    expected = (r"unknown parameter 'sedes' for 04_mitigation; its parameters are: profile, compute, "
                r"imbalance_factor, seeds, rule_k, n_splits, n_boot")  # fmt: skip
    with pytest.raises(ValueError, match=expected):
        execute_chapter(nb, tmp_path / "out.ipynb", {"profile": "smoke", "sedes": [0]})
    assert not (tmp_path / "out.ipynb").exists()


def test_every_chapter_declares_its_parameters_once():
    for nb in chapter_sources():
        import jupytext

        names = parameter_names(jupytext.read(nb))
        assert names[:2] == ["profile", "compute"] and len(set(names)) == len(names), nb.name
