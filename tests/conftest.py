"""Shared tiny fixtures for the unit tests.

Every test runs with ``LTMPQ_RESULTS``, ``LTMPQ_CACHE`` and ``LTMPQ_DATA`` pointing into its own
``tmp_path``, with the data search restricted to ``LTMPQ_DATA`` (never the real CIFAR-10 copy
beside the project) and with outgoing network connections refused.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import hand_results, random_cifar, write_batches, write_imagefolder

import ltmpq.data
import ltmpq.paths
from ltmpq.config import Stage1Config
from ltmpq.data import Cifar10

# The machine is shared with a long training job: one thread is plenty for these tiny tensors.
torch.set_num_threads(1)


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


@pytest.fixture
def hand_stored():
    """Chapters 0-2's hand-computable (stage-1, decoupled) results (:func:`fakes.hand_results`),
    both keyed by Stage1Config."""
    return hand_results()


@pytest.fixture
def hand_frame(hand_stored):
    """:func:`ltmpq.frames.metrics_frame` of :func:`hand_stored`."""
    from ltmpq import frames

    return frames.metrics_frame(*hand_stored)


@pytest.fixture
def hand_summary(hand_frame):
    """:func:`ltmpq.frames.summarize` of :func:`hand_frame`."""
    from ltmpq import frames

    return frames.summarize(hand_frame)
