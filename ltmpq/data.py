"""CIFAR-10 loading, long-tailed subsets, the validation split and class groups.

Used by every chapter: chapter 0 draws the per-class counts, chapters 1-4 train and evaluate on
the splits built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .io import atomic_write, write_json
from .paths import cache_dir, data_candidates
from .vocab import CLASSES, NUM_CLASSES


class DataNotFoundError(FileNotFoundError):
    """No CIFAR-10 copy could be found or downloaded."""


class DataError(ValueError):
    """A CIFAR-10 copy is there but unusable: incomplete, an empty class, a file that is no image."""


#: Seconds the download fallback waits for data before it gives up (behind a silent proxy it
#: would otherwise wait forever).
DOWNLOAD_TIMEOUT_S = 60
#: File names an ImageFolder copy may hold in its class folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


@dataclass(frozen=True)
class DataSource:
    """Where the CIFAR-10 pixels came from; recorded with every result."""

    kind: str  # "cifar-10-batches-py" (original, lossless) or "imagefolder-jpeg" (lossy)
    path: str
    lossy: bool
    note: str
    sha256: str | None = None  # content hash, filled in when the copy is decoded


@dataclass(frozen=True)
class Cifar10:
    """Decoded CIFAR-10: uint8 images (N, 32, 32, 3) and int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: DataSource


def imagefolder_problems(path: Path) -> list[str]:
    """What keeps ``path`` from being a complete CIFAR-10 ImageFolder copy ([] when nothing does):
    both splits, the ten class folders in each, none of them empty."""
    problems = []
    for split in ("train", "test"):
        if not (path / split).is_dir():
            problems.append(f"{path / split} is missing")
            continue
        for c in CLASSES:
            d = path / split / c
            if not d.is_dir():
                problems.append(f"class folder {d} is missing")
            elif not any(d.iterdir()):
                problems.append(f"class folder {d} is empty")
    return problems


def _looks_like_imagefolder(path: Path) -> bool:
    return (path / "train").is_dir() or (path / "test").is_dir()


def _incomplete(path: Path, problems: list[str]) -> DataError:
    shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    return DataError(f"incomplete CIFAR-10 copy {path}: {shown}")


def find_source(allow_download: bool = True) -> DataSource:
    """Locate CIFAR-10: a local original or ImageFolder copy first, else torchvision's download.

    Searched: ``$LTMPQ_DATA`` (when set, only there: an explicit setting wins or fails), else
    ``./data`` and ``../shared/data``; in each, the original ``cifar-10-batches-py`` is preferred
    over an ImageFolder copy (``cifar10-jpeg`` or the folder itself). A copy that is there but
    incomplete is an error naming what is missing, never skipped for another one.
    """
    candidates = data_candidates()
    for base in candidates:
        for path in (base / "cifar-10-batches-py", base):
            present = [n for n in BATCH_FILES if (path / n).is_file()]
            if present and len(present) < len(BATCH_FILES) and path.name == "cifar-10-batches-py":
                missing = [n for n in BATCH_FILES if n not in present]
                raise DataError(f"incomplete CIFAR-10 batches {path}: missing {', '.join(missing)}")
            if (path / "data_batch_1").is_file() and (path / "test_batch").is_file():
                return DataSource(
                    "cifar-10-batches-py", str(path.resolve()), False,
                    "original CIFAR-10 (lossless, torchvision's cifar-10-batches-py)",
                )  # fmt: skip
    for base in candidates:
        for path in (base / "cifar10-jpeg", base):
            if _looks_like_imagefolder(path):
                if problems := imagefolder_problems(path):
                    raise _incomplete(path, problems)
                return DataSource(
                    "imagefolder-jpeg", str(path.resolve()), True,
                    "a lossy JPEG (quality 75) re-encoding of CIFAR-10, not the original "
                    "pixels; numbers are not directly comparable with published CIFAR-10 "
                    "results",
                )  # fmt: skip
    if explicit := os.environ.get("LTMPQ_DATA"):
        raise DataNotFoundError(
            f"LTMPQ_DATA={explicit} holds no CIFAR-10 (neither cifar-10-batches-py nor an ImageFolder "
            "copy train/<class>/*.jpg, test/<class>/*.jpg); point it at the folder that does, or unset it"
        )
    if allow_download:
        target = candidates[0]
        note = f"(gives up after {DOWNLOAD_TIMEOUT_S} s without data)"
        print(f"CIFAR-10 not found locally: downloading it with torchvision into {target} {note}",
              file=sys.stderr, flush=True)  # fmt: skip
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torchvision's urlopen has no timeout of its own
        try:
            from torchvision.datasets import CIFAR10

            CIFAR10(str(target), train=True, download=True)
            CIFAR10(str(target), train=False, download=True)
        except (OSError, RuntimeError, ValueError) as exc:  # refused, DNS failure, timeout, bad download
            raise DataNotFoundError(_not_found_message(candidates, exc)) from exc
        finally:
            socket.setdefaulttimeout(previous)
        return find_source(allow_download=False)
    raise DataNotFoundError(_not_found_message(candidates, None))


