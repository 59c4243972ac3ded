"""The results store: light, committed results under ``results/<profile>/``, read without torch.

One JSON file per run (named by its config's content hash, :func:`ltmpq.plan.result_path`), written
atomically with its provenance (:mod:`ltmpq.provenance`). Every read validates the file against the
declared schema (:mod:`ltmpq.schema`) and its run: :func:`state` says whether a stored result can
stand for its run today (``ok``, ``missing``, ``unreadable``, ``other data``, ``outdated``,
``stale``), and :func:`fetch` returns it or fails with one message naming the fix. ``ltmpq
status``, the chapters and the stages all read through these two, so they agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import plan, schema
from .config import config_hash
from .io import strict_json, write_json
from .paths import ROOT

SCHEMA = schema.SCHEMA


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


class ResultError(MissingResultError):
    """A stored result that cannot stand for its run (damaged, outdated, made from other weights or
    data); the message names the file and how to restore or remake it."""


def _shown(path: Path) -> str:
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def problem(payload: Any, cfg: Any) -> str | None:
    """Why a parsed result file cannot stand for ``cfg`` (None when it can): the schema's reason, or
    another run's result."""
    if (why := schema.problem(payload)) is not None:
        return why
    if payload.get("config_hash") != config_hash(cfg):
        return "another run's result (config hash differs)"
    return None


def _parse(path: Path) -> tuple[Any, str | None]:
    """The parsed file and None, or None and why it cannot be read."""
    try:
        return json.loads(Path(path).read_text()), None
    except (OSError, ValueError) as exc:  # includes JSONDecodeError and UnicodeDecodeError
        return None, f"{type(exc).__name__}"


def load(path: Path, cfg: Any) -> dict | None:
    """The stored result for ``cfg`` or None; an unreadable, invalid or mismatched file counts as
    missing here (:func:`state` says why)."""
    payload, err = _parse(path)
    return payload if err is None and problem(payload, cfg) is None else None


_WEIGHTS: dict[tuple, str | None] = {}


def _published_weights(profile: str, cfg: Any) -> str | None:
    """The weights digest a stored stage-1 result records (None: none readable), remembered per
    file version: every downstream result of a model is checked against it."""
    path = plan.result_path(profile, "stage1", cfg)
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _WEIGHTS:
        s1 = load(path, cfg)
        _WEIGHTS[key] = None if s1 is None else s1.get("weights_sha256")
    return _WEIGHTS[key]


def _checked(path: Path, cfg: Any, data_sha256: str | None, weights_sha256: str | None) -> tuple[str, Any]:
    """:func:`state` and, when ``ok``, the parsed result."""
    if not Path(path).is_file():
        return "missing", None
    payload, err = _parse(path)
    if err is not None:
        return f"unreadable ({err})", None
    if (why := problem(payload, cfg)) is not None:
        return f"unreadable ({why})", None
    stored_data = (payload["provenance"].get("data_source") or {}).get("sha256")
    if data_sha256 is not None and stored_data not in (None, data_sha256):
        return f"other data (computed on {stored_data[:12]}, this machine's copy is {data_sha256[:12]})", None
    made, now = payload.get("stage_version", 1), plan.STAGE_VERSIONS.get(payload["kind"])
    if now is not None and made != now:
        return f"outdated ({payload['kind']} v{made}; today's code is v{now})", None
    if weights_sha256 is not None and payload["kind"] != "stage1":
        stored_weights = payload.get("weights_sha256")
        if stored_weights != weights_sha256:
            return (
                f"stale (computed from weights {str(stored_weights)[:12]}, its stage-1 run's are "
                f"{weights_sha256[:12]})"
            ), None
    return "ok", payload


def state(path: Path, cfg: Any, data_sha256: str | None = None, weights_sha256: str | None = None) -> str:
    """``missing``, ``unreadable (why)``, ``other data (...)``, ``outdated (...)``, ``stale (...)``
    or ``ok``.

    ``data_sha256``: the digest of the CIFAR-10 copy at hand (a result computed on another copy is
    not ok for it). A result made by another version of its stage's code than today's
    (:data:`ltmpq.plan.STAGE_VERSIONS`; results made before versions were recorded are version 1)
    is outdated. ``weights_sha256``: the weights its stage-1 run publishes today; a downstream
    result computed from other weights (a retrained model) is stale.
    """
    return _checked(path, cfg, data_sha256, weights_sha256)[0]


def _run_checked(run: plan.Run, profile: str, data_sha256: str | None) -> tuple[str, Any]:
    weights = None if run.kind == "stage1" else _published_weights(profile, run.stage1)
    return _checked(run.path(profile), run.config, data_sha256, weights)


def run_state(run: plan.Run, profile: str, data_sha256: str | None = None) -> str:
    """:func:`state` of a run's stored result, checked against its stage-1 run's weights."""
    return _run_checked(run, profile, data_sha256)[0]


def _missing(path: Path, cfg: Any, command: str) -> MissingResultError:
    return MissingResultError(
        f"missing result {_shown(path)} for {type(cfg).__name__} {cfg.tag} ({config_hash(cfg)}). "
        f"Produce it with:\n    {command}\n"
        "(the book never trains by itself; pass compute=True to a notebook to allow it)"
    )


def fix(run: plan.Run, profile: str, why: str) -> str:
    """What to do about a stored result that is not ok, in one line."""
    path = _shown(run.path(profile))
    if why.startswith("other data"):
        return f"{path} is {why}: move it away, or set LTMPQ_RESULTS elsewhere to compute it here"
    remake = run.command(profile, "--remake")
    if why.startswith("unreadable"):
        return f"{path} is {why}: restore it (git checkout -- {path}) or remake it with {remake}"
    return f"{path} is {why}: remake it with {remake}"


def fetch(run: plan.Run, profile: str, data_sha256: str | None = None) -> dict:
    """The stored result of ``run``, or an error naming the command that makes it
    (:class:`MissingResultError`) or the fix of a stored one that is not ok (:class:`ResultError`)."""
    why, payload = _run_checked(run, profile, data_sha256)
    if why == "ok":
        return payload
    if why == "missing":
        raise _missing(run.path(profile), run.config, run.command(profile))
    raise ResultError(fix(run, profile, why))


def require(path: Path, cfg: Any, command: str) -> dict:
    """Load a stored result (of a run outside the plan, e.g. the recipe search) or fail with a
    message naming the command that produces it, or why the stored file cannot be used."""
    payload = load(path, cfg)
    if payload is not None:
        return payload
    why = state(path, cfg)
    if why != "missing":
        raise ResultError(
            f"{_shown(path)} is {why}: restore it (git checkout -- {_shown(path)}) or remake it: {command}"
        )
    raise _missing(path, cfg, command)


def save(path: Path, cfg: Any, payload: dict, provenance: dict) -> dict:
    """Store ``payload`` with its ``provenance`` (:func:`ltmpq.provenance.record`), atomically, after
    checking it against the schema; returns what a later reader gets."""
    full = {"schema": SCHEMA, "config_hash": config_hash(cfg), **payload, "provenance": provenance}
    # NaN is stored as null (an empty group's accuracy); a result the reader would refuse is never written
    if (why := problem(strict_json(full), cfg)) is not None:
        raise ValueError(f"refusing to store an invalid result at {_shown(path)}: {why}")
    write_json(path, full)
    return load(path, cfg)
