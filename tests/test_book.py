"""Every chapter executes in the smoke profile; the book builds from them and works offline.

Slow (a few minutes): trains the smoke profile's tiny runs, executes each notebook with Papermill,
builds the Jupyter Book with warnings as errors and opens it in headless Chromium.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import papermill
import pytest

from ltmpq import plan, results
from ltmpq.config import DecoupledRun, get_profile
from ltmpq.paths import LANDING, ROOT, chapter_sources
from ltmpq.results import decode_predictions
from ltmpq.tools.execute import execute_chapter

NOTEBOOKS = chapter_sources()
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """Executed smoke-profile chapters inside a copy of book/, and the built HTML."""
    tmp = tmp_path_factory.mktemp("smoke-book")
    book = tmp / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    assert (book / "_mathjax" / "mathjax" / "tex-chtml.js").is_file(), "run `make` first: MathJax is missing"
    (book / "chapters").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        # The kernels inherit the environment: results and caches go to the temporary folder.
        mp.setenv("LTMPQ_RESULTS", str(tmp / "results"))
        mp.setenv("LTMPQ_CACHE", str(tmp / "cache"))
        for nb in NOTEBOOKS:
            execute_chapter(nb, book / "chapters" / f"{nb.stem}.ipynb", {"profile": "smoke", "compute": True})
        build = subprocess.run(
            [str(BIN / "jupyter-book"), "build", str(book), "--warningiserror", "--nitpick", "--keep-going"],
            capture_output=True, text=True,
        )  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return tmp


def test_every_chapter_executes_without_errors(smoke_book):
    for nb in NOTEBOOKS:
        executed = json.loads((smoke_book / "book" / "chapters" / f"{nb.stem}.ipynb").read_text())
        errors = [
            o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
        ]
        assert not errors, f"{nb.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
        params = [c for c in executed["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(params) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"


def test_smoke_runs_are_stored_with_provenance(smoke_book):
    """Every run of the smoke plan is stored, ok, with its provenance; the float entry of a sweep and
    chapter 4's float model reproduce chapter 2's predictions exactly (same machine, same weights)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTMPQ_RESULTS", str(smoke_book / "results"))
        for run in plan.unique(plan.grid("smoke")):
            assert results.run_state(run, "smoke") == "ok", run.describe()
            stored = results.fetch(run, "smoke")
            prov = stored["provenance"]
            assert prov["config"] == json.loads(json.dumps(asdict(run.config)))
            assert prov["data_source"]["kind"] in ("imagefolder-jpeg", "cifar-10-batches-py")
            assert prov["versions"]["torch"] and prov["git_commit"] and prov["device"]["cpu_model"]
            if run.kind == "stage1":
                assert len(stored["test"]["predictions"]) == len(stored["test_labels"]) == 1000
                continue
            # the run's own stage 2 (the model sets' and the mitigations' add logit adjustment)
            dec = results.fetch(plan.Run(DecoupledRun(run.stage1, run.config.decouple), "decoupled"), "smoke")
            if run.kind == "quantized":
                assert set(stored["entries"]) == {"float", *map(str, run.config.bits)}
                if run.config.keep_predictions:
                    crt = stored["entries"]["float"]["methods"]["crt"]["test"]["predictions"]
                    assert decode_predictions(crt).tolist() == dec["methods"]["crt"]["test"]["predictions"]
            if run.kind == "mpq":
                assert set(stored["sweep"]) == set(run.config.mpq.rule_heads) | set(
                    run.config.mpq.budget_heads
                )
                for a in stored["allocations"]:
                    if a["kind"] == "budget":
                        assert a["average_bits"] <= a["budget"] + 1e-9
                (flt,) = [a for a in stored["allocations"] if a["head"] == "crt" and a["kind"] == "float"]
                assert (
                    decode_predictions(flt["test"]["predictions"]).tolist()
                    == (dec["methods"]["crt"]["test"]["predictions"])
                )


