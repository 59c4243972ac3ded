"""ltmpq.cli: the command line's own behaviour (``run`` and ``status`` details live with their modules)."""

from __future__ import annotations

import os
import subprocess
import sys

from fakes import save_fake

from ltmpq import plan
from ltmpq.cli import main


def test_status_into_a_closed_pipe_ends_quietly(isolated_dirs):
    """Probe: `ltmpq status | head -1` ended with a BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader (head) has gone before the first line
    try:
        done = subprocess.run([sys.executable, "-m", "ltmpq", "status", "--profile", "smoke"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""


def test_status_on_empty_results_lists_every_model_and_rung_as_missing(capsys, isolated_dirs):
    assert main(["status", "--profile", "smoke"]) == 1
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header == "data here: not decoded yet (results not checked against it)"
    runs = plan.unique(plan.grid("smoke"))
    models = {(r.stage1.tag, r.rung) for r in runs}
    assert len(lines) == len(models)
    assert all("stage1: missing" in line and "decoupled: missing" in line for line in lines)
    rungs = {r.rung for r in runs} - {None}
    assert rungs and all(sum(f"({rung})  " in line for line in lines) == len(plan.select(runs, kind="stage1",
                         rung=rung)) for rung in rungs)  # fmt: skip
    assert not isolated_dirs["results"].exists()  # status writes nothing


def test_status_is_ok_exactly_when_every_run_of_the_plan_is(capsys):
    """Each run of the plan in turn: status stays 1 until the last one is stored, then 0."""
    runs = plan.unique(plan.grid("smoke", [0.01], [0]))
    for i, run in enumerate(runs):
        assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 1, i
        capsys.readouterr()
        save_fake(run)
    assert main(["status", "--profile", "smoke", "--if", "0.01", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "missing" not in out and out.count(" ok") + out.count("ok (") >= len(
        {(r.stage1.tag, r.rung) for r in runs}
    )
    # a hypothesis equal to a chapter-3 variant is one result, counted once
    assert len(runs) < len(plan.grid("smoke", [0.01], [0]))


def test_status_and_run_name_a_damaged_result_alike(capsys):
    runs = plan.unique(plan.grid("smoke", [0.1], [0], ["stage1"]))
    save_fake(runs[0])
    runs[0].path("smoke").write_text("null")
    assert main(["status", "--profile", "smoke", "--if", "0.1", "--seed", "0"]) == 1
    assert "stage1: unreadable (not a result (a JSON null, not an object))" in capsys.readouterr().out
    assert main(["run", "--profile", "smoke", "--if", "0.1", "--seed", "0", "--stage", "stage1"]) == 1
    err = capsys.readouterr().err
    assert "is unreadable (not a result" in err and "--remake" in err
