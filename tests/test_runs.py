"""ltmpq.runs: making a run of any kind, and the published artifacts it never overwrites unasked;
chapter 5's hypothesis sweeps and ``runs.explain`` end to end on the committed smoke weights.

Each probe test names what a new user's probe found before: a damaged result retrained over the
committed weights, weights that do not fit their config used, an outdated result left in place
and read by the chapters, two processes computing one result.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time

import numpy as np
import pytest
import torch
from fakes import same_json

import ltmpq.artifacts as artifacts
import ltmpq.data
import ltmpq.paths
from ltmpq import config, io, plan, results, runs, weights
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.cli import main
from ltmpq.config import (
    DecoupleConfig,
    DecoupledRun,
    ExplainRun,
    MPQConfig,
    QuantConfig,
    QuantizedRun,
    config_hash,
    get_profile,
)
from ltmpq.data import long_tail_counts
from ltmpq.metrics import evaluate
from ltmpq.paths import ROOT
from ltmpq.quantization import ActQuant, hypothesis_configs, model_size, quantize_head, sweep_map
from ltmpq.training import predict
from ltmpq.vocab import FLOAT, METHODS

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
    assert path.is_file() and same_json(results.load(path, tiny_cfg), out)
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
    assert same_json(runs.stage1(tiny_cfg, "smoke", compute=False), out)


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
    assert same_json(results.load(plan.result_path("smoke", "decoupled", run), run), out)
    assert results.load(plan.result_path("smoke", "stage1", tiny_cfg), tiny_cfg) is not None


# ------------------------------------------------------------------ bad requests


def test_swept_bits_are_checked_not_truncated(tiny_cfg, patched_data):
    """Probe: quantized(bits=(4.5, "6")) silently became [4, 6]."""
    for bad in ((4.5, 6), ("6",), (), "8", ("float", 8)):
        with pytest.raises(ValueError, match="bit"):
            runs.quantized(tiny_cfg, DecoupleConfig(), QuantConfig(), bad, "smoke", compute=True)
    assert not patched_data  # refused before any data was read


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


# ------------------------------------------------------------------ chapter 5's hypothesis sweeps


def test_sweep_runs_two_hypotheses_end_to_end(tiny_cfg, patched_data, monkeypatch):
    dcfg = DecoupleConfig(epochs=1, batch_size=32, tau_grid=(0.0, 1.0))
    names = ["naive: per-tensor affine W=A + logits", "W=A, first/last at 8 bits"]
    hyps = hypothesis_configs(QuantConfig(calibration_size=10), names)
    calls: list[tuple] = []  # what the backbone and the heads were quantized with
    real_model, real_logits = runs.quantize_model, runs.quantize_logits

    def spy_model(model, bmap, q, calibration=None):
        qmodel = real_model(model, bmap, q, calibration)
        calls.append(("model", dict(bmap), qmodel, calibration))
        return qmodel

    def spy_logits(head, features, bits, q):
        calls.append(("logits", bits, features))
        return real_logits(head, features, bits, q)

    monkeypatch.setattr(runs, "quantize_model", spy_model)
    monkeypatch.setattr(runs, "quantize_logits", spy_logits)
    s1 = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    dec = runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    data = artifacts.dataset()  # the patched tiny data set
    x_test = torch.from_numpy(data.test_x[artifacts.splits_for(tiny_cfg, data).test])
    heads = artifacts.classifiers(tiny_cfg, dcfg, progress=False)
    for name, qcfg in hyps.items():
        calls.clear()
        out = runs.quantized(tiny_cfg, dcfg, qcfg, (8, 4), "smoke", compute=True, progress=False)
        assert set(out["entries"]) == {"float", "8", "4"}
        assert sum(out["calibration_counts"]) == 10 and out["quant"]["act_bits"] == "match"
        run = QuantizedRun(tiny_cfg, dcfg, qcfg, (8, 4))
        assert results.load(plan.result_path("smoke", "quantized", run), run) is not None
        models = [c for c in calls if c[0] == "model"]
        assert [m[1] for m in models] == [sweep_map(b, qcfg) for b in (FLOAT, 8, 4)]
        for key, (_, bmap, qmodel, _calib) in zip(("float", "8", "4"), models, strict=True):
            entry = out["entries"][key]
            assert entry["bit_map"] == bmap
            assert entry["size"] == model_size(artifacts.stage1_model(tiny_cfg, data, progress=False), bmap,
                                               qcfg.granularity, qcfg.weight_scheme)  # fmt: skip
            if key == "float":  # the float model stays float: stage 1's and stage 2's predictions
                got = results.decode_predictions(entry["methods"]["baseline"]["test"]["predictions"])
                assert got.tolist() == s1["test"]["predictions"]
                for m in METHODS[1:]:
                    got = results.decode_predictions(entry["methods"][m]["test"]["predictions"]).tolist()
                    assert got == dec["methods"][m]["test"]["predictions"], m
                continue
            b = int(key)
            quantizers = [m for m in qmodel.modules() if isinstance(m, ActQuant)]
            if qcfg.first_last_bits:
                assert bmap["L1"] == bmap["L16"] == 8 and bmap["L2"] == b
                assert {m.bits for m in quantizers} == ({b, 8} if b != 8 else {8})
            else:
                assert len(quantizers) == 16 and {m.bits for m in quantizers} == {b}  # the input too
            logits = [c for c in calls if c[0] == "logits"]
            f, _ = predict(qmodel, x_test)
            for m, head in heads.items():
                qhead = quantize_head(head, bmap["L16"], qcfg)
                if qcfg.logit_bits is not None:
                    feats = next(c[2] for c in logits if c[1] == b)
                    qhead = real_logits(qhead, feats, b, qcfg)
                with torch.no_grad():
                    want = qhead(f).argmax(1).tolist()
                got = results.decode_predictions(entry["methods"][m]["test"]["predictions"]).tolist()
                assert got == want, (name, key, m)
        n_logit_calls = sum(c[0] == "logits" for c in calls)
        assert n_logit_calls == (2 * len(METHODS) if qcfg.logit_bits is not None else 0)  # not at float


# ------------------------------------------------------------------ ltmpq.runs.explain end to end


CFG = SMOKE.stage1_config(0.01, 0)
RUN = ExplainRun(CFG, SMOKE.decouple, SMOKE.quant, SMOKE.explain)


def _explain(compute: bool) -> dict:
    return runs.explain(CFG, SMOKE.decouple, SMOKE.quant, SMOKE.explain, "smoke", compute=compute,
                        progress=False)  # fmt: skip


def test_explain_without_compute_names_the_command(isolated_dirs):
    with pytest.raises(results.MissingResultError, match="--stage explain") as err:
        _explain(compute=False)  # nothing stored: the fresh results dir is empty
    msg = str(err.value)
    assert f"explain/{CFG.tag}-" in msg and "ExplainRun if0.01-seed0" in msg
    assert "make runs PROFILE=smoke RUN_ARGS='--if 0.01 --seed 0 --stage explain'" in msg
    # the stage-1 and stage-2 results alone do not make it either
    shutil.copytree(ROOT / "results" / "smoke", isolated_dirs["results"] / "smoke")
    with pytest.raises(results.MissingResultError, match="--stage explain"):
        _explain(compute=False)


@pytest.fixture
def smoke_store(isolated_dirs, monkeypatch):
    """The committed smoke results and weights in the temporary results dir, and the real CIFAR-10
    (the search conftest narrows to LTMPQ_DATA restored); its decoded arrays linked from the
    project's cache when they are there, so that nothing is decoded or trained."""
    import ltmpq.artifacts as artifacts

    shutil.copytree(ROOT / "results" / "smoke", isolated_dirs["results"] / "smoke")
    monkeypatch.delenv("LTMPQ_DATA")
    monkeypatch.setattr(ltmpq.data, "data_candidates", ltmpq.paths.data_candidates)
    decoded = isolated_dirs["cache"] / "data"
    decoded.mkdir(parents=True)
    for f in sorted((ROOT / ".cache" / "data").glob("cifar10-*")):
        (decoded / f.name).symlink_to(f)  # a rebuilt entry replaces the link, never the file
    try:
        ltmpq.data.find_source(allow_download=False)  # no download attempt (into the project) when absent
        artifacts.dataset()
    except ltmpq.data.DataNotFoundError as exc:
        pytest.skip(f"needs the CIFAR-10 copy the smoke weights were trained on ({exc})")
    return isolated_dirs


