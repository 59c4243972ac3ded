"""The results store: light, committed results under ``results/<profile>/`` with provenance.

One JSON file per run (named by its config's content hash), written atomically with where it
came from; predictions are stored compactly (:func:`encode_predictions`). :mod:`ltmpq.runs`
writes here, :mod:`ltmpq.load` reads for the chapters. Used by every chapter.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import config_hash
from .io import write_json
from .paths import ROOT, results_dir

SCHEMA = 1


def encode_predictions(pred: np.ndarray) -> str | list[int]:
    """Predicted labels compactly: a string of digits for up to 10 classes, else a list."""
    pred = np.asarray(pred)
    return "".join(map(str, pred.tolist())) if pred.size == 0 or pred.max() < 10 else pred.tolist()


def decode_predictions(stored: str | list[int]) -> np.ndarray:
    """Inverse of :func:`encode_predictions` (also reads the plain lists of chapters 1-2)."""
    if isinstance(stored, str):
        return np.frombuffer(stored.encode(), dtype=np.uint8).astype(np.int64) - ord("0")
    return np.asarray(stored, dtype=np.int64)


class MissingResultError(FileNotFoundError):
    """A result the book needs is not in ``results/``; the message names the command to make it."""


def result_path(profile: str, kind: str, cfg: Any) -> Path:
    """``results/<profile>/<kind>/<tag>-<hash>.json`` for a run config."""
    return results_dir() / profile / kind / f"{cfg.tag}-{config_hash(cfg)}.json"


#: What a stored result of each kind must hold for a chapter to read it (top level, and per split
#: or entry). A file without them is treated like an unreadable one: never returned as ok.
REQUIRED = {
    "stage1": ("train_counts", "groups", "split_sizes", "test_labels", "val", "test", "provenance"),
    "decoupled": ("methods", "stage1_classifier", "provenance"),
    "quantized": ("entries", "train_counts", "quant", "provenance"),
    "recipe": ("name", "train_counts", "history", "val", "provenance"),
    "mpq": ("allocations", "sweep", "hessians", "val_labels", "test_labels", "train_counts", "layer_params",
            "seconds", "provenance"),
    "explain": ("integer", "curvature", "train_counts", "seconds", "provenance"),
}  # fmt: skip
EVALUATION = ("metrics", "per_class")


def problem(payload: Any, cfg: Any) -> str | None:
    """Why a parsed result file cannot stand for ``cfg`` (None when it can)."""
    if not isinstance(payload, dict):
        return "not a result (no JSON object)"
    if payload.get("schema") != SCHEMA:
        return f"schema {payload.get('schema')!r}, expected {SCHEMA}"
    if payload.get("config_hash") != config_hash(cfg):
        return "another run's result (config hash differs)"
    kind = payload.get("kind")
    if kind not in REQUIRED:
        return f"unknown kind {kind!r}"
    missing = [k for k in REQUIRED[kind] if k not in payload]
    if missing:
        return f"incomplete: no {', '.join(missing)}"
    evaluations = []
    if kind == "recipe":
        evaluations = [payload["val"]]
    elif kind == "stage1":
        evaluations = [payload["val"], payload["test"]]
        n, n_test = len(payload["train_counts"]), len(payload["test"].get("per_class", []))
        if n_test != n or n < 2:
            return f"inconsistent: {n} training classes but {n_test} test classes"
    elif kind == "decoupled":
        evaluations = [m.get(split, {}) for m in payload["methods"].values() for split in ("val", "test")]
    elif kind == "quantized":
        methods = [m for e in payload["entries"].values() for m in e.get("methods", {}).values()]
        evaluations = [m.get(split, {}) for m in methods for split in ("val", "test")]
    if any(not isinstance(e, dict) or any(k not in e for k in EVALUATION) for e in evaluations):
        return "incomplete: an evaluation without its metrics or per-class accuracy"
    return None


def load(path: Path, cfg: Any) -> dict | None:
    """The stored result for ``cfg`` or None; an unreadable, incomplete or mismatched file counts as
    missing (:func:`problem` says why)."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # includes JSONDecodeError and UnicodeDecodeError
        return None
    return payload if problem(payload, cfg) is None else None


def status(
    path: Path, cfg: Any, data_sha256: str | None = None, versions: dict[str, int] | None = None
) -> str:
    """``missing``, ``unreadable (why)``, ``other data (...)``, ``outdated (...)`` or ``ok``.

    ``data_sha256``: the digest of the CIFAR-10 copy at hand; a result computed on another copy is
    not ok for it. ``versions``: each stage's version of its numbers in today's code
    (:data:`ltmpq.runs.STAGE_VERSIONS`); a result made by another version would come out
    differently today. (Results made before versions were recorded are version 1.)
    """
    if not Path(path).is_file():
        return "missing"
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__})"
    if (why := problem(payload, cfg)) is not None:
        return f"unreadable ({why})"
    stored_data = (payload["provenance"].get("data_source") or {}).get("sha256")
    if data_sha256 is not None and stored_data not in (None, data_sha256):
        return f"other data (computed on {stored_data[:12]}, this machine's copy is {data_sha256[:12]})"
    made, now = payload.get("stage_version", 1), (versions or {}).get(payload["kind"])
    if now is not None and made != now:
        return f"outdated ({payload['kind']} v{made}; today's code is v{now}: rerun to update)"
    return "ok"


def require(path: Path, cfg: Any, command: str) -> dict:
    """Load a stored result or fail with a message naming the command that produces it."""
    payload = load(path, cfg)
    if payload is None:
        raise MissingResultError(
            f"missing result {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
            f"for {type(cfg).__name__} {cfg.tag} ({config_hash(cfg)}). Produce it with:\n    {command}\n"
            "(the book never trains by itself; pass compute=True to a notebook to allow it)"
        )
    return payload


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


def provenance(cfg: Any, data_source: Any, wall_seconds: float) -> dict:
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


def save(path: Path, cfg: Any, payload: dict, data_source: Any, wall_seconds: float) -> dict:
    """Store ``payload`` with its provenance, atomically; returns what was written."""
    full = {"schema": SCHEMA, "config_hash": config_hash(cfg), **payload,
            "provenance": provenance(cfg, data_source, wall_seconds)}  # fmt: skip
    write_json(path, full)
    return load(path, cfg)  # what a later reader gets (NaN stored as null)
