"""ltmpq.cli: the command line's own behaviour (``run`` and ``status`` details live with their modules)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from fakes import save_fake

from ltmpq import engine, plan
from ltmpq.cli import main
from ltmpq.paths import ROOT


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
    models = {(r.stage1.tag, r.rung or r.family) for r in runs}
    assert len(lines) == len(models)
    assert all("decoupled: missing" in line for line in lines)
    # a model is listed once: the VGG16 set's rows (the profile's own models) show their stage 2 only
    assert sum("stage1: missing" in line for line in lines) == len(plan.select(runs, kind="stage1"))
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


def test_cli_help_lists_the_chapter_5_stages_without_importing_torch():
    code = (
        "import sys\nimport ltmpq.cli as cli\ntry:\n    cli.main(['run', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint('torch imported:', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "{stage1,decoupled,quantized,mpq,hypotheses,explain,ladder,families,mitigations,all}" in out.stdout
    assert out.stdout.strip().endswith("torch imported: False")


# ------------------------------------------------------------------ bad input


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_stage_that_has_nothing_to_do_says_so_and_fails(capsys):
    """Probes: run --stage mpq --if 0.1 and run_profile(stages=("stage2",)) finished "done in 0 s"."""
    rc, _, err = _run(["run", "--profile", "smoke", "--stage", "explain", "--if", "0.1"], capsys)
    assert rc == 2
    assert err == ("error: nothing to do: stage explain runs at imbalance factors [0.01] only "
                   "(profile 'smoke'), and the request is for [0.1]\n")  # fmt: skip
    rc, _, err = _run(["run", "--profile", "cpu-v1", "--stage", "mpq", "--if", "0.1"], capsys)
    assert rc == 2 and err.startswith("error: nothing to do: stage mpq runs at imbalance factors [0.01] only")
    with pytest.raises(ValueError, match=r"unknown stages \['stage2'\]; choose from \['stage1', 'decoupled'"):
        engine.run_grid("smoke", stages=("stage2",))


def test_repeated_if_and_seed_options_add_up(capsys):
    """Probe: --if 0.1 --if 0.01 kept only the last value."""
    argv = ["status", "--profile", "smoke", "--if", "0.1", "--if", "0.01", "--seed", "0", "--seed", "1"]
    rc, out, _ = _run(argv, capsys)
    assert rc == 1  # nothing stored here
    lines = [line.split()[0] for line in out.splitlines()[1:]]
    assert lines[:4] == ["if0.1-seed0", "if0.1-seed1", "if0.01-seed0", "if0.01-seed1"]
    # then the scale ladder's wider models of both seeds (it runs at IF 0.01)
    assert lines[4:8] == [f"if0.01-seed{s}-{r}" for s in (0, 1) for r in ("w0.125", "fc128-drop0.5")]
    # then the model sets (chapter "Beyond VGG16 and cRT"), IF, seed, then set
    assert lines[8:] == ["if0.1-seed0", "if0.1-seed1"] + [
        f"if0.01-seed{s}{t}" for s in (0, 1) for t in ("", "-resnet32", "-la")
    ]


@pytest.mark.parametrize(("option", "message"), [
    (["--seed", "-1"], r"argument --seed: a seed is an int in \[0, 4294967295\], got -1"),
    (["--seed", "x"], r"argument --seed: a seed is an int in \[0, 4294967295\], got 'x'"),
    (["--if", "2"], r"argument --if: an imbalance factor is in \(0, 1\] \(n_min / n_max\), got 2"),
])  # fmt: skip
def test_bad_seeds_and_imbalance_factors_are_refused_by_the_parser(option, message, capsys):
    """Probe: --seed -1 failed deep in numpy."""
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--profile", "smoke", *option])
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_user_error_is_one_line_and_debug_shows_the_traceback(capsys, patched_data, monkeypatch):
    """Probe: user errors arrived under 20-60-line tracebacks."""
    from dataclasses import replace

    from ltmpq.config import PROFILES

    tiny = {**PROFILES["smoke"].stage1, "val_per_class": 5, "n_max": 15}  # what tiny_cifar holds
    monkeypatch.setitem(PROFILES, "smoke", replace(PROFILES["smoke"], stage1=tiny))
    argv = ["run", "--profile", "smoke", "--if", "1e-9", "--seed", "0", "--stage", "stage1", "--quiet"]
    rc, _, err = _run(argv, capsys)
    assert rc == 1  # the task ran and failed: it is named with its config, no traceback
    failed, summary = err.strip().splitlines()
    assert failed.startswith("failed: stage1 of if1e-09-seed0 [Stage1Config ")
    assert "seed 0]: ValueError: " in failed
    assert "imbalance factor 1e-09 leaves class" in failed and "about" in failed
    assert summary.startswith("error: 1 of 1 tasks did not finish")
    with pytest.raises(ValueError, match="leaves class"):
        main(
            [
                "--debug",
                "run",
                "--profile",
                "smoke",
                "--if",
                "1e-9",
                "--seed",
                "0",
                "--stage",
                "stage1",
                "--quiet",
            ]
        )


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(capsys, monkeypatch):
    """Probe: SIGINT printed a 41-line traceback."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    import ltmpq.engine

    monkeypatch.setattr(ltmpq.engine, "run_grid", interrupted)
    rc, _, err = _run(["run", "--profile", "smoke"], capsys)
    assert rc == 130
    assert err.strip() == "interrupted: finished epochs and results are kept; the same command resumes"