def test_explain_end_to_end_on_the_smoke_weights(smoke_store, monkeypatch):
    s1 = json.loads(next((smoke_store["results"] / "smoke" / "stage1").glob(f"{CFG.tag}-*.json")).read_text())
    r = _explain(compute=True)
    stored = results.load(plan.result_path("smoke", "explain", RUN), RUN)
    assert stored == r and r["kind"] == "explain" and r["stage_version"] == plan.STAGE_VERSIONS["explain"]
    assert r["weights_sha256"] == s1["weights_sha256"] and r["train_counts"] == s1["train_counts"]
    assert r["quant"] == {**r["quant"], "act_bits": 8, "calibration_size": 20}  # W8A8 of the default
    assert sum(r["calibration_counts"]) == 20
    assert r["explain"]["heads"] == ["baseline", "crt"]

    # the integer runtime against the simulation, on every test image, for both heads
    assert set(r["integer"]) == {"baseline", "crt"}
    for h, c in r["integer"].items():
        assert c["n"] == 1000 and len(c["per_class_difference"]) == 10
        assert (c["engine"], c["reduce_range"], c["round_sim_input"]) == ("x86", False, False)
        assert 0 <= c["agreement"] <= 1 and 0 <= c["agreement_rounded_input"] <= 1
        # fed the integer model's rounded input, the simulation agrees at least as often (here:
        # baseline 1.0 and 1.0, cRT 0.982 and 1.0): the input rounding is the gap
        assert c["agreement_rounded_input"] >= c["agreement"], h
        # the accuracies can differ only on the images whose predictions differ
        assert abs(c["int_accuracy"] - c["sim_accuracy"]) <= 1 - c["agreement"] + 1e-12, h
        assert math.isfinite(c["max_abs_logit_difference"]) and c["max_abs_logit_difference"] >= 0
    facts = ch5.integer_facts(ch5.integer_frame({CFG: r}))
    assert facts["int_runs"] == 1

    # curvature: validation images for both heads, training images for the baseline
    assert {k: sorted(v) for k, v in r["curvature"].items()} == {
        "val": ["baseline", "crt"],
        "train": ["baseline"],
    }
    for images, by_head in r["curvature"].items():
        for h, cols in by_head.items():
            assert {"class", "images", "trace", "trace_stderr", "grad_norm2", "hawq_6", "hawq_4"} <= set(cols)
            assert cols["class"] == list(range(10)), (images, h)
            for k in ("trace", "grad_norm2", "hawq_6", "hawq_4"):
                assert len(cols[k]) == 10 and all(math.isfinite(v) for v in cols[k]), (images, h, k)
            # 50 balanced validation images; up to 5 training images of each class
            want = [5] * 10 if images == "val" else [min(5, n) for n in r["train_counts"]]
            assert cols["images"] == want, (images, h)

    # a second call returns the stored result: nothing is measured again
    def measured_again(*args, **kwargs):
        raise AssertionError("the stored explain result was recomputed")

    monkeypatch.setattr("ltmpq.integer.compare_models", measured_again)
    monkeypatch.setattr("ltmpq.fairness.class_curvature", measured_again)
    again = _explain(compute=True)
    assert again == r and again["provenance"]["created"] == r["provenance"]["created"]
    assert _explain(compute=False) == r
    assert os.listdir(smoke_store["results"] / "smoke" / "explain") == [
        plan.result_path("smoke", "explain", RUN).name
    ]