def test_book_pages_exist_with_glued_numbers(smoke_book):
    html = smoke_book / "book" / "_build" / "html"
    for nb in NOTEBOOKS:
        page = (html / "chapters" / f"{nb.stem}.html").read_text()
        assert "Traceback" not in page
        assert "{glue:text}" not in page  # every glue reference was resolved
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_the_landing_page_and_the_conclusion_give_chapter_4s_verdicts(smoke_book):
    """The review's rule: the answers page cannot disagree with the verdict table it summarises."""
    from ltmpq.tools.gluecheck import dump_notebook

    glued = {n: dump_notebook(smoke_book / "book" / "chapters" / f"{n}.ipynb")["glue"]
             for n in ("04_mitigation", LANDING, "08_conclusion")}  # fmt: skip
    ch4 = {f"claim{c}": glued["04_mitigation"][f"claim{c}"] for c in (1, 2, 3, 4)}
    assert all(ch4.values())
    for page in (LANDING, "08_conclusion"):
        assert {k: glued[page][k] for k in ch4} == ch4, page
    # the landing page's table of every run exists in both formats and has the runs' rows
    data = smoke_book / "book" / "chapters" / "data"
    runs = pd.read_parquet(data / "runs.parquet")
    assert len(runs) == len(pd.read_csv(data / "runs.csv")) > 0
    assert set(runs["kind"]) >= {"stage1", "decoupled", "quantized", "mpq"}
    html = (smoke_book / "book" / "_build" / "html").glob("_downloads/*/runs.parquet")
    assert list(html), "the landing page links the Parquet table"


def test_book_opens_offline_in_chromium(smoke_book):
    from ltmpq.tools import bookcheck

    report = bookcheck.check_site(smoke_book / "book" / "_build" / "html",
                                  screenshot_dir=smoke_book / "screenshots")  # fmt: skip
    assert report.ok, report.summary()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_book_build_does_not_train(nb, tmp_path, monkeypatch):
    """With compute=False and no stored results, a chapter fails naming the command to run."""
    results_dir, cache = tmp_path / "results", tmp_path / "cache"
    monkeypatch.setenv("LTMPQ_RESULTS", str(results_dir))
    monkeypatch.setenv("LTMPQ_CACHE", str(cache))
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute_chapter(nb, tmp_path / "out.ipynb", {"profile": "smoke", "compute": False})
    assert err.value.ename == "MissingResultError"
    # the appendix first needs its recipe search, the chapters their runs
    appendix = nb.stem == "90_v2_model_set"
    command = "make recipe-search PROFILE=smoke" if appendix else "make runs PROFILE=smoke"
    assert command in err.value.evalue
    assert not results_dir.exists()  # nothing was trained or written
    assert not cache.exists()  # no data decoded, no checkpoint or features cached
    assert not (tmp_path / "out.ipynb").exists()  # no half-finished notebook left behind


@pytest.mark.parametrize("name", ["cpu"])
def test_published_profile_results_are_committed(name, monkeypatch):
    """The book's profile has every result of its plan committed and ok, each for its exact config,
    except the scale ladder's wider rungs and the model sets of other models (chapter 6), which the
    book reads when they exist; the model set of the profile's own models is complete."""
    monkeypatch.delenv("LTMPQ_RESULTS", raising=False)
    prof = get_profile(name)
    for run in plan.unique(plan.grid(name)):
        if run.rung is None and (run.family is None or not prof.families[run.family].stage1):
            assert results.run_state(run, name) == "ok", f"{run.describe()}: {run.command(name)}"


def test_chapter_4_runs_with_a_single_seed(smoke_book, tmp_path, monkeypatch):
    """Probe: -p seeds '[0]' crashed chapter 4 with KeyError 'metric'; cross-seed numbers now say
    that they need two seeds."""
    monkeypatch.setenv("LTMPQ_RESULTS", str(smoke_book / "results"))
    monkeypatch.setenv("LTMPQ_CACHE", str(smoke_book / "cache"))
    out = tmp_path / "04.ipynb"
    execute_chapter(ROOT / "notebooks" / "04_mitigation.py", out, {"profile": "smoke", "seeds": [0]})
    text = out.read_text()
    assert "needs ≥ 2 seeds" in text and '"output_type": "error"' not in text


def test_a_bad_chapter_parameter_is_one_line_and_exit_2(smoke_book, tmp_path, monkeypatch, capsys):
    """Probe: -p compute Flase trained; a user error now stops the chapter with one line."""
    from ltmpq.tools.execute import main

    monkeypatch.setenv("LTMPQ_RESULTS", str(smoke_book / "results"))
    out = tmp_path / "01.ipynb"
    rc = main([str(ROOT / "notebooks" / "01_evaluation.py"), str(out), "-p", "profile", "smoke",
               "-p", "compute", "Flase"])  # fmt: skip
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err  # papermill's progress bar writes there too
    assert [line for line in err.splitlines() if line.startswith("error")] == [
        "error: 01_evaluation: ValueError: compute must be True or False, got 'Flase'"
    ]
    assert "Traceback" not in err
