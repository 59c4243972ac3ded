"""Published weights (ltmpq.weights): safetensors beside the results, verified by digest; every
stage after stage 1 runs from them without training; stale and damaged weights are refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import ltmpq.artifacts as artifacts
import ltmpq.data
import ltmpq.runs as runs
import ltmpq.weights as weights
from ltmpq import paths, plan, provenance, results
from ltmpq.config import DecoupledRun, get_profile
from ltmpq.paths import ROOT
from ltmpq.training import predict

SMOKE = get_profile("smoke")
COMMITTED = ROOT / "results" / "smoke"
#: Where the real CIFAR-10 copy is for the tests that need it (CI exports LTMPQ_DATA; the
#: conftest points LTMPQ_DATA elsewhere for every other test).
REAL_DATA = os.environ.get("LTMPQ_DATA") or str(ROOT.parent / "shared" / "data")


# ------------------------------------------------------------------ the file format


def test_save_load_roundtrip_and_the_digest_is_the_files():
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    path = paths.results_dir() / "x" / "models" / "w.safetensors"
    sha = weights.save(path, state, {"tag": "t", "kind": "stage1"})
    assert sha == weights.digest(state, {"kind": "stage1", "tag": "t"})  # key order does not matter
    import hashlib

    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    got = weights.load(path, sha, "fix it")
    assert set(got) == {"a", "b"} and torch.equal(got["a"], state["a"]) and got["b"].dtype == torch.int64
    assert weights.metadata_of(path) == {"kind": "stage1", "tag": "t"}
    assert weights.find("w.safetensors") == path and weights.find("nope.safetensors") is None


def test_the_digest_is_the_same_in_every_process():
    """safetensors writes several metadata entries in hash-map order: one entry of sorted JSON is stable."""
    meta = "{'kind': 'stage1', 'tag': 'a', 'config_hash': 'b'}"
    code = f"import torch; from ltmpq import weights; print(weights.digest({{'w': torch.ones(3)}}, {meta}))"
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
               for _ in range(4)}  # fmt: skip
    assert len(digests) == 1


def test_a_channels_last_state_is_stored_as_its_values():
    w = torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
    path = paths.results_dir() / "m.safetensors"
    weights.save(path, {"w": w})
    assert torch.equal(weights.load(path, None, "")["w"], w)


@pytest.mark.parametrize("damage", ["replaced", "truncated", "garbled", "missing"])
def test_damaged_weights_are_refused_naming_both_digests_and_the_fix(damage):
    path = paths.results_dir() / "m.safetensors"
    sha = weights.save(path, {"w": torch.ones(10)})
    if damage == "replaced":
        weights.save(path, {"w": torch.zeros(10)})
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:30])
    elif damage == "garbled":
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json" + b"\x00" * 20)
        with pytest.raises(weights.WeightsError, match="is not a readable safetensors file"):
            weights.load(path, None, "retrain it")
    else:
        path.unlink()
        with pytest.raises(weights.WeightsError, match="cannot read the weights .*; retrain it"):
            weights.load(path, sha, "retrain it")
        return
    said = rf"has SHA-256 \w{{16}}…, but its result was computed from {sha[:16]}…: the file was replaced"
    with pytest.raises(weights.WeightsError, match=said + r" or damaged\. Restore it \(git checkout -- "):
        weights.load(path, sha, "retrain it")


def test_classifier_states_split_and_join():
    states = {
        "crt": {"weight": torch.ones(2, 3), "bias": torch.zeros(2)},
        "lws": {"base.weight": torch.ones(1)},
    }
    flat = weights.join_classifiers(states)
    assert set(flat) == {"crt.weight", "crt.bias", "lws.base.weight"}
    back = weights.split_classifiers(flat)
    assert set(back) == {"crt", "lws"} and set(back["lws"]) == {"base.weight"}


# ------------------------------------------------------------------ runs and weights


def test_a_run_publishes_its_weights_and_everything_downstream_names_them(tiny_cfg, patched_data):
    dcfg = SMOKE.decouple
    s1 = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    path = paths.results_dir() / "smoke" / s1["weights"]
    assert path.is_file() and weights.load(
        path, s1["weights_sha256"], ""
    )  # the recorded digest is the file's
    dec = runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    q = runs.quantized(tiny_cfg, dcfg, SMOKE.quant, (8,), "smoke", compute=True, progress=False)
    assert dec["weights_sha256"] == q["weights_sha256"] == s1["weights_sha256"]
    assert q["classifiers_sha256"] == dec["classifiers_sha256"]
    assert weights.metadata_of(path) == {"kind": "stage1", "tag": tiny_cfg.tag, "config_hash": tiny_cfg.key}


def test_later_stages_never_train_a_model_whose_weights_are_published(tiny_cfg, patched_data, monkeypatch):
    dcfg = SMOKE.decouple
    runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    shutil.rmtree(artifacts.run_dir(tiny_cfg))  # a fresh clone: no checkpoint, no cache

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the weights are published")

    monkeypatch.setattr(artifacts, "train_stage1", no_training)
    dec = runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    assert dec["methods"]["crt"]["test"]["predictions"]


def test_features_of_other_weights_are_never_reused(tiny_cfg, patched_data):
    first = artifacts.features(tiny_cfg, progress=False)
    other = artifacts.build_model(tiny_cfg.__class__(**{**tiny_cfg.__dict__, "seed": 9}))
    again = artifacts.features(tiny_cfg, progress=False, model=(other, "f" * 64))
    assert again["weights_sha256"] == "f" * 64 and not torch.equal(again["test_logits"], first["test_logits"])


def test_retrain_makes_downstream_results_stale_until_remade(tiny_cfg, patched_data):
    dcfg = SMOKE.decouple
    runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    old = runs.stage1(tiny_cfg, "smoke")["weights_sha256"]
    # a retrained model with other weights (here: the stored digest rewritten, as a new model would)
    path = plan.result_path("smoke", "stage1", tiny_cfg)
    stored = results.load(path, tiny_cfg)
    stored["weights_sha256"] = "e" * 64
    from ltmpq.io import write_json

    write_json(path, stored)
    said = r"is stale \(computed from weights \w{12}, its stage-1 run's are eeeeeeeeeeee\): remake it with"
    with pytest.raises(results.ResultError, match=said):
        runs.decoupled(tiny_cfg, dcfg, "smoke", compute=False)
    with pytest.raises(results.ResultError, match=said):  # a computing run does not replace it unasked
        runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    assert old != "e" * 64


def test_a_result_that_predates_published_weights_is_not_silently_retrained(tiny_cfg, patched_data):
    """Chapter 4's trouble: training again from the config gave another model than chapter 1's."""
    s1 = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    (paths.results_dir() / "smoke" / s1["weights"]).unlink()
    path = plan.result_path("smoke", "stage1", tiny_cfg)
    legacy = {k: v for k, v in results.load(path, tiny_cfg).items() if k not in ("weights", "weights_sha256")}
    from ltmpq.io import write_json

    write_json(path, legacy)
    said = r"has no published weights \(it predates them\).*retrain it: make runs PROFILE=smoke "
    with pytest.raises(weights.WeightsError, match=said + r"RUN_ARGS='--if 0.5 --seed 0 --retrain'"):
        artifacts.stage1_weights(tiny_cfg)
    redone = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False, retrain=True)
    assert redone["weights_sha256"] and redone["test"]["predictions"] == s1["test"]["predictions"]


# ------------------------------------------------------------------ the committed smoke weights


def _committed_runs():
    out = []
    for cfg in SMOKE.stage1_configs():
        s1 = results.load(COMMITTED / "stage1" / plan.result_path("smoke", "stage1", cfg).name, cfg)
        assert s1 is not None and s1.get("weights_sha256"), (
            f"results/smoke lacks {cfg.tag}: make runs PROFILE=smoke"
        )
        out.append((cfg, s1))
    return out


def test_the_committed_smoke_weights_match_their_results_digests(monkeypatch):
    monkeypatch.setenv("LTMPQ_RESULTS", str(ROOT / "results"))
    for cfg, s1 in _committed_runs():
        model, sha = artifacts.stage1_weights(cfg)  # verified against the result's digest, no data read
        assert sha == s1["weights_sha256"] and (COMMITTED / s1["weights"]).is_file()
        run = DecoupledRun(cfg, SMOKE.decouple)
        dec = results.load(COMMITTED / "decoupled" / plan.result_path("smoke", "decoupled", run).name, run)
        assert dec["weights_sha256"] == sha and (COMMITTED / dec["classifiers"]).is_file()


def test_a_damaged_committed_weights_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(COMMITTED, tmp_path / "smoke")
    monkeypatch.setenv("LTMPQ_RESULTS", str(tmp_path))
    cfg, s1 = _committed_runs()[0]
    target = tmp_path / "smoke" / s1["weights"]
    target.write_bytes(target.read_bytes()[:-100] + b"\x00" * 100)
    with pytest.raises(
        weights.WeightsError, match=rf"but its result was computed from {s1['weights_sha256'][:16]}"
    ):
        artifacts.stage1_weights(cfg)


@pytest.mark.slow
def test_the_committed_weights_reproduce_the_stored_predictions(monkeypatch, tmp_path):
    """From a fresh clone: the committed smoke models give their stored test predictions exactly on
    the machine kind that trained them (elsewhere the agreement is reported)."""
    monkeypatch.setenv("LTMPQ_RESULTS", str(ROOT / "results"))
    monkeypatch.setenv("LTMPQ_DATA", REAL_DATA)
    monkeypatch.setattr(ltmpq.data, "data_candidates", paths.data_candidates)
    try:
        data = ltmpq.data.load_cifar10()
    except ltmpq.data.DataNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no CIFAR-10 copy at {REAL_DATA}")
    here = (provenance.cpu_model(), torch.backends.cpu.get_cpu_capability())
    for cfg, s1 in _committed_runs():
        model, _ = artifacts.stage1_weights(cfg, data)
        _, logits = predict(model, torch.from_numpy(data.test_x[artifacts.splits_for(cfg, data).test]))
        agreement = float(np.mean(logits.argmax(1).numpy() == np.asarray(s1["test"]["predictions"])))
        made = (s1["provenance"]["device"]["cpu_model"], s1["provenance"]["device"]["cpu_capability"])
        if made == here:
            assert agreement == 1.0, (
                f"{cfg.tag}: {agreement:.4f} of the stored predictions on the machine kind that made them"
            )
        else:
            print(f"{cfg.tag}: {100 * agreement:.2f}% agreement on {here}, trained on {made}")
            assert agreement > 0.95
