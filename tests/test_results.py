"""ltmpq.results, ltmpq.io and the experiments' stored results (stage 1 and decoupled)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

import ltmpq.artifacts as artifacts
import ltmpq.config as config
import ltmpq.results as results
import ltmpq.runs as runs
import ltmpq.weights as weights
from ltmpq.config import DecoupleConfig, Stage1Config, config_hash
from ltmpq.data import long_tail_counts
from ltmpq.io import atomic_write, write_json
from ltmpq.metrics import evaluate
from ltmpq.results import MissingResultError
from ltmpq.vocab import METHODS

CFG = Stage1Config(imbalance_factor=0.1, seed=0)


def _same_json(a, b) -> bool:
    """Equality as stored: NaN equals NaN, tuples equal lists."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


OTHER = Stage1Config(imbalance_factor=0.1, seed=1)

# ------------------------------------------------------------------ io


def test_atomic_write_leaves_no_file_when_writer_raises(tmp_path):
    target = tmp_path / "sub" / "out.json"

    def failing(tmp):
        tmp.write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write(target, failing)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind either


def test_atomic_write_keeps_old_content_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "w" / "out.txt"
    atomic_write(target, lambda tmp: tmp.write_text("v1"))
    assert target.read_text() == "v1"

    def interrupted(tmp):
        tmp.write_text("v2-partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_text() == "v1"
    atomic_write(target, lambda tmp: tmp.write_text("v2"))
    assert target.read_text() == "v2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_write_json_sorted_and_readable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, None]})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"a": [1.5, None], "b": 1}
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")


# ------------------------------------------------------------------ the results store


def test_result_path_layout(isolated_dirs):
    p = results.result_path("smoke", "stage1", CFG)
    assert p == isolated_dirs["results"] / "smoke" / "stage1" / f"if0.1-seed0-{config_hash(CFG)}.json"


def test_save_load_roundtrip_with_provenance(make_result):
    path = results.result_path("smoke", "stage1", CFG)
    src = {"kind": "synthetic"}
    written = results.save(path, CFG, {**make_result("stage1"), "answer": 42}, src, 1.234)
    loaded = results.load(path, CFG)
    assert loaded == written
    assert loaded["answer"] == 42 and loaded["schema"] == results.SCHEMA
    assert loaded["config_hash"] == config_hash(CFG)
    prov = loaded["provenance"]
    assert prov["config"]["imbalance_factor"] == 0.1 and prov["config_type"] == "Stage1Config"
    assert prov["data_source"] == src and prov["wall_seconds"] == 1.23
    assert {"git_commit", "versions", "python", "device", "created"} <= set(prov)


def test_load_rejects_mismatch_and_bad_files(tmp_path, make_result):
    path = results.result_path("smoke", "stage1", CFG)
    assert results.load(path, CFG) is None  # missing
    results.save(path, CFG, make_result("stage1"), None, 0.0)
    assert results.load(path, OTHER) is None  # config hash of another run
    payload = json.loads(path.read_text())
    path.write_text(json.dumps({**payload, "schema": results.SCHEMA + 1}))
    assert results.load(path, CFG) is None  # other schema
    path.write_text('{"schema": 1, "config_hash": ')
    assert results.load(path, CFG) is None  # truncated JSON
    path.write_text("")
    assert results.load(path, CFG) is None


@pytest.mark.parametrize("kind", ["stage1", "decoupled", "quantized", "mpq"])
def test_a_result_without_what_chapters_read_is_not_returned(kind, make_result):
    """Issue: a valid JSON without its "test" key passed status as ok and crashed the chapter."""
    path = results.result_path("smoke", kind, CFG)
    full = make_result(kind)
    results.save(path, CFG, full, None, 0.0)
    assert results.load(path, CFG) is not None and results.status(path, CFG).startswith("ok")
    first = results.REQUIRED[kind][0]
    results.save(path, CFG, {k: v for k, v in full.items() if k != first}, None, 0.0)
    assert results.load(path, CFG) is None
    assert results.status(path, CFG) == f"unreadable (incomplete: no {first})"
    with pytest.raises(MissingResultError):
        results.require(path, CFG, "make runs")


def test_an_evaluation_without_its_metrics_or_classes_is_incomplete(make_result):
    path = results.result_path("smoke", "stage1", CFG)
    broken = make_result("stage1") | {"test": {"per_class": [0.5] * 10}}
    results.save(path, CFG, broken, None, 0.0)
    assert (
        results.status(path, CFG)
        == "unreadable (incomplete: an evaluation without its metrics or per-class accuracy)"
    )
    nine = make_result("stage1") | {"train_counts": [5] * 9}
    results.save(path, CFG, nine, None, 0.0)
    assert results.status(path, CFG) == "unreadable (inconsistent: 9 training classes but 10 test classes)"
    results.save(path, CFG, make_result("stage1") | {"kind": "stage3"}, None, 0.0)
    assert results.status(path, CFG) == "unreadable (unknown kind 'stage3')"


def test_a_result_computed_on_other_data_is_not_ok_for_this_data(make_result):
    path = results.result_path("smoke", "stage1", CFG)
    results.save(path, CFG, make_result("stage1"), {"kind": "imagefolder-jpeg", "sha256": "a" * 64}, 0.0)
    assert results.status(path, CFG, data_sha256="a" * 64).startswith("ok")
    assert results.status(path, CFG, data_sha256="b" * 64) == (
        "other data (computed on aaaaaaaaaaaa, this machine's copy is bbbbbbbbbbbb)"
    )


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b'"a string"', b"\xff\xfe\x00garbage"],
                         ids=["json-list", "json-string", "not-utf8"])  # fmt: skip
