"""ltmpq.runs: making a run of any kind, and the published artifacts it never overwrites unasked.

Each probe test names what a new user's probe found before: a damaged result retrained over the
committed weights, weights that do not fit their config used, an outdated result left in place
and read by the chapters, two processes computing one result.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time

import numpy as np
import pytest
import torch

import ltmpq.artifacts as artifacts
from ltmpq import config, plan, results, runs, weights
from ltmpq.cli import main
from ltmpq.config import DecoupleConfig, DecoupledRun, QuantConfig, config_hash, get_profile
from ltmpq.data import long_tail_counts
from ltmpq.metrics import evaluate
from ltmpq.vocab import METHODS


def _same_json(a, b) -> bool:
    """Equality as stored: NaN equals NaN, tuples equal lists."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


SMOKE = get_profile("smoke")


def _weights_file(cfg):
    return weights.path_for("smoke", weights.stage1_name(cfg))


def test_make_makes_a_run_of_every_kind_from_the_plan(tiny_cfg, patched_data, monkeypatch):
    """One function makes any run the plan lists; its result is the stage function's own."""
    made = {}
    for name in ("stage1", "decoupled", "quantized", "mpq", "explain"):
        monkeypatch.setattr(runs, {"quantized": "quantized", "mpq": "mixed_precision"}.get(name, name),
                            lambda *a, _n=name, **k: made.setdefault(_n, (a, k)) and _n)  # fmt: skip
    for run in plan.unique(plan.grid("smoke", [0.01], [0])):
        assert runs.make(run, "smoke", compute=True) == run.kind
    args, kwargs = made["quantized"]
    assert args[0] == SMOKE.stage1_config(0.01, 0) and kwargs["compute"] is True
    assert set(made) == {"stage1", "decoupled", "quantized", "mpq", "explain"}


@pytest.mark.parametrize("damage", ["null", "{", '{"schema": 1}'])
def test_a_damaged_result_is_never_retrained_over_its_published_weights(damage, tiny_cfg, patched_data):
    """Probe: a stage-1 result holding null (or cut short) was silently retrained, overwriting the
    committed weights, without --retrain."""
    runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    path, published = plan.result_path("smoke", "stage1", tiny_cfg), _weights_file(tiny_cfg)
    before = published.read_bytes()
    path.write_text(damage)
    with pytest.raises(
        results.ResultError, match=rf"is unreadable .*git checkout -- .*{path.name}.*--remake"
    ):
        runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    assert published.read_bytes() == before and path.read_text() == damage
    with pytest.raises(results.ResultError, match="unreadable"):  # and a chapter, reading it, refuses it too
        results.fetch(plan.Run(tiny_cfg, "stage1"), "smoke")


def test_remake_replaces_a_damaged_result_when_asked(tiny_cfg, patched_data):
    first = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    path = plan.result_path("smoke", "stage1", tiny_cfg)
    path.write_text("null")
    again = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False, remake=True)
    assert again["weights_sha256"] == first["weights_sha256"]  # the same model, trained again
    assert results.state(path, tiny_cfg) == "ok"


def test_published_weights_without_their_result_are_not_overwritten(tiny_cfg, patched_data):
    runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    plan.result_path("smoke", "stage1", tiny_cfg).unlink()
    with pytest.raises(weights.WeightsError, match=r"is published but its result .* is not.*--retrain"):
        runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)


def test_weights_that_do_not_fit_their_config_are_refused(tiny_cfg, patched_data):
    """Probe: a weights file with 5 classes (its digest recorded) was loaded into a 5-class model,
    and the run rewrote a committed result."""
    s1 = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    path = _weights_file(tiny_cfg)
    state = weights.load(path, s1["weights_sha256"], "")
    state = {k: (v[:5] if k.startswith("layers.L16") else v) for k, v in state.items()}
    sha = weights.save(path, state, artifacts.weights_metadata(tiny_cfg))
    stored = plan.result_path("smoke", "stage1", tiny_cfg)
    stored.write_text(stored.read_text().replace(s1["weights_sha256"], sha))
    misfit = r"does not fit its config .*layers.L16.bias is \[5\], its config needs \[10\]; restore it"
    with pytest.raises(weights.WeightsError, match=misfit):
        artifacts.stage1_weights(tiny_cfg)
    with pytest.raises(weights.WeightsError, match="does not fit"):
        runs.decoupled(tiny_cfg, SMOKE.decouple, "smoke", compute=True, progress=False)
    assert not plan.result_path("smoke", "decoupled", DecoupledRun(tiny_cfg, SMOKE.decouple)).exists()


def test_status_run_and_chapters_agree_on_an_outdated_result(tiny_cfg, patched_data, monkeypatch, capsys):
    """Probe: a result of an older stage version was "outdated" in status, but run left it and the
    chapters read it."""
    qcfg, bits = QuantConfig(calibration_size=10), (8, 4)
    first = runs.quantized(tiny_cfg, SMOKE.decouple, qcfg, bits, "smoke", compute=True, progress=False)
    monkeypatch.setitem(plan.STAGE_VERSIONS, "quantized", plan.STAGE_VERSIONS["quantized"] + 1)
    run = runs._quantizer_run(tiny_cfg, SMOKE.decouple, qcfg, bits, True, "smoke")
    assert results.run_state(run, "smoke").startswith("outdated (quantized v1; today's code is v2)")
    with pytest.raises(results.ResultError, match=r"is outdated .* remake it with make runs .*--remake"):
        runs.quantized(tiny_cfg, SMOKE.decouple, qcfg, bits, "smoke", compute=True, progress=False)
    with pytest.raises(results.ResultError, match="outdated"):
        results.fetch(run, "smoke")  # what a chapter reads through
    again = runs.quantized(tiny_cfg, SMOKE.decouple, qcfg, bits, "smoke", compute=True, progress=False,
                           remake=True)  # fmt: skip
    assert again["stage_version"] == first["stage_version"] + 1 and results.run_state(run, "smoke") == "ok"