def _not_found_message(candidates: list[Path], exc: Exception | None) -> str:
    where = ", ".join(str(p) for p in candidates)
    msg = (
        f"CIFAR-10 not found. Looked in: {where}. Put torchvision's 'cifar-10-batches-py' or an "
        "ImageFolder copy (train/<class>/*.jpg, test/<class>/*.jpg) in one of them, or set "
        "LTMPQ_DATA to the folder that holds it."
    )
    if exc is not None:
        msg += f" The download fallback failed too: {type(exc).__name__}: {exc}"
    return msg


def _read_batches(path: Path) -> tuple[np.ndarray, ...]:
    """torchvision's reader of the pickled batches, which also checks each file's published MD5."""
    from torchvision.datasets import CIFAR10

    # torchvision looks for its batches in <root>/cifar-10-batches-py: point it at this folder's name
    reader = type("LocalCIFAR10", (CIFAR10,), {"base_folder": path.name})
    try:
        train, test = (reader(str(path.parent), train=t, download=False) for t in (True, False))
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataNotFoundError(
            f"{path}: the CIFAR-10 batches do not match the published checksums ({exc}); "
            "replace the folder with torchvision's original cifar-10-batches-py"
        ) from exc
    arrays = (train.data, train.targets, test.data, test.targets)
    return tuple(np.ascontiguousarray(a, dtype=np.int64 if i % 2 else np.uint8) for i, a in enumerate(arrays))


def _read_imagefolder(path: Path) -> tuple[tuple[np.ndarray, ...], str]:
    """Decode every JPEG once; also hash the copy the way its README defines the checksum."""
    from io import BytesIO

    from PIL import Image
    from tqdm import tqdm

    digest = hashlib.sha256()
    arrays: list[np.ndarray] = []
    root_name = path.name
    if problems := imagefolder_problems(path):
        raise _incomplete(path, problems)
    files = [
        (split, label, f)
        for split in ("test", "train")  # sorted order of (split, class, file) for the checksum
        for label, c in enumerate(CLASSES)
        for f in sorted((path / split / c).iterdir())
    ]
    strays = [f for _, _, f in files if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES]
    if strays:
        raise DataError(f"not an image in the CIFAR-10 copy: {strays[0]} (only {'/'.join(IMAGE_SUFFIXES)} "
                        f"files may be in the class folders; {len(strays)} such entries)")  # fmt: skip
    out: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for split, label, f in tqdm(files, desc="decoding CIFAR-10 JPEGs", unit="img", mininterval=2):
        raw = f.read_bytes()
        digest.update(f"{root_name}/{split}/{CLASSES[label]}/{f.name}".encode())
        digest.update(raw)
        try:
            img = np.asarray(Image.open(BytesIO(raw)).convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError) as exc:  # PIL: unidentified, truncated or garbled image
            raise DataError(f"{f}: not a readable image ({exc})") from exc
        if img.shape != (32, 32, 3):
            raise DataError(f"{f}: expected a 32x32 RGB image, got shape {img.shape}")
        out[split][0].append(img)
        out[split][1].append(label)
    for split in ("train", "test"):
        arrays += [np.stack(out[split][0]), np.asarray(out[split][1], dtype=np.int64)]
    return tuple(arrays), digest.hexdigest()


def _listing(path: Path) -> str:
    """Cheap fingerprint of a data folder: every file's relative name, size and mtime."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _content_sha256(path: Path, names: list[str]) -> str:
    """SHA-256 over each file's name and bytes, in the given order."""
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        h.update((path / n).read_bytes())
    return h.hexdigest()


def _array_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def _cache_paths(source: DataSource) -> tuple[Path, Path]:
    """The decoded arrays' cache entry of a copy and its metadata (digests, source)."""
    # The key covers the files' names, sizes and mtimes: a copy replaced at the same path gets a
    # new entry instead of the old arrays.
    key = hashlib.sha256(f"{source.kind}:{source.path}:{_listing(Path(source.path))}".encode()).hexdigest()
    npz = cache_dir() / "data" / f"cifar10-{key[:16]}.npz"
    return npz, npz.with_suffix(".json")


