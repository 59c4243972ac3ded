"""Where the project keeps data caches, heavy artifacts and committed results.

Every location can be overridden by an environment variable so that tests and CI never write
into the working tree by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Project root: the directory that holds ``pyproject.toml``.
ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Ignored local cache for decoded data, checkpoints and features (``LTMPQ_CACHE``)."""
    return Path(os.environ.get("LTMPQ_CACHE", ROOT / ".cache"))


def results_dir() -> Path:
    """Committed light results, one sub-folder per profile (``LTMPQ_RESULTS``)."""
    return Path(os.environ.get("LTMPQ_RESULTS", ROOT / "results"))


def data_candidates() -> list[Path]:
    """Folders searched, in order, for a local CIFAR-10 copy.

    ``LTMPQ_DATA`` alone when it is set (an explicit setting wins or fails, it is never skipped),
    else ``data/`` in the project, then the shared offline copy beside it (``../shared/data``).
    """
    if env := os.environ.get("LTMPQ_DATA"):
        return [Path(env)]
    return [ROOT / "data", ROOT.parent / "shared" / "data"]
