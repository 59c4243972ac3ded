"""Chapter 5's run plumbing: ``ExplainConfig``'s checks, the CLI's stages, the grid's chapter-5 tasks
(``--stage hypotheses`` and ``--stage explain``), ``Profile.quant_configs`` with the hypotheses, and
``ltmpq.runs.explain`` end to end on the committed smoke weights (nothing is trained).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

import ltmpq.data
import ltmpq.paths
from ltmpq import engine, plan, results, runs
from ltmpq.analysis import ch5_six_bits as ch5
from ltmpq.config import QUANT_ABLATIONS, QUANT_HYPOTHESES, ExplainConfig, ExplainRun, get_profile
from ltmpq.paths import ROOT

SMOKE = get_profile("smoke")


# ------------------------------------------------------------------ ExplainConfig


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engine": "cuda"}, "engine must be one of x86, fbgemm, got 'cuda'"),
        ({"heads": ["ncm"]}, "heads: NCM is not a linear classifier on the features"),
        ({"heads": []}, r"heads must be a non-empty list of \['baseline', 'crt', .*\], got \[\]"),
        ({"heads": ("baseline", "svm")}, r"heads must be a non-empty list of .*got \['baseline', 'svm'\]"),
        ({"bits": (1,)}, r"bits must be an int in \[2, 16\], got 1"),
        ({"bits": (4, 17)}, r"bits must be an int in \[2, 16\], got 17"),
        ({"bits": (4.0,)}, r"bits must be an int in \[2, 16\], got 4.0"),
        ({"val_images": 5}, r"val_images must be in \[10, inf\], got 5"),
        ({"samples": 1}, r"samples must be in \[2, inf\], got 1"),
        ({"train_per_class": 0}, r"train_per_class must be in \[1, inf\], got 0"),
        ({"seed": -1}, r"seed must be in \[0, inf\], got -1"),
        ({"reduce_range": "yes"}, "reduce_range must be True or False, got 'yes'"),
    ],
)
def test_bad_explain_config_values_are_errors_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message):
        ExplainConfig(**overrides)


def test_good_explain_configs_are_accepted():
    assert ExplainConfig().heads == ("baseline", "crt")
    assert SMOKE.explain == ExplainConfig(val_images=50, train_per_class=5, samples=4, bits=(6, 4))
    assert ExplainConfig(engine="fbgemm", reduce_range=True, heads=("crt",), bits=(2, 16)).bits == (2, 16)


# ------------------------------------------------------------------ the CLI's stages


def test_cli_help_lists_the_chapter_5_stages_without_importing_torch():
    code = (
        "import sys\nimport ltmpq.cli as cli\ntry:\n    cli.main(['run', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint('torch imported:', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "{stage1,decoupled,quantized,mpq,hypotheses,explain,ladder,all}" in out.stdout
    assert out.stdout.strip().endswith("torch imported: False")


# ------------------------------------------------------------------ the grid's chapter-5 tasks


def _by_cfg(tasks):
    out = {}
    for t in tasks:
        out.setdefault(t.stage1, []).append(t)
    return out


def test_hypotheses_stage_is_one_sweep_per_distinct_quantizer_at_the_hypothesis_ifs():
    hyp = SMOKE.quant_configs(list(QUANT_HYPOTHESES))
    tasks = engine.grid("smoke", stages=["hypotheses"])
    assert {t.kind for t in tasks} == {"quantized"}  # chapter 3's sweep with other quantizers
    assert {t.stage1.imbalance_factor for t in tasks} == set(SMOKE.hypothesis_ifs) == {0.01}
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


@pytest.mark.parametrize("stages", [["explain"], ["hypotheses"], ["hypotheses", "explain"]])
def test_chapter_5_stages_outside_the_explain_ifs_have_nothing_to_do(stages):
    with pytest.raises(ValueError, match=r"^nothing to do: .*\[0\.01\].*\[0\.1\]$") as err:
        plan.grid("smoke", [0.1], None, stages)
    assert all(s in str(err.value) for s in stages)  # it says where each asked-for stage runs
    with pytest.raises(ValueError, match="nothing to do"):
        engine.grid("smoke", [0.1], [0], stages)


# ------------------------------------------------------------------ Profile.quant_configs


def test_quant_configs_accepts_hypotheses_and_both_families_at_once():
    hyp = SMOKE.quant_configs(list(QUANT_HYPOTHESES))
    assert list(hyp) == list(QUANT_HYPOTHESES)
    for name, overrides in QUANT_HYPOTHESES.items():
        assert hyp[name] == replace(SMOKE.quant, **overrides)
        assert hyp[name].calibration_size == 20  # the profile's default, not QuantConfig's
    assert hyp["logits at 8 bits"].logit_bits == 8 and hyp["logits at 8 bits"].act_bits is None
    mixed = SMOKE.quant_configs(["default", "W=A, LT calib."])
    assert mixed["default"] == SMOKE.quant and mixed["W=A, LT calib."].act_bits == "match"
    assert list(SMOKE.quant_configs()) == list(QUANT_ABLATIONS)  # the default: chapter 3's only


def test_quant_configs_rejects_an_unknown_name_listing_both_families():
    with pytest.raises(ValueError) as err:
        SMOKE.quant_configs(["default", "W4A4 magic"])
    msg = str(err.value)
    assert msg.startswith("unknown quantizer variants ['W4A4 magic']; choose from chapter 3's [")
    assert "or chapter 5's [" in msg
    assert all(repr(n) in msg for n in [*QUANT_ABLATIONS, *QUANT_HYPOTHESES])


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