def test_load_treats_unusable_files_as_missing(content):
    # "an unreadable or mismatched file counts as missing": valid JSON that is not an object, and
    # bytes that are not UTF-8, must give None rather than AttributeError / UnicodeDecodeError
    path = results.result_path("smoke", "stage1", CFG)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert results.load(path, CFG) is None


def test_require_names_the_command(make_result):
    path = results.result_path("smoke", "stage1", CFG)
    with pytest.raises(MissingResultError) as err:
        results.require(path, CFG, "make runs PROFILE=smoke")
    msg = str(err.value)
    assert "make runs PROFILE=smoke" in msg and config_hash(CFG) in msg and "if0.1-seed0" in msg
    assert isinstance(err.value, FileNotFoundError)
    results.save(path, CFG, {**make_result("stage1"), "y": 2}, None, 0.0)
    assert results.require(path, CFG, "unused")["y"] == 2


def test_stage1_and_decoupled_without_compute_raise_missing_result(monkeypatch):
    def no_data():
        raise AssertionError("compute=False must not load data")

    monkeypatch.setattr(artifacts, "dataset", no_data)
    cfg = Stage1Config(imbalance_factor=0.1, seed=0)
    with pytest.raises(MissingResultError, match="make runs") as err:
        runs.stage1(cfg, "smoke", compute=False)
    assert "PROFILE=smoke" in str(err.value) and "--if 0.1 --seed 0" in str(err.value)
    with pytest.raises(MissingResultError, match="make runs PROFILE=smoke RUN_ARGS='--if 0.01 --seed 2'"):
        runs.decoupled(replace(cfg, imbalance_factor=0.01, seed=2), DecoupleConfig(), "smoke", compute=False)


# ------------------------------------------------------------------ experiments end to end (tiny)


def test_stage1_compute_stores_a_consistent_result(tiny_cfg, patched_data, tiny_cifar, monkeypatch):
    out = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    path = results.result_path("smoke", "stage1", tiny_cfg)
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
    assert _same_json(results.load(results.result_path("smoke", "decoupled", run), run), out)
    assert results.load(results.result_path("smoke", "stage1", tiny_cfg), tiny_cfg) is not None


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_committed_results_are_strict_json_without_a_machine_path():
    """Provenance names data by kind, folder name and digest; NaN is not JSON (null is)."""
    from ltmpq.paths import ROOT

    files = sorted((ROOT / "results").glob("*/*/*.json"))
    assert files
    for f in files:

        def refuse(constant, f=f):
            raise AssertionError(f"{f.name}: {constant} is not strict JSON")

        payload = json.loads(f.read_text(), parse_constant=refuse)
        absolute = [s for s in _strings(payload) if re.match(r"^(/|[A-Za-z]:\\\\)\w+[/\\\\]", s)]
        assert not absolute, f"{f.name} holds machine paths: {absolute[:3]}"


def test_provenance_records_what_decides_the_float_kernels():
    prov = results.provenance(CFG, {"kind": "imagefolder-jpeg", "path": "/somewhere/cifar10-jpeg"}, 1.0)
    assert prov["data_source"] == {"kind": "imagefolder-jpeg", "name": "cifar10-jpeg"}
    dev = prov["device"]
    assert dev["cpu_capability"] and set(dev["cpu_flags"]) <= set(results.ISA_FLAGS)
    assert set(dev["kernels"]) == {
        "onednn",
        "mkl",
        "capability_usage",
        "ATEN_CPU_CAPABILITY",
        "ONEDNN_MAX_CPU_ISA",
    }
    assert {"pillow", "libjpeg_turbo", "numpy", "safetensors"} <= set(prov["versions"])