def cached_digest() -> str | None:
    """The content digest of the CIFAR-10 copy this machine would read, when it has been decoded
    here before; None when it has not (or there is no copy). Cheap: nothing is decoded."""
    try:
        meta = _cache_paths(find_source(allow_download=False))[1]
        return json.loads(meta.read_text())["source"]["sha256"]
    except (DataNotFoundError, DataError, OSError, ValueError, KeyError, TypeError):
        return None


def load_cifar10(source: DataSource | None = None) -> Cifar10:
    """Decode CIFAR-10 once and cache the arrays (``.cache/data``); verify the cache on load.

    A cache entry whose checksum does not match its arrays is treated as corrupt and rebuilt.
    """
    source = source or find_source()
    npz, meta_path = _cache_paths(source)
    names = ("train_x", "train_y", "test_x", "test_y")
    if npz.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(npz) as z:
                arrays = {k: z[k] for k in names}
            if _array_digest(arrays) == meta["array_sha256"]:
                src = DataSource(**meta["source"])
                return Cifar10(*(arrays[k] for k in names), source=src)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # corrupt or foreign entry: fall through and rebuild it
    if source.kind == "cifar-10-batches-py":
        tup = _read_batches(Path(source.path))
        sha = _content_sha256(Path(source.path), ["data_batch_1", "data_batch_2", "data_batch_3",
                                                  "data_batch_4", "data_batch_5", "test_batch"])  # fmt: skip
    else:
        tup, sha = _read_imagefolder(Path(source.path))
    arrays = dict(zip(names, tup, strict=True))
    src = DataSource(source.kind, source.path, source.lossy, source.note, sha)

    def _save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
            np.savez(fh, **arrays)

    atomic_write(npz, _save)
    write_json(meta_path, {"array_sha256": _array_digest(arrays), "source": asdict(src)})
    return Cifar10(*(arrays[k] for k in names), source=src)


# --------------------------------------------------------------------------- long tail


def long_tail_counts(
    n_max: int, imbalance_factor: float, num_classes: int = NUM_CLASSES, profile: str = "exp"
) -> list[int]:
    """Per-class training counts of a long-tailed subset (class 0 is the largest).

    ``exp``: ``int(n_max * IF**(i/(C-1)))`` (Cao et al. 2019); ``step``: the first half of the
    classes keep ``n_max``, the rest get ``int(n_max * IF)``. ``IF = n_min / n_max`` in (0, 1].
    """
    if (
        isinstance(imbalance_factor, bool)
        or not isinstance(imbalance_factor, int | float)
        or not 0 < imbalance_factor <= 1
    ):
        raise ValueError(
            f"imbalance_factor must be in (0, 1] (n_min / n_max, e.g. 0.01), got {imbalance_factor!r}"
        )
    if not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"n_max must be a positive int, got {n_max!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
    if profile == "exp":
        counts = [int(n_max * imbalance_factor ** (i / (num_classes - 1))) for i in range(num_classes)]
    elif profile == "step":
        half = num_classes // 2
        counts = [n_max] * half + [int(n_max * imbalance_factor)] * (num_classes - half)
    else:
        raise ValueError(f"profile must be 'exp' or 'step', got {profile!r}")
    if min(counts) < 1:
        empty = counts.index(0)
        smallest = smallest_imbalance_factor(n_max)
        raise ValueError(
            f"imbalance factor {imbalance_factor!r} leaves class {empty} with no training image "
            f"(n_max = {n_max}); the smallest that keeps one image per class is 1/{n_max}, about {smallest}"
        )
    return counts


def smallest_imbalance_factor(n_max: int) -> str:
    """The smallest imbalance factor whose rarest class keeps one image (``int(n_max * IF) >= 1``),
    rounded up to three significant digits: ``"0.000205"`` for ``n_max`` = 4,900."""
    from decimal import ROUND_CEILING, Decimal

    exact = Decimal(repr(1 / n_max))
    for digits in range(3, 18):
        up = exact.quantize(Decimal(1).scaleb(exact.adjusted() - digits + 1), rounding=ROUND_CEILING)
        if int(n_max * float(up)) >= 1:
            return format(up.normalize(), "f")
    return repr(float(np.nextafter(1 / n_max, 1)))


