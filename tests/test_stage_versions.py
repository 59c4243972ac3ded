"""A golden test of each stage's numbers, so that a change that moves them without bumping
``ltmpq.runs.STAGE_VERSIONS`` (which ``ltmpq status`` reads) cannot land unnoticed.

Every stage runs on synthetic data with tiny configs; a digest of what it stores (predictions,
weights and bit maps, never times) is compared with the one recorded below. Floating-point
kernels differ between CPU kinds, so the digests hold on the machine kind that recorded them;
elsewhere the test is skipped and says so.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from ltmpq import runs
from ltmpq.config import DecoupleConfig, ExplainConfig, MPQConfig, QuantConfig
from ltmpq.results import cpu_model

#: To record after a bump: run this test; the failure names the new digest of each stage.
GOLDEN = {
    "machine": {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512"},
    "versions": {"stage1": 1, "decoupled": 1, "quantized": 1, "mpq": 1, "explain": 1},
    "digests": {
        "stage1": "09bb5d73a684f235c64617a507c3a2dd82a2889d82db5348ab87f43bcdef76e9",
        "decoupled": "84adda74892c19b43aa01b7f0ae9ecdb5d431ff78ad3d311d854d0be077ca4a2",
        "quantized": "cca64e084a5b72f3463ae148706026737160f0fa51b4c8fa38f6ecbdfc7d95a4",
        "mpq": "7d0f5229c9555116978265cdf1e661aa5cd6d6dc5715b901820cef5385ac58fa",
        "explain": "5ed186e5c1499c6d9e72e711e4bdd49bb27b1f9e4d7fac7a99bc96b57a116f5d",
    },
}

DCFG = DecoupleConfig(epochs=2, batch_size=32, tau_grid=(0.0, 1.0))
QCFG = QuantConfig(calibration_size=10)
MCFG = MPQConfig(choices=(4, 8), rule_bits=(8, 4), rule_ks=(8,), rule_metrics=("overall", "tail"),
                 budgets=(6.0,), budget_metrics=("overall", "kl", "hessian"), random_draws=1,
                 hessian_samples=2)  # fmt: skip
ECFG = ExplainConfig(val_images=10, train_per_class=2, samples=2, bits=(8, 4))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def stage_digests(cfg) -> dict[str, str]:
    """What each stage stores for ``cfg``, reduced to its numbers (predictions, weights, maps)."""
    s1 = runs.stage1(cfg, "smoke", compute=True, progress=False)
    dec = runs.decoupled(cfg, DCFG, "smoke", compute=True, progress=False)
    q = runs.quantized(cfg, DCFG, QCFG, (8, 4), "smoke", compute=True, progress=False)
    m = runs.mixed_precision(cfg, DCFG, QCFG, MCFG, "smoke", compute=True, progress=False)
    e = runs.explain(cfg, DCFG, QCFG, ECFG, "smoke", compute=True, progress=False)
    heads = {k: v["test"]["predictions"] for k, v in dec["methods"].items()}
    sweeps = {
        b: {k: v["test"].get("predictions") for k, v in e["methods"].items()} for b, e in q["entries"].items()
    }
    maps = [(a["kind"], a["bit_map"], a["test"]["predictions"]) for a in m["allocations"]]
    return {
        "stage1": _digest([s1["weights_sha256"], s1["test"]["predictions"], s1["val"]["metrics"]]),
        "decoupled": _digest([dec["classifiers_sha256"], heads]),
        "quantized": _digest(sweeps),
        "mpq": _digest([m["sweep"], maps]),
        "explain": _digest(
            [
                {
                    h: [c["agreement"], c["sim_per_class"], c["int_per_class"]]
                    for h, c in e["integer"].items()
                },
                e["curvature"],
            ]
        ),  # fmt: skip
    }


def test_each_stage_gives_its_recorded_numbers_unless_its_version_was_bumped(tiny_cfg, patched_data):
    here = {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if here != GOLDEN["machine"]:
        pytest.skip(f"golden digests were recorded on {GOLDEN['machine']}, this is {here}")
    got = stage_digests(tiny_cfg)
    for stage, version in runs.STAGE_VERSIONS.items():
        assert version == GOLDEN["versions"][stage], (
            f"STAGE_VERSIONS[{stage!r}] is {version}: record its golden digest for that version here "
            f"({stage}: {got[stage]!r})"
        )
        assert got[stage] == GOLDEN["digests"][stage], (
            f"the numbers of stage {stage} changed without a version bump: bump STAGE_VERSIONS[{stage!r}] "
            f"in ltmpq/runs.py (stored results then read as outdated) and record {got[stage]!r} here"
        )
