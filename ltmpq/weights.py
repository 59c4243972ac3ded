"""Published model weights: the stage-1 network and the stage-2 classifiers of every run, committed
beside its results as safetensors (no pickle), each named by its run and verified by its SHA-256.

``results/<profile>/models/<tag>-<hash>.safetensors`` holds a stage-1 model and
``<tag>-<hash>.classifiers.safetensors`` the five classifiers of one decoupled run; the stage-1 and
decoupled results record the digests, and everything computed from the weights records them too.
Loading checks the digest and refuses a mismatch naming both digests and how to fix it, so a
chapter can never rest on other weights than the ones its numbers came from. Used by chapters 1-4.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import DecoupledRun, Stage1Config, config_hash
from .io import atomic_write
from .paths import results_dir


class WeightsError(ValueError):
    """Published weights that are missing, damaged or not the ones a result was computed from."""


def stage1_name(cfg: Stage1Config) -> str:
    return f"{cfg.tag}-{config_hash(cfg)}.safetensors"


def classifiers_name(run: DecoupledRun) -> str:
    return f"{run.tag}-{config_hash(run)}.classifiers.safetensors"


def path_for(profile: str, name: str) -> Path:
    """Where a profile keeps a published weights file."""
    return results_dir() / profile / "models" / name


def find(name: str) -> Path | None:
    """The published weights file of this name in any profile (a run's name is its config hash, so
    the same run in two profiles is the same file), or None."""
    found = sorted(results_dir().glob(f"*/models/{name}"))
    return found[0] if found else None


def _blob(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    # contiguous CPU copies: safetensors stores raw bytes, and channels_last weights are strided
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    # one metadata entry holding sorted JSON: safetensors writes several entries in hash-map order,
    # which would make the same weights hash differently from one process to the next
    return st_save(tensors, metadata={"ltmpq": json.dumps(dict(metadata), sort_keys=True)})


def metadata_of(path: Path) -> dict[str, str]:
    """What a weights file says about itself (its run, and for classifiers the backbone's digest)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("ltmpq", "{}"))


def digest(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """The SHA-256 that the file :func:`save` would write for ``state`` has."""
    return hashlib.sha256(_blob(state, metadata or {})).hexdigest()


def save(path: Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """Write ``state`` as safetensors, atomically; returns the file's SHA-256."""
    blob = _blob(state, metadata or {})
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(blob))
    return hashlib.sha256(blob).hexdigest()


def load(path: Path, expected_sha256: str | None, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of a published weights file, after checking its SHA-256 against the one its result
    recorded (``expected_sha256``; None: nothing recorded to check against). ``fix`` is the command
    that makes the weights again, named in the error."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read the weights {path} ({exc}); {fix}") from exc
    got = hashlib.sha256(blob).hexdigest()
    if expected_sha256 is not None and got != expected_sha256:
        raise WeightsError(
            f"{path} has SHA-256 {got[:16]}…, but its result was computed from {expected_sha256[:16]}…: "
            f"the file was replaced or damaged. Restore it (git checkout -- {path}) or {fix}"
        )
    try:
        return st_load(blob)
    except (SafetensorError, ValueError) as exc:  # a garbled header or tensor table
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); {fix}") from exc


def check_shapes(
    path: Path, state: Mapping[str, torch.Tensor], expected: Mapping, what: str, fix: str
) -> None:
    """Refuse weights whose tensors do not fit the model their config builds (another width, class
    count or classifier): the first difference in one line, naming the file and how to fix it."""
    shape = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in expected.items()}
    for k in sorted(set(shape) | set(state)):
        got = tuple(state[k].shape) if k in state else None
        if got != shape.get(k):
            detail = (f"has no tensor {k}" if got is None else f"has an extra tensor {k}" if k not in shape
                      else f"{k} is {list(got)}, its config needs {list(shape[k])}")  # fmt: skip
            restore = f"restore it (git checkout -- {path}) or {fix}"
            raise WeightsError(f"{path} does not fit its config ({what}): {detail}; {restore}")


def split_classifiers(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``{"crt.weight": ...}`` -> ``{"crt": {"weight": ...}}`` (the classifiers file's layout)."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        head, _, name = key.partition(".")
        out.setdefault(head, {})[name] = value
    return out


def join_classifiers(states: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`split_classifiers`."""
    return {f"{head}.{name}": v for head, state in states.items() for name, v in state.items()}