@dataclass(frozen=True)
class Splits:
    """Indices into the CIFAR-10 train/test arrays for one long-tailed draw."""

    train: np.ndarray  # long-tailed training subset (indices into train_x)
    val: np.ndarray  # balanced validation split (indices into train_x), disjoint from train
    test: np.ndarray  # indices into test_x
    train_counts: tuple[int, ...]


def make_splits(
    labels: np.ndarray,
    test_labels: np.ndarray,
    imbalance_factor: float,
    *,
    val_per_class: int = 100,
    n_max: int | None = None,
    profile: str = "exp",
    data_seed: int = 0,
    val_seed: int = 0,
    test_per_class: int | None = None,
) -> Splits:
    """Hold out a balanced validation split, then draw the long-tailed training subset.

    The validation images are drawn first (``val_seed``) from each class of the train split, so
    they can never enter the training subset; the long-tailed subset is drawn by ``data_seed``
    from what remains. ``n_max`` defaults to the smallest class size left after the hold-out
    (4,900 on CIFAR-10 with 100 validation images per class). ``test_per_class`` subsamples the
    test split (smoke profile only).
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1
    per_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    absent = [c for c, p in enumerate(per_class) if len(p) == 0]
    if absent or num_classes != NUM_CLASSES:
        absent = absent or list(range(num_classes, NUM_CLASSES))
        raise DataError(f"the training labels hold {NUM_CLASSES - len(absent)} of CIFAR-10's {NUM_CLASSES} "
                        f"classes (absent: {absent}); check the data copy")  # fmt: skip
    smallest = min(len(p) for p in per_class)
    if not 0 <= val_per_class < smallest:
        raise ValueError(f"val_per_class must be in [0, {smallest}), got {val_per_class!r}")
    val_rng = np.random.default_rng([val_seed, 1])
    val_idx, pools = [], []
    for p in per_class:
        perm = val_rng.permutation(p)
        val_idx.append(perm[:val_per_class])
        pools.append(np.sort(perm[val_per_class:]))
    available = min(len(p) for p in pools)
    n_max = available if n_max is None else n_max
    if n_max > available:
        raise ValueError(f"n_max={n_max} exceeds the {available} images left per class")
    counts = long_tail_counts(n_max, imbalance_factor, num_classes, profile)
    rng = np.random.default_rng([data_seed, 2])
    train_idx = [rng.permutation(pool)[:n] for pool, n in zip(pools, counts, strict=True)]
    test_labels = np.asarray(test_labels)
    if test_per_class is None:
        test_idx = np.arange(len(test_labels))
    else:
        test_rng = np.random.default_rng([0, 3])
        test_idx = np.sort(np.concatenate([
            test_rng.permutation(np.flatnonzero(test_labels == c))[:test_per_class]
            for c in range(num_classes)
        ]))  # fmt: skip
    return Splits(
        train=np.sort(np.concatenate(train_idx)),
        val=np.sort(np.concatenate(val_idx)),
        test=test_idx,
        train_counts=tuple(counts),
    )


# --------------------------------------------------------------------------- class groups


def blog_head_tail(num_classes: int = NUM_CLASSES, num_head: int = 4) -> dict[str, tuple[int, ...]]:
    """The blog's split: classes ``0..num_head-1`` are head, the rest tail."""
    if not 0 < num_head < num_classes:
        raise ValueError(f"num_head must be in [1, {num_classes - 1}], got {num_head!r}")
    return {"head": tuple(range(num_head)), "tail": tuple(range(num_head, num_classes))}


def many_medium_few(
    train_counts: tuple[int, ...] | list[int], many_above: int = 100, few_below: int = 20
) -> dict[str, tuple[int, ...]]:
    """Kang et al.'s groups by training count: many (> 100), medium (20-100), few (< 20).

    Groups can be empty (CIFAR-10-LT at IF 0.01 has no class with fewer than 20 images).
    """
    if few_below > many_above:
        raise ValueError(f"few_below ({few_below}) must not exceed many_above ({many_above})")
    c = list(train_counts)
    return {
        "many": tuple(i for i, n in enumerate(c) if n > many_above),
        "medium": tuple(i for i, n in enumerate(c) if few_below <= n <= many_above),
        "few": tuple(i for i, n in enumerate(c) if n < few_below),
    }


def class_groups(train_counts, num_head: int = 4) -> dict[str, tuple[int, ...]]:
    """Every group the study reports: the blog's head/tail and Kang et al.'s three."""
    return {**blog_head_tail(len(train_counts), num_head), **many_medium_few(train_counts)}
