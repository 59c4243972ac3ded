"""ltmpq.provenance: what a result records of where it came from, and the machine kind."""

from __future__ import annotations

from ltmpq import provenance
from ltmpq.config import Stage1Config

CFG = Stage1Config(imbalance_factor=0.1, seed=0)


def test_provenance_records_what_decides_the_float_kernels():
    prov = provenance.record(CFG, {"kind": "imagefolder-jpeg", "path": "/somewhere/cifar10-jpeg"}, 1.0)
    assert prov["data_source"] == {"kind": "imagefolder-jpeg", "name": "cifar10-jpeg"}
    dev = prov["device"]
    assert dev["cpu_capability"] and set(dev["cpu_flags"]) <= set(provenance.ISA_FLAGS)
    assert set(dev["kernels"]) == {
        "onednn",
        "mkl",
        "capability_usage",
        "ATEN_CPU_CAPABILITY",
        "ONEDNN_MAX_CPU_ISA",
    }
    assert {"pillow", "libjpeg_turbo", "numpy", "safetensors"} <= set(prov["versions"])


def test_the_machine_kind_names_cpu_capability_and_torch():
    kind = provenance.machine_kind()
    assert set(kind) == {"cpu_model", "cpu_capability", "torch"} and all(kind.values())
    assert (
        provenance.machine_key() == f"{kind['cpu_model']} | {kind['cpu_capability']} | torch {kind['torch']}"
    )
