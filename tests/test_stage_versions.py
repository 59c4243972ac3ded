"""The guard of ``ltmpq.plan.STAGE_VERSIONS``: a change that moves a stage's numbers without bumping
its version (which ``ltmpq status``, the chapters and ``make runs --remake`` read) cannot land
unnoticed.

Float kernels round differently on each machine kind (CPU model, the instruction set torch
dispatches to, torch's version: :func:`ltmpq.provenance.machine_kind`), so digests are recorded per
kind, and a kind without them skips and prints the line that records them. What holds anywhere is
tested anywhere: the same training twice gives the same weights, bit for bit.

- stage 1 trains a tiny model on synthetic images;
- the post-training stages (stage 2, the sweeps, chapter 4, chapter 5) start from the committed
  smoke weights, on synthetic images, so they guard those stages without any training.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from fakes import random_cifar

import ltmpq.artifacts as artifacts
from ltmpq import plan, provenance, runs
from ltmpq.config import DecoupleConfig, ExplainConfig, MPQConfig, QuantConfig, get_profile
from ltmpq.paths import ROOT

#: machine kind -> STAGE_VERSIONS they were recorded at -> each stage's digest. To record a kind:
#: run this file there; the skip message prints its entry.
GOLDEN = {
    "Intel(R) Xeon(R) Processor | AVX512 | torch 2.14.1": {
        "versions": {"stage1": 1},
        "digests": {"stage1": "09bb5d73a684f235c64617a507c3a2dd82a2889d82db5348ab87f43bcdef76e9"},
    },
    "AMD EPYC | AVX2 | torch 2.14.1": {
        "versions": {"stage1": 1, "decoupled": 1, "quantized": 1, "mpq": 1, "explain": 1},
        "digests": {
            "stage1": "2514b119ae57e350fb53b9ac74e66ac1e71411dc8fbf0bc2a07cb5712a019cd1",
            "decoupled": "0e8eae0e7c816b7457ed5e86619aa455b0dfe808f023ea33dd545c0a45d44bb2",
            "quantized": "a6e60158cededef7946dbc229d968a13ac5458ab237744f6b0585694eea67aea",
            "mpq": "5250ade3935b3006efc97b45cee85a0bacfacec6045d25439aaec2fb5de28d4f",
            "explain": "95d9977104b6df72408fc353ff0ab6146b07c784147dde80852b34062c99413f",
        },
    },
}

DCFG = DecoupleConfig(epochs=2, batch_size=32, tau_grid=(0.0, 1.0))
QCFG = QuantConfig(calibration_size=10)
MCFG = MPQConfig(choices=(4, 8), rule_bits=(8, 4), rule_ks=(8,), rule_metrics=("overall", "tail"),
                 budgets=(6.0,), budget_metrics=("overall", "kl", "hessian"), random_draws=1,
                 hessian_samples=2)  # fmt: skip
ECFG = ExplainConfig(val_images=10, train_per_class=2, samples=2, bits=(8, 4))
SMOKE = get_profile("smoke")
#: The committed smoke model the post-training stages start from.
MODEL = SMOKE.stage1_config(0.01, 0)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def stage1_digest(cfg) -> str:
    """Stage 1's numbers: the weights, the test predictions and the validation metrics."""
    s1 = runs.stage1(cfg, "smoke", compute=True, progress=False)
    return _digest([s1["weights_sha256"], s1["test"]["predictions"], s1["val"]["metrics"]])


def post_training_digests(cfg) -> dict[str, str]:
    """What each post-training stage stores, reduced to its numbers (predictions, maps, curvature)."""
    dec = runs.decoupled(cfg, DCFG, "smoke", compute=True, progress=False)
    q = runs.quantized(cfg, DCFG, QCFG, (8, 4), "smoke", compute=True, progress=False)
    m = runs.mixed_precision(cfg, DCFG, QCFG, MCFG, "smoke", compute=True, progress=False)
    e = runs.explain(cfg, DCFG, QCFG, ECFG, "smoke", compute=True, progress=False)
    heads = {k: v["test"]["predictions"] for k, v in dec["methods"].items()}
    sweeps = {
        b: {k: v["test"].get("predictions") for k, v in x["methods"].items()} for b, x in q["entries"].items()
    }
    maps = [(a["kind"], a["bit_map"], a["test"]["predictions"]) for a in m["allocations"]]
    integer = {h: [c["agreement"], c["sim_per_class"], c["int_per_class"]] for h, c in e["integer"].items()}
    return {
        "decoupled": _digest([dec["classifiers_sha256"], heads]),
        "quantized": _digest(sweeps),
        "mpq": _digest([m["sweep"], maps]),
        "explain": _digest([integer, e["curvature"]]),
    }


@pytest.fixture
def committed_model(isolated_dirs, monkeypatch):
    """The committed smoke model's result and weights in this test's results folder, and synthetic
    images in the shape of the smoke profile's splits (its weights never see CIFAR-10 here)."""
    for kind, name in (("stage1", plan.result_path("smoke", "stage1", MODEL).name),
                       ("models", f"{MODEL.tag}-{MODEL.key}.safetensors")):  # fmt: skip
        target = isolated_dirs["results"] / "smoke" / kind / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "results" / "smoke" / kind / name, target)
    data = random_cifar(seed=1, train_per_class=401, test_per_class=100)
    monkeypatch.setattr(artifacts, "dataset", lambda: data)
    return MODEL


def _check(got: dict[str, str]) -> None:
    key = provenance.machine_key()
    golden = GOLDEN.get(key)
    if golden is None or any(s not in golden["digests"] for s in got):
        versions = {s: plan.STAGE_VERSIONS[s] for s in got}
        pytest.skip(
            f"no golden digests of {sorted(got)} for machine kind {key!r}; to guard STAGE_VERSIONS here, "
            f"record them in tests/test_stage_versions.py: versions {versions}, digests {got}"
        )
    for stage, digest in got.items():
        assert plan.STAGE_VERSIONS[stage] == golden["versions"][stage], (
            f"STAGE_VERSIONS[{stage!r}] is {plan.STAGE_VERSIONS[stage]}: record its digest for that version "
            f"here ({stage}: {digest!r})"
        )
        assert digest == golden["digests"][stage], (
            f"the numbers of stage {stage} changed without a version bump: bump STAGE_VERSIONS[{stage!r}] in "
            f"ltmpq/plan.py (stored results then read as outdated) and record {digest!r} here"
        )


def test_stage1_gives_its_recorded_numbers_unless_its_version_was_bumped(tiny_cfg, patched_data):
    _check({"stage1": stage1_digest(tiny_cfg)})


def test_post_training_stages_give_their_recorded_numbers(committed_model):
    _check(post_training_digests(committed_model))


def test_training_twice_gives_the_same_model_on_any_machine(tiny_cfg, patched_data, isolated_dirs):
    first = stage1_digest(tiny_cfg)
    shutil.rmtree(isolated_dirs["results"])
    shutil.rmtree(isolated_dirs["cache"])  # no checkpoint to resume from: trained again from scratch
    assert stage1_digest(tiny_cfg) == first


def test_an_unrecorded_machine_kind_skips_and_says_how_to_record(monkeypatch):
    monkeypatch.setattr(provenance, "machine_kind", lambda: {"cpu_model": "Imaginary CPU", "cpu_capability":
                        "NEON", "torch": "9.9"})  # fmt: skip
    with pytest.raises(pytest.skip.Exception, match=r"'Imaginary CPU \| NEON \| torch 9.9'.*record them"):
        _check({"stage1": "0" * 64})
