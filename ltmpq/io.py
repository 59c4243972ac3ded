"""Atomic file writes (a reader never sees a half-written result, checkpoint or cache entry), and
what reading a damaged one raises."""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What ``torch.load`` raises on a truncated, garbled or foreign file: such a cache entry or
#: checkpoint is rebuilt. Anything else is a real error and propagates.
UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


#: A temporary file this old beside its target was left by a killed writer (writes take seconds).
ORPHAN_AGE_S = 600


def remove_orphans(path: Path, older_than_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete the temporary files that killed writers of ``path`` left beside it (SIGKILL or a
    power cut skip the cleanup below); recent ones may belong to a writer still at work."""
    removed = []
    for tmp in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    Leftovers of earlier writers of ``path`` that were killed mid-write are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)  # atomic on POSIX within one file system
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null (readers turn null back into NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON (NaN -> null), atomically."""
    text = json.dumps(strict_json(obj), indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))
