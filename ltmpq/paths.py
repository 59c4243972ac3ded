"""Where the project keeps data caches, heavy artifacts and committed results.

Every location can be overridden by an environment variable so that tests and CI never write
into the working tree by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Project root: the directory that holds ``pyproject.toml``.
ROOT = Path(__file__).resolve().parent.parent


def _env_folder(name: str, default: Path) -> Path:
    """``$name`` when it is set, else ``default``; an empty value or one naming a file is an error.

    An explicit setting wins or fails: ``Path("")`` is the working directory, so an empty value
    would silently make it the results store or the cache.
    """
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.strip():
        raise ValueError(f"{name} is set but empty; unset it (default: {default}) or set it to a folder")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}={value} is a file, not a folder; unset it (default: {default}) "
                         "or set it to a folder")  # fmt: skip
    return path


def cache_dir() -> Path:
    """Ignored local cache for decoded data, checkpoints and features (``LTMPQ_CACHE``)."""
    return _env_folder("LTMPQ_CACHE", ROOT / ".cache")


def results_dir() -> Path:
    """Committed light results, one sub-folder per profile (``LTMPQ_RESULTS``)."""
    return _env_folder("LTMPQ_RESULTS", ROOT / "results")


def data_candidates() -> list[Path]:
    """Folders searched, in order, for a local CIFAR-10 copy.

    ``LTMPQ_DATA`` alone when it is set (an explicit setting wins or fails, it is never skipped),
    else ``data/`` in the project, then the shared offline copy beside it (``../shared/data``).
    An empty ``LTMPQ_DATA`` is an error; one that holds no copy is :func:`ltmpq.data.find_source`'s.
    """
    defaults = [ROOT / "data", ROOT.parent / "shared" / "data"]
    env = os.environ.get("LTMPQ_DATA")
    if env is None:
        return defaults
    if not env.strip():
        shown = ", then ".join(map(str, defaults))
        raise ValueError(f"LTMPQ_DATA is set but empty; unset it (default: {shown}) or set it to the "
                         "folder that holds CIFAR-10")  # fmt: skip
    return [Path(env)]


#: The landing page's source: executed after the chapters, it summarises them.
LANDING = "landing"


def chapter_sources() -> list[Path]:
    """Every page the book executes, in the order ``make book`` executes them: the numbered
    chapters, then the landing page."""
    return [*sorted((ROOT / "notebooks").glob("[0-9]*.py")), ROOT / "notebooks" / f"{LANDING}.py"]
