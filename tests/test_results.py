"""ltmpq.results: the results store. Stored results are validated when read (schema, run, data,
stage version, the weights they came from), and status, the stages and the chapters read through
the same two functions, so they agree."""

from __future__ import annotations

import json
import re

import pytest
from fakes import save_fake

from ltmpq import plan, results
from ltmpq.config import DecoupledRun, Stage1Config, config_hash, get_profile
from ltmpq.paths import ROOT
from ltmpq.results import MissingResultError, ResultError

CFG = Stage1Config(imbalance_factor=0.1, seed=0)
OTHER = Stage1Config(imbalance_factor=0.1, seed=1)
S1, DEC = plan.Run(CFG, "stage1"), plan.Run(DecoupledRun(CFG, get_profile("smoke").decouple), "decoupled")


def test_result_path_layout(isolated_dirs):
    p = plan.result_path("smoke", "stage1", CFG)
    assert p == isolated_dirs["results"] / "smoke" / "stage1" / f"if0.1-seed0-{config_hash(CFG)}.json"


def test_save_load_roundtrip_with_provenance():
    written = save_fake(S1, answer=42)
    loaded = results.load(S1.path("smoke"), CFG)
    assert loaded == written and loaded["answer"] == 42 and loaded["schema"] == results.SCHEMA
    assert loaded["config_hash"] == config_hash(CFG) and loaded["kind"] == "stage1"
    assert loaded["stage_version"] == plan.STAGE_VERSIONS["stage1"]
    prov = loaded["provenance"]
    assert prov["config"]["imbalance_factor"] == 0.1 and prov["config_type"] == "Stage1Config"
    assert {"git_commit", "versions", "python", "device", "created", "wall_seconds"} <= set(prov)


def test_an_invalid_result_is_never_written():
    """A result the reader would refuse is refused when written, and nothing is left behind."""
    with pytest.raises(
        ValueError, match=r"refusing to store an invalid result .*test\.predictions: 9 predictions for 100"
    ):
        save_fake(S1, test={"metrics": {}, "per_class": [0.5] * 10, "predictions": [0] * 9})
    assert not S1.path("smoke").exists()


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: "null", r"unreadable \(not a result \(a JSON null, not an object\)\)"),
        (lambda p: p[: len(p) // 2], r"unreadable \(JSONDecodeError\)"),
        (lambda p: p.replace('"overall": 0.', '"overall": NaN, "x": 0.', 1), r"overall: not a finite number"),
        (lambda p: re.sub(r'"predictions": \[\s*\d+', '"predictions": [12', p, count=1), "class 12 of 10"),
        (lambda p: p.replace(f'"{"ab" * 32}"', '"abc"', 1), "not a SHA-256 hex digest"),
        (lambda p: p.replace('"stage_version": 1', '"stage_version": 0'), r"stage_version"),
    ],
    ids=["null", "cut", "nan", "prediction-class", "digest", "stage-version"],
)  # fmt: skip
def test_a_damaged_result_is_unreadable_with_its_reason_and_its_fix(damage, why):
    """Probe: NaN or a corrupt prediction character in a result was read and changed the book's numbers."""
    save_fake(S1)
    path = S1.path("smoke")
    path.write_text(damage(path.read_text()))
    assert results.load(path, CFG) is None
    assert re.search(why, results.run_state(S1, "smoke"))
    with pytest.raises(ResultError, match=rf"is unreadable .*git checkout -- .*{path.name}.*--remake"):
        results.fetch(S1, "smoke")


def test_another_runs_result_is_unreadable():
    save_fake(S1)
    assert results.load(S1.path("smoke"), OTHER) is None
    assert results.state(S1.path("smoke"), OTHER) == "unreadable (another run's result (config hash differs))"


def test_a_result_computed_on_other_data_is_not_ok_for_this_data():
    save_fake(S1, data_source={"kind": "imagefolder-jpeg", "sha256": "a" * 64})
    assert results.run_state(S1, "smoke", data_sha256="a" * 64) == "ok"
    assert results.run_state(S1, "smoke", data_sha256="b" * 64) == (
        "other data (computed on aaaaaaaaaaaa, this machine's copy is bbbbbbbbbbbb)"
    )
    with pytest.raises(ResultError, match="move it away, or set LTMPQ_RESULTS elsewhere"):
        results.fetch(S1, "smoke", data_sha256="b" * 64)


def test_a_result_of_another_stage_version_is_outdated(monkeypatch):
    save_fake(S1)
    monkeypatch.setitem(plan.STAGE_VERSIONS, "stage1", 7)
    assert results.run_state(S1, "smoke") == "outdated (stage1 v1; today's code is v7)"
    with pytest.raises(ResultError, match=r"is outdated .*remake it with make runs PROFILE=smoke .*--remake"):
        results.fetch(S1, "smoke")


def test_a_downstream_result_of_other_weights_is_stale():
    save_fake(S1)
    save_fake(DEC, weights_sha256="cd" * 32)
    assert results.run_state(DEC, "smoke").startswith(
        "stale (computed from weights cdcdcdcdcdcd, its stage-1 run's"
    )
    save_fake(DEC)
    assert results.run_state(DEC, "smoke") == "ok"


def test_fetch_names_the_command_that_makes_a_missing_result():
    with pytest.raises(MissingResultError) as err:
        results.fetch(DEC, "smoke")
    msg = str(err.value)
    assert "make runs PROFILE=smoke RUN_ARGS='--if 0.1 --seed 0 --stage decoupled'" in msg
    assert config_hash(DEC.config) in msg and not isinstance(err.value, ResultError)


def test_require_names_the_command_or_the_damage():
    path = S1.path("smoke")
    with pytest.raises(MissingResultError, match="make recipe-search") as err:
        results.require(path, CFG, "make recipe-search PROFILE=smoke")
    assert not isinstance(err.value, ResultError)
    save_fake(S1, y=2)
    assert results.require(path, CFG, "unused")["y"] == 2
    path.write_text("[]")
    with pytest.raises(ResultError, match=r"unreadable .*git checkout"):
        results.require(path, CFG, "make recipe-search PROFILE=smoke")


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b'"a string"', b"\xff\xfe\x00garbage"],
                         ids=["json-list", "json-string", "not-utf8"])  # fmt: skip
def test_load_treats_unusable_files_as_missing(content):
    path = S1.path("smoke")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert results.load(path, CFG) is None and results.run_state(S1, "smoke").startswith("unreadable")


def test_predictions_roundtrip_compactly():
    import numpy as np

    pred = np.array([0, 9, 3, 3])
    assert results.encode_predictions(pred) == "0933"
    assert results.decode_predictions("0933").tolist() == [0, 9, 3, 3]
    assert results.encode_predictions(np.array([10, 2])) == [10, 2]  # beyond 10 classes: a list
    assert results.decode_predictions([10, 2]).tolist() == [10, 2]


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

    files = sorted((ROOT / "results").glob("*/*/*.json"))
    assert files
    for f in files:

        def refuse(constant, f=f):
            raise AssertionError(f"{f.name}: {constant} is not strict JSON")

        payload = json.loads(f.read_text(), parse_constant=refuse)
        absolute = [s for s in _strings(payload) if re.match(r"^(/|[A-Za-z]:\\\\)\w+[/\\\\]", s)]
        assert not absolute, f"{f.name} holds machine paths: {absolute[:3]}"