def test_rebalancing_after_quantization_refits_stage_2_on_the_quantized_features():
    """On a hand-made feature set: at float the re-balanced heads are stage 2's own; at 3 bits each
    method is refitted on the given (quantized) features from the quantized baseline head and then
    quantized itself (at most 2**3 - 1 levels per row), post-hoc logit adjustment choosing its tau
    on those features' validation split."""
    from torch import nn

    from ltmpq.config import DecoupleConfig, QuantConfig
    from ltmpq.decoupling import as_linear, fit_all, posthoc_logit_adjustment
    from ltmpq.quantization import quantize_head
    from ltmpq.runs import AFTER, _rebalanced

    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=gen) * 2
    counts = torch.tensor([60, 30, 10, 5])
    labels = torch.repeat_interleave(torch.arange(4), counts)
    val_labels = torch.arange(4).repeat_interleave(10)
    feats = {"train_features": torch.relu(centers[labels] + torch.randn(len(labels), 8, generator=gen)),
             "val_features": torch.relu(centers[val_labels] + torch.randn(40, 8, generator=gen)),
             "train_labels": labels, "val_labels": val_labels}  # fmt: skip
    dcfg = DecoupleConfig(epochs=2, batch_size=32, tau_grid=(0.0, 0.5, 1.0), extra_methods=("logit_adj",))
    base = nn.Linear(8, 4)
    heads = {m: f.classifier for m, f in fit_all(base, feats["train_features"], labels, feats["val_features"],
                                                   val_labels, dcfg).items()}  # fmt: skip
    qcfg = QuantConfig()
    fs = {"train": feats["train_features"], "val": feats["val_features"]}
    at_float = _rebalanced(heads, heads, fs, feats, dcfg, "float", qcfg)
    assert at_float == {f"{m}{AFTER}": heads[m] for m in dcfg.methods[1:]}
    noisy = {s: f + 0.3 * torch.randn(f.shape, generator=gen) for s, f in fs.items()}
    qheads = {m: quantize_head(h, 3, qcfg) for m, h in heads.items()}
    after = _rebalanced(heads, qheads, noisy, feats, dcfg, 3, qcfg)
    assert set(after) == {f"{m}{AFTER}" for m in dcfg.methods[1:]}
    for name, head in after.items():
        linear = head[-1] if isinstance(head, nn.Sequential) else head  # NCM: normalise, then its means
        assert max(len(torch.unique(row)) for row in linear.weight) <= 7, name
    la = posthoc_logit_adjustment(qheads["baseline"], labels, noisy["val"], val_labels, dcfg)
    la_after = as_linear(after["logit_adj" + AFTER])[1]
    assert torch.allclose(la_after, as_linear(la.classifier)[1])  # the bias is float: the same tau
