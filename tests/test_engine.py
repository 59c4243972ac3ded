"""ltmpq.engine: the run grid as a task graph, in this process or on a Dask LocalCluster."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ltmpq import engine, plan, results
from ltmpq.config import MITIGATIONS, QUANT_ABLATIONS, QUANT_HYPOTHESES, DecoupledRun, get_profile

SMOKE = get_profile("smoke")


def test_the_grid_lists_every_task_after_what_it_needs():
    tasks = engine.grid("smoke")
    by_key = {t.key: t for t in tasks}
    n_variants = len(SMOKE.quant_configs())
    per_run = 2 + n_variants  # stage 1, stage 2, chapter 3's variants
    mpq_runs = sum(f in SMOKE.mpq_ifs for f in SMOKE.imbalance_factors) * len(SMOKE.seeds)
    # chapter 5 at its IFs: each distinct hypothesis quantizer (one equals chapter 3's per-tensor
    # run and shares its task) and the explain stage
    hyp_runs = sum(f in SMOKE.hypothesis_ifs for f in SMOKE.imbalance_factors) * len(SMOKE.seeds)
    explain_runs = sum(f in SMOKE.explain_ifs for f in SMOKE.imbalance_factors) * len(SMOKE.seeds)
    distinct = set(SMOKE.quant_configs([*QUANT_HYPOTHESES]).values()) - set(SMOKE.quant_configs().values())
    assert len(distinct) == len(QUANT_HYPOTHESES) - 1
    ch5 = hyp_runs * len(distinct) + explain_runs
    # the scale ladder: each wider rung trained, decoupled and swept with the ladder's variants
    # (the first rung's sweeps are chapter 3's default and a hypothesis, listed already)
    ladder_runs = sum(SMOKE.on_ladder(c) for c in SMOKE.stage1_configs())
    ch5 += ladder_runs * len(SMOKE.ladder) * (2 + len(SMOKE.ladder_variants))
    # the model sets: the VGG16 set is the profile's own models (their stage 1 shared) with a stage 2
    # of its own at both IFs, swept (2 variants) and mixed precision at IF 0.01; the ResNet-32 and
    # LA-loss sets train 2 models each at IF 0.01, each with stage 2, 2 sweeps and mixed precision
    sets = 2 * 1 + 2 * (1 + 2 + 1) + 2 * 2 * (2 + 2 + 1)
    # chapter 7's mitigations: each of its sweeps of the profile's own models at its IFs
    mitigations = (
        len(MITIGATIONS) * sum(f in SMOKE.mitigation_ifs for f in SMOKE.imbalance_factors) * len(SMOKE.seeds)
    )
    assert len(tasks) == per_run * len(SMOKE.stage1_configs()) + mpq_runs + ch5 + sets + mitigations
    seen = set()
    for t in tasks:  # dependency order: every dependency comes earlier
        assert set(t.deps) <= seen, t.key
        seen.add(t.key)
    cfg = SMOKE.stage1_config(0.01, 1)
    assert by_key[f"stage1-{cfg.tag}"].deps == ()
    assert by_key[f"decoupled-{cfg.tag}"].deps == (f"stage1-{cfg.tag}",)
    assert by_key[f"quantized-{cfg.tag}-per-tensor"].deps == (f"decoupled-{cfg.tag}",)
    assert by_key[f"mpq-{cfg.tag}"].deps == (f"decoupled-{cfg.tag}",)  # not chapter 3's sweeps
    assert f"mpq-{SMOKE.stage1_config(0.1, 0).tag}" in by_key  # smoke runs chapter 4 at both IFs
    v1 = {t.key for t in engine.grid("cpu-v1")}  # the v1 model set ran chapter 4 at IF 0.01 only
    assert "mpq-if0.01-seed0" in v1 and "mpq-if0.1-seed0" not in v1


def test_a_task_names_its_config():
    t = engine.grid("smoke", [0.1], [1], ["stage1"])[0]
    assert t.describe() == f"stage1 of if0.1-seed1 [Stage1Config {t.stage1.key}: IF 0.1, seed 1]"


def test_in_process_a_failure_is_reported_and_its_dependents_skipped():
    tasks = engine.grid("smoke", [0.1, 0.01], [0], ["stage1", "decoupled"])

    def fn(task):
        if task.key.startswith("stage1-if0.01"):
            raise ValueError("boom")
        return 1.5

    report = engine.execute(tasks, fn, progress=False)
    states = {o.task.key: o.state for o in report.outcomes}
    assert states == {"stage1-if0.1-seed0": "done", "decoupled-if0.1-seed0": "done",
                      "stage1-if0.01-seed0": "failed", "decoupled-if0.01-seed0": "skipped"}  # fmt: skip
    assert [o.error for o in report.failed] == [
        "ValueError: boom",
        "needs stage1-if0.01-seed0, which did not finish",
    ]
    assert report.summary().startswith("2 of 4 tasks done")
    with pytest.raises(ValueError, match="boom"):
        engine.execute(tasks, fn, progress=False, stop_on_error=True)
    with pytest.raises(ValueError, match="jobs must be an int >= 1, got 0"):
        engine.execute(tasks, fn, jobs=0)


def test_an_unreachable_scheduler_is_a_clear_error():
    tasks = engine.grid("smoke", [0.1], [0], ["stage1"])
    with pytest.raises(engine.EngineError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        engine.execute(
            tasks, lambda t: 0.0, scheduler="tcp://127.0.0.1:9", connect_timeout_s=2, progress=False
        )


# ------------------------------------------------------------------ on a Dask LocalCluster


@pytest.fixture
def smoke_data(make_imagefolder, tmp_path, monkeypatch):
    """A synthetic ImageFolder CIFAR-10 with enough images for the smoke profile, in LTMPQ_DATA:
    worker processes find it there (they do not see this process's monkeypatches)."""
    root = make_imagefolder(tmp_path / "data" / "cifar10-jpeg", train_per_class=400, test_per_class=100)
    monkeypatch.setenv("LTMPQ_DATA", str(root.parent))
    return root


@pytest.mark.slow
def test_two_workers_give_the_same_results_as_one_process(smoke_data, tmp_path, monkeypatch):
    """The same task graph in 2 worker processes stores what this process stores, bit for bit."""
    out = {}
    for mode, jobs in (("local", 1), ("dask", 2)):
        monkeypatch.setenv("LTMPQ_RESULTS", str(tmp_path / mode / "results"))
        monkeypatch.setenv("LTMPQ_CACHE", str(tmp_path / mode / "cache"))
        report = engine.run_grid("smoke", [0.1, 0.01], [0], stages=("stage1", "decoupled"), jobs=jobs,
                                 threads=1, progress=False)  # fmt: skip
        assert not report.failed, report.summary()
        workers = {o.worker for o in report.outcomes}
        assert (workers == {""}) if jobs == 1 else (len(workers) >= 1 and "" not in workers)
        out[mode] = {}
        for cfg in SMOKE.stage1_configs([0.1, 0.01], [0]):
            s1 = results.load(plan.result_path("smoke", "stage1", cfg), cfg)
            dec = results.load(plan.result_path("smoke", "decoupled", DecoupledRun(cfg, SMOKE.decouple)),
                               DecoupledRun(cfg, SMOKE.decouple))  # fmt: skip
            assert (Path(os.environ["LTMPQ_RESULTS"]) / "smoke" / s1["weights"]).is_file()
            out[mode][cfg.tag] = (s1["test"]["predictions"], s1["weights_sha256"], dec["classifiers_sha256"],
                                  dec["methods"]["crt"]["test"]["predictions"])  # fmt: skip
        # resumed: a second run finds every result stored
        again = engine.run_grid(
            "smoke", [0.1, 0.01], [0], stages=("stage1", "decoupled"), jobs=jobs, progress=False
        )
        assert not again.failed and max(o.seconds for o in again.outcomes) < 30
    assert out["local"] == out["dask"]


@pytest.mark.slow
def test_on_workers_a_failed_task_is_reported_with_its_config_and_the_others_finish(smoke_data):
    # IF 0.0001 leaves the smoke profile's rarest class without an image: stage 1 fails there
    report = engine.run_grid(
        "smoke", [0.1, 0.0001], [0], stages=("stage1", "decoupled"), jobs=2, progress=False
    )
    states = {o.task.key: o.state for o in report.outcomes}
    assert states == {"stage1-if0.1-seed0": "done", "decoupled-if0.1-seed0": "done",
                      "stage1-if0.0001-seed0": "failed", "decoupled-if0.0001-seed0": "skipped"}  # fmt: skip
    (failed,) = [o for o in report.failed if o.state == "failed"]
    assert "no training image" in failed.error and failed.task.stage1.imbalance_factor == 0.0001


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_replaced_and_the_task_rerun(tmp_path):
    """Dask restarts a dead worker and reruns its task; the grid still completes."""
    marker = tmp_path / "killed-once"
    tasks = engine.grid("smoke", [0.1, 0.01], [0], ["stage1"])

    def fn(task):
        if task.key.startswith("stage1-if0.01") and not marker.exists():
            marker.write_text("x")
            os._exit(1)  # the worker process dies mid-task
        return float(np.float64(1.0))

    report = engine.execute(tasks, fn, jobs=2, progress=False)
    assert marker.exists() and not report.failed, report.summary()
    assert {o.task.key for o in report.outcomes} == {t.key for t in tasks}


# ------------------------------------------------------------------ chapter 5's tasks


def _by_cfg(tasks):
    out = {}
    for t in tasks:
        out.setdefault(t.stage1, []).append(t)
    return out


def test_hypotheses_stage_is_one_sweep_per_distinct_quantizer_at_the_hypothesis_ifs():
    hyp = SMOKE.quant_configs(list(QUANT_HYPOTHESES))
    tasks = engine.grid("smoke", stages=["hypotheses"])
    assert {t.kind for t in tasks} == {"quantized"}  # chapter 3's sweep with other quantizers
    assert {t.stage1.imbalance_factor for t in tasks} == set(SMOKE.hypothesis_ifs)
    by_cfg = _by_cfg(tasks)
    assert sorted(c.seed for c in by_cfg) == list(SMOKE.seeds)
    for ts in by_cfg.values():
        configs = [hyp[t.variant] for t in ts]
        assert len(set(configs)) == len(configs)  # no quantizer twice
        assert set(configs) == set(hyp.values())  # every distinct hypothesis once
        assert [t.variant for t in ts] == [h for h in QUANT_HYPOTHESES if hyp[h] in set(configs)]
        assert all(t.deps == (f"decoupled-{t.stage1.tag}",) for t in ts)  # made on demand if not asked for
    assert len({t.key for t in tasks}) == len(tasks)


def test_hypotheses_beside_chapter_3_skip_the_quantizers_its_variants_already_run():
    abl = SMOKE.quant_configs([*QUANT_ABLATIONS])
    hyp = SMOKE.quant_configs(list(QUANT_HYPOTHESES))
    shared = [h for h in QUANT_HYPOTHESES if hyp[h] in set(abl.values())]
    # "per-tensor weights, BN folded" is chapter 3's "per-tensor" quantizer
    assert shared == ["per-tensor weights, BN folded"]
    assert hyp["per-tensor weights, BN folded"] == abl["per-tensor"]
    by_cfg = _by_cfg(engine.grid("smoke", stages=["quantized", "hypotheses"]))
    assert len(by_cfg) == len(SMOKE.imbalance_factors) * len(SMOKE.seeds)
    for cfg, ts in by_cfg.items():
        assert {t.kind for t in ts} == {"quantized"}
        names = [t.variant for t in ts]
        configs = [(abl | hyp)[n] for n in names]
        assert len(set(configs)) == len(configs), cfg.tag  # no quantizer swept twice for a run
        if cfg.imbalance_factor in SMOKE.hypothesis_ifs:
            assert names == [*QUANT_ABLATIONS, *(h for h in QUANT_HYPOTHESES if h not in shared)]
        else:  # IF 0.1: chapter 3's variants only
            assert names == list(QUANT_ABLATIONS)


def test_explain_stage_runs_at_the_explain_ifs_after_stage_2():
    tasks = engine.grid("smoke", stages=["explain"])
    assert [t.key for t in tasks] == ["explain-if0.01-seed0", "explain-if0.01-seed1"]
    # what it builds on is named whether or not the grid makes it (it is made on demand)
    assert all(t.kind == "explain" and t.variant is None for t in tasks)
    assert [t.deps for t in tasks] == [("decoupled-if0.01-seed0",), ("decoupled-if0.01-seed1",)]
    full = {t.key: t for t in engine.grid("smoke")}
    assert full["explain-if0.01-seed0"].deps == ("decoupled-if0.01-seed0",)
    assert full["quantized-if0.01-seed1-logits at 8 bits"].deps == ("decoupled-if0.01-seed1",)
    assert "explain-if0.1-seed0" not in full and "quantized-if0.1-seed0-logits at 8 bits" not in full
    # asked for both factors, explain silently keeps the one it runs at
    assert [r.stage1.imbalance_factor for r in plan.grid("smoke", [0.1, 0.01], [0], ["explain"])] == [0.01]


# ------------------------------------------------------------------ the scale ladder's tasks


def test_the_ladder_tasks_train_decouple_and_quantize_each_rung_after_what_it_needs():
    prof = get_profile("cpu")
    tasks = engine.grid("cpu", seeds=[1], stages=["ladder"])
    keys = [t.key for t in tasks]
    assert (
        len(keys) == len(set(keys)) == 2 + 3 * (2 + 2)
    )  # base sweeps, then 3 rungs x (train, stage 2, 2 sweeps)
    by_key = {t.key: t for t in tasks}
    for t in tasks:
        assert t.stage1.imbalance_factor == 0.01 and t.stage1.seed == 1
        # what it builds on comes first when the grid makes it (the base model's stage 2 is made on demand)
        assert all(keys.index(d) < keys.index(t.key) for d in t.deps if d in keys)
    wide = prof.rung_config(prof.stage1_config(0.01, 1), "width 0.5")
    assert by_key["stage1-if0.01-seed1-w0.5"].stage1 == wide
    assert by_key["quantized-if0.01-seed1-w0.5-default"].deps == ("decoupled-if0.01-seed1-w0.5",)
    assert {t.variant for t in tasks if t.kind == "quantized"} == set(prof.ladder_variants)
    # asked with chapter 3's sweeps, the base rung's default sweep is listed once
    both = [
        t.key for t in engine.grid("cpu", seeds=[1], imbalance_factors=[0.01], stages=["quantized", "ladder"])
    ]
    assert both.count("quantized-if0.01-seed1-default") == 1
