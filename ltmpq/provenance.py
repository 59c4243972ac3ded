"""Where a result came from: the code version, the packages, the machine and its float kernels, the
data and the time; and the machine kind that golden digests are keyed on. Imports torch (the
reading side of the store, :mod:`ltmpq.results`, does not).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .paths import ROOT


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The code a process runs is the code it imported: record the git state at import time, so
# editing the tree while a long run goes on does not mislabel its results.
_GIT_COMMIT = _git("rev-parse", "HEAD")
_GIT_STATUS = _git("status", "--porcelain", "--", "ltmpq", "pyproject.toml")


def cpu_model() -> str:
    """The CPU's model name (training is bitwise reproducible on one CPU type, not across types)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The instruction-set flags that decide which floating-point kernels run (and so the rounding).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")  # fmt: skip


def cpu_flags() -> list[str]:
    """The CPU's instruction-set flags among :data:`ISA_FLAGS` (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


def kernel_libraries() -> dict[str, str | None]:
    """torch's oneDNN and MKL versions and the CPU capability it dispatches to, and the ISA limits
    set in the environment: what decides the float kernels (and their rounding) on a CPU."""
    shown = torch.__config__.show()

    def find(pattern: str) -> str | None:
        m = re.search(pattern, shown)
        return m.group(1).strip() if m else None

    return {"onednn": find(r"MKL-DNN (v[\d.]+)"), "mkl": find(r"Math Kernel Library Version ([\w.-]+)"),
            "capability_usage": find(r"CPU capability usage: (\S+)"),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
            "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA")}  # fmt: skip


def data_record(data_source: Any) -> dict | None:
    """A data source as a result records it: kind, folder name, digests, whether lossy; never the
    path of the machine it was read on."""
    if data_source is None:
        return None
    src = dict(data_source) if isinstance(data_source, dict) else asdict(data_source)
    if "path" in src:
        src["name"] = Path(src.pop("path")).name
    return src


def record(cfg: Any, data_source: Any, wall_seconds: float) -> dict:
    """Where a result came from: config, code version, packages, device and its float kernels, data,
    time: enough to explain a difference between two machines' numbers."""
    versions = {}
    for pkg in ("torch", "torchvision", "numpy", "scikit-learn", "scipy", "pillow", "safetensors", "ltmpq"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        from PIL import features

        versions["libjpeg_turbo"] = features.version("libjpeg_turbo")
    except (ImportError, ValueError):
        versions["libjpeg_turbo"] = None
    return {
        "config": asdict(cfg),
        "config_type": type(cfg).__name__,
        "git_commit": _GIT_COMMIT,
        "git_dirty": bool(_GIT_STATUS) if _GIT_STATUS != "unknown" else None,
        "versions": versions,
        "python": platform.python_version(),
        "device": {
            # the device ltmpq.training trains on (default_device): CUDA whenever present
            "kind": "cuda" if torch.cuda.is_available() else "cpu",
            "name": torch.cuda.get_device_name(0)
            if torch.cuda.is_available()
            else platform.processor() or platform.machine(),
            "platform": platform.platform(),
            "cpu_model": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": cpu_flags(),
            "kernels": kernel_libraries(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "data_source": data_record(data_source),
        "wall_seconds": round(wall_seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def machine_kind() -> dict[str, str]:
    """What decides bitwise float results on a CPU: its model, the instruction set torch dispatches
    to, and torch's version. Training is bitwise repeatable within one kind, not across kinds (an
    AMD EPYC with AVX-512 shares torch's capability "AVX512" with an Intel Xeon and still rounds
    differently), so a golden digest names the kind that recorded it."""
    return {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__.split("+")[0]}  # fmt: skip


def machine_key() -> str:
    """:func:`machine_kind` as one line, the key of a golden digest: ``AMD EPYC | AVX2 | torch 2.14.1``."""
    k = machine_kind()
    return f"{k['cpu_model']} | {k['cpu_capability']} | torch {k['torch']}"