def _make_in_process(cfg, log):
    """A second process making the same stage-1 result (fork: the synthetic data comes along)."""
    real = artifacts.trained_model

    def counted(*a, **k):
        with open(log, "a") as fh:
            fh.write("trained\n")
        time.sleep(0.5)  # long enough for the other process to try meanwhile
        return real(*a, **k)

    artifacts.trained_model = counted
    runs.stage1(cfg, "smoke", compute=True, progress=False)


def test_two_processes_never_both_compute_one_result(tiny_cfg, patched_data, tmp_path):
    """Probe: two `make runs` of the same profile both trained the same model."""
    log = tmp_path / "trainings.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_make_in_process, args=(tiny_cfg, log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text() == "trained\n"  # the second found the first one's result
    assert results.state(plan.result_path("smoke", "stage1", tiny_cfg), tiny_cfg) == "ok"


@pytest.mark.parametrize("flag", ["--jobs", "--threads"])
def test_jobs_and_threads_are_capped_by_the_cpus(flag, capsys, monkeypatch):
    """Probe: --jobs 1000 started a thousand workers."""
    import ltmpq.cli as cli

    monkeypatch.setattr(cli, "_cpus", lambda: 2)
    with pytest.raises(SystemExit) as exc:
        main(["run", "--profile", "smoke", flag, "1000"])
    assert exc.value.code == 2
    assert f"{flag} must be in [1, 2] (the CPUs of this machine), got 1000" in capsys.readouterr().err


# ------------------------------------------------------------------ stage 1 and 2 end to end (tiny)


def test_stage1_compute_stores_a_consistent_result(tiny_cfg, patched_data, tiny_cifar, monkeypatch):
    out = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    path = plan.result_path("smoke", "stage1", tiny_cfg)
    assert path.is_file() and _same_json(results.load(path, tiny_cfg), out)
    counts = long_tail_counts(15, 0.5)
    assert out["train_counts"] == counts
    assert out["split_sizes"] == {"train": sum(counts), "val": 50, "test": len(tiny_cifar.test_y)}
    assert out["groups"]["head"] == [0, 1, 2, 3]
    assert out["test_labels"] == tiny_cifar.test_y.tolist()
    # the stored metrics are those of the stored predictions
    recomputed = evaluate(np.array(out["test_labels"]), np.array(out["test"]["predictions"]), counts)
    stored = out["test"]["metrics"]
    empty = {k for k, v in recomputed["metrics"].items() if math.isnan(v)}  # empty groups
    assert empty and {k for k, v in stored.items() if v is None} == empty  # stored as JSON null
    assert {k: v for k, v in stored.items() if k not in empty} == pytest.approx(
        {k: v for k, v in recomputed["metrics"].items() if k not in empty}
    )
    assert out["test"]["confusion"] == recomputed["confusion"]
    assert out["provenance"]["data_source"]["kind"] == "synthetic"
    assert [h["epoch"] for h in out["history"]] == [1, 2]

    # a stored result is returned as is, without data, training or the cache
    monkeypatch.setattr(artifacts, "dataset", lambda: pytest.fail("recomputed a stored result"))
    monkeypatch.setattr(artifacts, "features", lambda *a, **k: pytest.fail("recomputed a stored result"))
    assert _same_json(runs.stage1(tiny_cfg, "smoke", compute=False), out)


def test_decoupled_changes_only_the_classifier(tiny_cfg, patched_data):
    dcfg = DecoupleConfig(epochs=2, batch_size=32, tau_grid=(0.0, 1.0))
    before = artifacts.features(tiny_cfg, progress=False)
    ckpt = artifacts.run_dir(tiny_cfg) / "checkpoint.pt"
    ckpt_before = ckpt.read_bytes()
    out = runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    after = artifacts.features(tiny_cfg, progress=False)
    # the backbone and its features are untouched by stage 2
    assert ckpt.read_bytes() == ckpt_before
    for k in ("train_features", "val_features", "test_features", "classifier_weight", "classifier_bias"):
        assert torch.equal(before[k], after[k]), k
    assert set(out["methods"]) == set(METHODS) - {"baseline"}
    assert out["stage1_hash"] == config_hash(tiny_cfg)
    assert out["methods"]["tau_norm"]["choice"]["tau"] in dcfg.tau_grid
    assert 1 <= out["methods"]["crt"]["choice"]["epoch"] <= dcfg.epochs
    run = config.DecoupledRun(tiny_cfg, dcfg)
    # the classifiers are published beside the results, verified by the digest the result records
    path = weights.path_for("smoke", weights.classifiers_name(run))
    assert out["classifiers"] == f"models/{path.name}" and out["weights_sha256"] == before["weights_sha256"]
    stored = weights.split_classifiers(weights.load(path, out["classifiers_sha256"], "unused"))
    assert set(stored) == set(METHODS)
    assert weights.metadata_of(path)["weights_sha256"] == before["weights_sha256"]
    assert torch.equal(stored["baseline"]["weight"], before["classifier_weight"])
    assert not torch.equal(stored["crt"]["weight"], before["classifier_weight"])
    assert torch.equal(stored["lws"]["base.weight"], before["classifier_weight"])
    assert _same_json(results.load(plan.result_path("smoke", "decoupled", run), run), out)
    assert results.load(plan.result_path("smoke", "stage1", tiny_cfg), tiny_cfg) is not None
