"""Nothing bad is silently accepted: every probe of the bad-input issue, at the door it now meets.

Each test names the probe it pins; each failed (or passed silently) before the checks existed.
Data-location probes (explicit LTMPQ_DATA, incomplete copies, unreadable files, download timeout)
are in test_data.py, incomplete result files in test_results.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import ltmpq.artifacts as artifacts
import ltmpq.runs as runs
from ltmpq import engine, frames, io, params, plan
from ltmpq.analysis import ch4_mitigation as ch4
from ltmpq.cli import main
from ltmpq.config import DecoupleConfig, MPQConfig, QuantConfig, Stage1Config
from ltmpq.data import DataError, long_tail_counts, make_splits
from ltmpq.paths import ROOT
from ltmpq.tools.execute import execute_chapter, parameter_names

# ------------------------------------------------------------------ configs


def test_numpy_scalars_are_accepted_as_the_plain_numbers_they_are():
    cfg = Stage1Config(imbalance_factor=np.float32(0.5), seed=np.int64(3))
    assert cfg.imbalance_factor == 0.5 and type(cfg.imbalance_factor) is float
    assert cfg.seed == 3 and type(cfg.seed) is int
    assert cfg == Stage1Config(imbalance_factor=0.5, seed=3) and cfg.key == Stage1Config(0.5, 3).key


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 0, r"width must be in \(0, 4\], got 0.0"),
        ("seed", -1, r"seed must be in \[0, inf\], got -1"),
        ("seed", 1.5, "seed must be an int, got 1.5"),
        ("epochs", True, "epochs must be an int, got True"),
        ("lr", float("nan"), "lr must be a finite number, got nan"),
        ("momentum", 1.0, r"momentum must be in \[0, 1\), got 1.0"),
        ("n_max", 0, r"n_max must be in \[1, inf\], got 0"),
        ("warmup_epochs", 40, r"warmup_epochs \(40\) must not exceed epochs \(30\)"),
        ("precision", "fp16", r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"),
    ],
)
def test_stage1_config_checks_every_field_when_constructed(field, value, message):
    """Probe: Stage1Config(width=0) was accepted until the model was built, after the data load."""
    with pytest.raises(ValueError, match=message):
        Stage1Config(imbalance_factor=0.1, **{field: value})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MPQConfig(rule_bits=(4, 6)), r"rule_bits must be \(high, low\) with high > low bits"),
        (lambda: MPQConfig(rule_heads=("nope",)), r"unknown rule_heads \['nope'\]; choose from \['baseline'"),
        (lambda: MPQConfig(budget_heads=("crt", "x")), r"unknown budget_heads \['x'\]"),
        (lambda: MPQConfig(random_tolerance=0), r"random_tolerance must be in \(0, inf\]"),
        (lambda: DecoupleConfig(tau_grid="0.5"), "tau_grid must be a non-empty sequence of numbers"),
        (lambda: DecoupleConfig(lr=-1), r"lr must be in \(0, inf\]"),
        (lambda: QuantConfig(fold_bn="no"), "fold_bn must be True or False, got 'no'"),
        (lambda: QuantConfig(calibration_seed=-2), r"calibration_seed must be in \[0, inf\]"),
    ],
)
def test_stage2_quantizer_and_mpq_configs_check_their_fields(make, message):
    """Probe: MPQConfig(rule_bits=(4, 6)) and rule_heads=("nope",) were accepted."""
    with pytest.raises(ValueError, match=message):
        make()


# ------------------------------------------------------------------ imbalance factor and classes


def test_an_imbalance_factor_that_empties_a_class_names_the_smallest_usable_one():
    """Probe: --if 1e-9 gave 7 classes with no training image and a 3-output network, stored."""
    with pytest.raises(ValueError, match=r"leaves class 4 with no training image \(n_max = 4900\); the "
                       r"smallest that keeps one image per class is 1/4900, about 0.000205"):  # fmt: skip
        long_tail_counts(4900, 1e-9)
    assert long_tail_counts(4900, 0.000205)[-1] == 1  # the number said works
    with pytest.raises(ValueError, match="leaves class 5 with no training image"):
        long_tail_counts(10, 0.05, profile="step")


def test_training_labels_without_every_class_are_refused():
    """Probe: an empty class folder became a 9-class study stored under the normal name."""
    labels = np.repeat(np.arange(9), 20)  # truck absent
    with pytest.raises(DataError, match=r"hold 9 of CIFAR-10's 10 classes \(absent: \[9\]\)"):
        make_splits(labels, np.repeat(np.arange(10), 2), 0.5, val_per_class=2)


# ------------------------------------------------------------------ chapter parameters


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compute": "Flase"}, "compute must be True or False, got 'Flase'"),
        ({"compute": 1}, "compute must be True or False, got 1"),
        ({"seeds": 0}, r"seeds must be a list such as \[0, 1\] or None \(the profile's\), got 0"),
        ({"seeds": [0, -1]}, "seeds must be an int >= 0, got -1"),
        ({"seeds": [0, 0]}, r"seeds must not repeat a seed, got \[0, 0\]"),
        ({"seeds": "01"}, "seeds must be a list"),
        ({"imbalance_factors": 0.01}, r"imbalance_factors must be a list such as \[0.1, 0.01\]"),
        ({"imbalance_factors": [0.1, 2]}, r"imbalance_factors must be numbers in \(0, 1\], got 2"),
        ({"profile": 3}, "profile must be a profile name, got 3"),
    ],
)
def test_chapter_parameters_of_the_wrong_type_are_refused(kwargs, message):
    """Probes: -p compute Flase trained (a non-empty string is truthy); -p seeds 0 failed with
    "'int' object is not iterable"."""
    with pytest.raises(ValueError, match=message):
        params.ChapterParams(**{"profile": "smoke", **kwargs})


def test_chapter_3_and_4_parameters_are_checked_too():
    assert params.QuantizationParams("smoke", variants=["per-tensor"]).variant_names == [
        "default",
        "per-tensor",
    ]
    with pytest.raises(ValueError, match=r"unknown quantizer variants \['nope'\]"):
        params.QuantizationParams("smoke", variants=["nope"])
    with pytest.raises(ValueError, match="variants must be a list"):
        params.QuantizationParams("smoke", variants="default")
    with pytest.raises(ValueError, match="n_boot must be an int >= 100, got 5"):
        params.QuantizationParams("smoke", n_boot=5)
    with pytest.raises(ValueError, match=r"rule_k=4 was not run; the profile's MPQ runs have k in \[8\]"):
        params.MitigationParams("smoke", rule_k=4)
    with pytest.raises(ValueError, match="n_splits must be an int >= 1, got 0"):
        params.MitigationParams("smoke", n_splits=0)


def test_an_unknown_chapter_parameter_is_refused_before_anything_runs(tmp_path):
    """Probe: -p sedes '[0]' was only a warning and the chapter ran with its defaults."""
    nb = ROOT / "notebooks" / "04_mitigation.py"
    expected = (r"unknown parameter 'sedes' for 04_mitigation; its parameters are: profile, compute, "
                r"imbalance_factor, seeds, rule_k, n_splits, n_boot")  # fmt: skip
    with pytest.raises(ValueError, match=expected):
        execute_chapter(nb, tmp_path / "out.ipynb", {"profile": "smoke", "sedes": [0]})
    assert not (tmp_path / "out.ipynb").exists()


def test_every_chapter_declares_its_parameters_once():
    for nb in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        import jupytext

        names = parameter_names(jupytext.read(nb))
        assert names[:2] == ["profile", "compute"] and len(set(names)) == len(names), nb.name


# ------------------------------------------------------------------ stored results and caches


def test_swept_bits_are_checked_not_truncated(tiny_cfg, patched_data):
    """Probe: quantized(bits=(4.5, "6")) silently became [4, 6]."""
    for bad in ((4.5, 6), ("6",), (), "8", ("float", 8)):
        with pytest.raises(ValueError, match="bit"):
            runs.quantized(tiny_cfg, DecoupleConfig(), QuantConfig(), bad, "smoke", compute=True)
    assert not patched_data  # refused before any data was read


def test_bits_that_a_stored_sweep_lacks_get_a_clear_error():
    """Probe: quant_predictions(..., 8) and layer_losses(..., 7) raised a bare KeyError."""
    cfg = Stage1Config(imbalance_factor=0.1)
    entry = {"methods": {"crt": {"test": {"predictions": "0123456789"}}}}
    by_cfg = {cfg: {"entries": {"float": entry, "8": entry}}}
    s1 = {cfg: {"test_labels": list(range(10))}}
    assert frames.quant_predictions(by_cfg, s1, 0.1, "crt", 8)[1].shape == (1, 10)  # 8 reads as "8"
    with pytest.raises(ValueError, match=r"if0.1-seed0 has no sweep at bits 4; it has \['float', '8'\]"):
        frames.quant_predictions(by_cfg, s1, 0.1, "crt", 4)
    with pytest.raises(ValueError, match=r"has no method 'lws'; it has \['crt'\]"):
        frames.quant_predictions(by_cfg, s1, 0.1, "lws", 8)
    r = {"sweep": {"crt": {"float": "01", "layers": {"L1": {"4": {}}, "L2": {"4": {}, "6": {}}}}}}
    with pytest.raises(ValueError, match=r"no layer quantized at 7 bits; it has \[4, 6\]"):
        ch4.layer_losses(r, "crt", 7)
    with pytest.raises(ValueError, match=r"no head 'lws'; it has \['crt'\]"):
        ch4.layer_losses(r, "lws", 4)


@pytest.mark.parametrize("entry", ["checkpoint", "features", "classifiers"])
def test_a_loadable_but_incomplete_cache_entry_is_rebuilt(tiny_cfg, patched_data, entry, caplog):
    """Probe: {} as a checkpoint crashed with KeyError instead of being rebuilt like a corrupt one."""
    dcfg = DecoupleConfig(epochs=2, batch_size=32, tau_grid=(0.0, 1.0))
    before = artifacts.classifiers(tiny_cfg, dcfg, progress=False)
    run = artifacts.run_dir(tiny_cfg)
    if entry == "checkpoint":
        (run / "features.pt").unlink()
        torch.save({}, run / "checkpoint.pt")
    elif entry == "features":
        sha = artifacts.features(tiny_cfg, progress=False)["weights_sha256"]
        stub = {"config_hash": tiny_cfg.key, "data_sha256": None, "weights_sha256": sha}
        torch.save(stub, run / "features.pt")
    else:
        sha = artifacts.features(tiny_cfg, progress=False)["weights_sha256"]
        torch.save({}, artifacts.classifiers_path(tiny_cfg, dcfg, sha))
    with caplog.at_level("WARNING", logger="ltmpq"):
        after = artifacts.classifiers(tiny_cfg, dcfg, progress=False)
    for name, head in before.items():  # rebuilt to the same classifiers: everything is seeded
        for k, v in head.state_dict().items():
            assert torch.equal(v, after[name].state_dict()[k]), (name, k)
    if entry != "checkpoint":  # the checkpoint's note goes to tqdm, the caches' to the log
        assert "incomplete cache entry" in caplog.text


def test_the_leftover_of_a_writer_killed_mid_write_is_cleaned_by_the_next_write(tmp_path):
    """Probe: the orphan .checkpoint.pt.*.tmp of a SIGKILL during a write was never cleaned up."""
    target = tmp_path / "checkpoint.pt"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from ltmpq.io import atomic_write\n"
        "def write(tmp):\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: no cleanup runs\n"
        "atomic_write(Path(sys.argv[1]), write)\n"
    )  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    (orphan,) = tmp_path.glob(".checkpoint.pt.*.tmp")
    assert not target.exists()
    old = time.time() - io.ORPHAN_AGE_S - 1
    os.utime(orphan, (old, old))
    fresh = tmp_path / ".checkpoint.pt.writer-still-at-work.tmp"
    fresh.write_bytes(b"")
    io.atomic_write(target, lambda tmp: tmp.write_bytes(b"a whole checkpoint"))
    assert target.read_bytes() == b"a whole checkpoint"
    assert not orphan.exists() and fresh.exists()  # a recent one may be another writer's


# ------------------------------------------------------------------ the command line


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
    assert lines[4:] == [f"if0.01-seed{s}-{r}" for s in (0, 1) for r in ("w0.125", "fc128-drop0.5")]


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


def test_a_run_refuses_a_stored_result_of_other_data(tiny_cfg, patched_data, monkeypatch, capsys):
    """A stored result is never reused for data it was not computed on."""
    runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    monkeypatch.setattr(artifacts, "data_digest", lambda: "f" * 64)
    import ltmpq.results as results

    path = plan.result_path("smoke", "stage1", tiny_cfg)
    stored = results.load(path, tiny_cfg)
    stored["provenance"]["data_source"]["sha256"] = "a" * 64
    io.write_json(path, stored)
    other = r"is other data \(computed on aaaaaaaaaaaa, this machine's copy is ffffffffffff\): move it away"
    with pytest.raises(results.ResultError, match=other):
        runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    assert runs.stage1(tiny_cfg, "smoke", compute=False)["provenance"]["data_source"]["sha256"] == "a" * 64


@pytest.mark.parametrize(
    ("change", "named"),
    [({"act_bits": 8}, "'act_bits': 8"), ({"logit_bits": 8}, "'logit_bits': 8"),
     ({"first_last_bits": 8}, "'first_last_bits': 8"),
     ({"weight_scheme": "affine"}, "'weight_scheme': 'affine'")],
)  # fmt: skip
def test_chapter_4_refuses_a_quantizer_it_does_not_implement(change, named, tiny_cfg):
    # before looking for a stored result: a bad request is not a missing one
    with pytest.raises(
        ValueError, match=f"quantizes weights only, symmetrically; this QuantConfig sets {{{named}}}"
    ):
        runs.mixed_precision(tiny_cfg, DecoupleConfig(), QuantConfig(**change), MPQConfig(), "smoke")
