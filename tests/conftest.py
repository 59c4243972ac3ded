"""Shared tiny fixtures for the unit tests.

Every test runs with ``LTMPQ_RESULTS``, ``LTMPQ_CACHE`` and ``LTMPQ_DATA`` pointing into its own
``tmp_path``, with the data search restricted to ``LTMPQ_DATA`` (never the real CIFAR-10 copy
beside the project) and with outgoing network connections refused.
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

import ltmpq.data
import ltmpq.paths
from ltmpq.config import Stage1Config
from ltmpq.data import Cifar10, DataSource
from ltmpq.vocab import CLASSES

# The machine is shared with a long training job: one thread is plenty for these tiny tensors.
torch.set_num_threads(1)

TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 4


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Results, cache and data locations inside ``tmp_path``; no real data, no network (loopback
    only, for Dask's worker processes)."""
    # Nothing is created here, and under a folder of its own: a test may still assert on what
    # does (not) exist in its tmp_path.
    dirs = {name: tmp_path / "ltmpq-env" / name for name in ("results", "cache", "no-data")}
    monkeypatch.setenv("LTMPQ_RESULTS", str(dirs["results"]))
    monkeypatch.setenv("LTMPQ_CACHE", str(dirs["cache"]))
    monkeypatch.setenv("LTMPQ_DATA", str(dirs["no-data"]))

    def only_ltmpq_data() -> list[Path]:
        # paths.data_candidates() also lists <project>/data and ../shared/data: keep only the
        # LTMPQ_DATA entry so that a test can never pick up (or decode) the real CIFAR-10 copy.
        return [Path(os.environ["LTMPQ_DATA"])] if os.environ.get("LTMPQ_DATA") else []

    monkeypatch.setattr(ltmpq.data, "data_candidates", only_ltmpq_data)

    def loopback_only(real):
        # this machine's own processes may talk (Dask's workers do, over loopback); nothing else
        def connect(self, address, *args, **kwargs):
            host = address[0] if isinstance(address, tuple) else None
            if self.family == socket.AF_UNIX or host in ("127.0.0.1", "localhost", "::1"):
                return real(self, address, *args, **kwargs)
            raise OSError(f"network access is disabled in the unit tests (tried {address!r})")

        return connect

    monkeypatch.setattr(socket.socket, "connect", loopback_only(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", loopback_only(socket.socket.connect_ex))
    return dirs


def random_cifar(
    seed: int = 0, train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS
) -> Cifar10:
    """A synthetic in-memory Cifar10: random uint8 images, labels in shuffled order."""
    rng = np.random.default_rng(seed)
    train_y = rng.permutation(np.repeat(np.arange(10), train_per_class)).astype(np.int64)
    test_y = rng.permutation(np.repeat(np.arange(10), test_per_class)).astype(np.int64)
    train_x = rng.integers(0, 256, (len(train_y), 32, 32, 3), dtype=np.uint8)
    test_x = rng.integers(0, 256, (len(test_y), 32, 32, 3), dtype=np.uint8)
    src = DataSource("synthetic", "memory", False, "synthetic test data")
    return Cifar10(train_x, train_y, test_x, test_y, src)


@pytest.fixture
def tiny_cifar() -> Cifar10:
    """10 classes x 20 train and 10 x 4 test random 32x32x3 images."""
    return random_cifar()


@pytest.fixture
def tiny_cfg() -> Stage1Config:
    """A stage-1 config that trains in well under a second on :func:`tiny_cifar`."""
    return Stage1Config(
        imbalance_factor=0.5, seed=0, val_per_class=5, n_max=15, width=1 / 16, epochs=2,
        batch_size=32, lr=0.05, warmup_epochs=1,
    )  # fmt: skip


@pytest.fixture
def tiny_train(tiny_cifar):
    """(x uint8 NHWC tensor, y int64 tensor) of 10 classes x 6 images."""
    idx = np.concatenate([np.flatnonzero(tiny_cifar.train_y == c)[:6] for c in range(10)])
    return torch.from_numpy(tiny_cifar.train_x[idx]), torch.from_numpy(tiny_cifar.train_y[idx])


def write_imagefolder(root: Path, train_per_class: int = 3, test_per_class: int = 2, seed: int = 0) -> Path:
    """A fake CIFAR-10 ImageFolder copy: ``root/{train,test}/<class>/NNN.jpg`` (32x32 RGB JPEGs)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=75)
    return root


def write_batches(root: Path, per_batch: int = 4, test_size: int = 5, seed: int = 0) -> dict:
    """A fake ``cifar-10-batches-py``: five train batches, a test batch and the label names (pickled
    dicts). Their MD5s are not CIFAR-10's: readers need :func:`trusted_batches`."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(CLASSES)}, fh)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test_size if name == "test_batch" else per_batch
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": [int(v) for v in rng.integers(0, 10, n)], "batch_label": name}  # fmt: skip
        with open(root / name, "wb") as fh:
            pickle.dump(d, fh)
        written[name] = d
    return written


@pytest.fixture
def fake_imagefolder(tmp_path) -> Path:
    """``tmp/fakedata/cifar10-jpeg`` (3 train + 2 test JPEGs per class); returns the copy's folder."""
    return write_imagefolder(tmp_path / "fakedata" / "cifar10-jpeg")


@pytest.fixture
def trusted_batches(monkeypatch):
    """torchvision's MD5 check of the batches passes (the fakes cannot match CIFAR-10's checksums)."""
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture
def fake_batches(tmp_path):
    """``tmp/fakebatches/cifar-10-batches-py``; returns (folder, the pickled dicts by file name)."""
    root = tmp_path / "fakebatches" / "cifar-10-batches-py"
    return root, write_batches(root)


@pytest.fixture
def make_imagefolder():
    """The :func:`write_imagefolder` factory, for tests that need several copies."""
    return write_imagefolder


@pytest.fixture
def make_cifar():
    """The :func:`random_cifar` factory."""
    return random_cifar


@pytest.fixture
def make_batches():
    """The :func:`write_batches` factory."""
    return write_batches


@pytest.fixture
def patched_data(monkeypatch, tiny_cifar):
    """Every run reads ``tiny_cifar`` instead of CIFAR-10 (``ltmpq.artifacts.dataset``); returns the
    list of loads."""
    import ltmpq.artifacts as artifacts

    calls = []

    def fake_load():
        calls.append(1)
        return tiny_cifar

    monkeypatch.setattr(artifacts, "dataset", fake_load)
    return calls


def minimal_result(kind: str) -> dict:
    """The smallest payload of a result of ``kind`` that the results store accepts as complete."""
    ev = {"metrics": {"overall": 0.5}, "per_class": [0.5] * 10}
    return {
        "stage1": {
            "kind": "stage1",
            "train_counts": [5] * 10,
            "groups": {"head": [0, 1, 2, 3]},
            "split_sizes": {"train": 50, "val": 10, "test": 10},
            "test_labels": list(range(10)),
            "val": ev,
            "test": ev,
        },
        "decoupled": {
            "kind": "decoupled",
            "methods": {"crt": {"val": ev, "test": ev}},
            "stage1_classifier": {},
        },
        "quantized": {
            "kind": "quantized",
            "entries": {"float": {"methods": {"crt": {"val": ev, "test": ev}}}},
            "train_counts": [5] * 10,
            "quant": {},
        },
        "mpq": {
            "kind": "mpq",
            "allocations": [],
            "sweep": {},
            "hessians": {},
            "val_labels": "",
            "test_labels": "",
            "train_counts": [5] * 10,
            "layer_params": {},
            "seconds": {},
        },
        "explain": {
            "kind": "explain",
            "integer": {},
            "curvature": {},
            "train_counts": [5] * 10,
            "seconds": {},
        },
    }[kind]


@pytest.fixture
def make_result():
    """The :func:`minimal_result` factory."""
    return minimal_result
