"""Fakes the tests share: synthetic CIFAR-10 (in memory, as a JPEG folder, as pickled batches), a
random VGG16 whose BatchNorms matter, and stored results of any run of the plan, made with the
header the stages themselves use (:meth:`ltmpq.plan.Run.payload`) and checked by the same schema
as every stored result (:func:`ltmpq.results.save`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltmpq import plan, provenance, results
from ltmpq.config import Stage1Config
from ltmpq.data import Cifar10, DataSource, class_groups
from ltmpq.metrics import evaluate
from ltmpq.models import VGG16
from ltmpq.vocab import CLASSES, FLOAT, LAYER_NAMES, NUM_CLASSES

# ------------------------------------------------------------------ data


def random_cifar(seed: int = 0, train_per_class: int = 20, test_per_class: int = 4) -> Cifar10:
    """A synthetic in-memory Cifar10: random uint8 images, labels in shuffled order."""
    rng = np.random.default_rng(seed)
    train_y = rng.permutation(np.repeat(np.arange(10), train_per_class)).astype(np.int64)
    test_y = rng.permutation(np.repeat(np.arange(10), test_per_class)).astype(np.int64)
    train_x = rng.integers(0, 256, (len(train_y), 32, 32, 3), dtype=np.uint8)
    test_x = rng.integers(0, 256, (len(test_y), 32, 32, 3), dtype=np.uint8)
    src = DataSource("synthetic", "memory", False, "synthetic test data")
    return Cifar10(train_x, train_y, test_x, test_y, src)


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
    dicts). Their MD5s are not CIFAR-10's: readers need the ``trusted_batches`` fixture."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(CLASSES)}, fh)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = test_size if name == "test_batch" else per_batch
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": [int(v) for v in rng.integers(0, 10, n)], "batch_label": name}  # fmt: skip
        with open(root / name, "wb") as fh:
            pickle.dump(d, fh)
        written[name] = d
    return written


# ------------------------------------------------------------------ models


def random_vgg(seed: int = 0, num_classes: int = NUM_CLASSES) -> VGG16:
    """A width-1/16 VGG16 in eval mode whose BatchNorms are far from the identity (folding matters)."""
    torch.manual_seed(seed)
    model = VGG16(num_classes=num_classes, width=1 / 16)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.2 + 2 * torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
    return model.eval()


# ------------------------------------------------------------------ stored results

#: The fake test set: 10 images of each class.
TEST_LABELS = np.repeat(np.arange(NUM_CLASSES), 10)
VAL_LABELS = np.repeat(np.arange(NUM_CLASSES), 3)
COUNTS = [50, 40, 30, 25, 20, 15, 12, 10, 8, 5]


def evaluation(labels: np.ndarray, rng: np.random.Generator, *, accuracy: float = 0.7, keep: bool = True,
               confusion: bool = False, encoded: bool = True) -> dict:  # fmt: skip
    """An evaluation as the stages store it: ``accuracy`` of the labels kept, the rest random."""
    pred = np.where(rng.random(len(labels)) < accuracy, labels, rng.integers(0, NUM_CLASSES, len(labels)))
    ev = evaluate(labels, pred, COUNTS)
    if not confusion:
        ev.pop("confusion")
    if keep:
        ev["predictions"] = results.encode_predictions(pred) if encoded else pred.tolist()
    return ev


def fake_payload(run: plan.Run, profile: str, seed: int = 0) -> dict:
    """A complete, schema-valid payload of ``run``'s kind: the stages' header and random numbers."""
    rng = np.random.default_rng(seed)
    sha = "ab" * 32
    head = run.payload(profile)
    if run.kind == "stage1":
        return head | {
            "train_counts": COUNTS, "groups": {k: list(v) for k, v in class_groups(COUNTS).items()},
            "split_sizes": {"train": sum(COUNTS), "val": len(VAL_LABELS), "test": len(TEST_LABELS)},
            "history": [{"epoch": 1, "images": sum(COUNTS), "loss": 2.0, "seconds": 1.0, "train_acc": 0.3}],
            "train_seconds": 1.0, "train_images_per_second": 100.0, "weights": "models/fake.safetensors",
            "weights_sha256": sha, "val": evaluation(VAL_LABELS, rng, confusion=True, encoded=False),
            "test": evaluation(TEST_LABELS, rng, confusion=True, encoded=False),
            "test_labels": TEST_LABELS.tolist(),
        }  # fmt: skip
    methods = ("crt", "tau_norm", "lws", "ncm")
    if run.kind == "decoupled":
        return head | {
            "methods": {m: {"choice": {}, "val_curve": [], "val": evaluation(VAL_LABELS, rng, encoded=False),
                            "test": evaluation(TEST_LABELS, rng, encoded=False)} for m in methods},
            "weights_sha256": sha, "classifiers_sha256": sha,
            "stage1_classifier": {"weight_norm": [1.0] * NUM_CLASSES, "bias": [0.0] * NUM_CLASSES},
        }  # fmt: skip
    if run.kind == "quantized":
        entries = {
            str(b): {"bit_map": dict.fromkeys(LAYER_NAMES, b), "size": {"total_bytes": 1e6}, "seconds": 1.0,
                     "methods": {m: {"val": evaluation(VAL_LABELS, rng, keep=False),
                                     "test": evaluation(TEST_LABELS, rng, keep=run.config.keep_predictions)}
                                 for m in ("baseline", *methods)}}
            for b in (FLOAT, *run.config.bits)
        }  # fmt: skip
        return head | {"quant": {}, "entries": entries, "train_counts": COUNTS, "weights_sha256": sha,
                       "classifiers_sha256": sha, "calibration_counts": None}  # fmt: skip
    if run.kind == "mpq":
        labels = results.encode_predictions(VAL_LABELS)
        return head | {
            "allocations": [], "sweep": {"crt": {"float": labels, "layers": {}}}, "hessians": {},
            "val_labels": labels, "test_labels": results.encode_predictions(TEST_LABELS),
            "train_counts": COUNTS, "layer_params": dict.fromkeys(LAYER_NAMES, 1), "quant": {}, "mpq": {},
            "seconds": dict.fromkeys(("prepare", "sweep", "hessian", "evaluation"), 1.0),
            "weights_sha256": sha,
        }  # fmt: skip
    return head | {"integer": {}, "curvature": {}, "train_counts": COUNTS, "seconds": {"integer": 1.0},
                   "weights_sha256": sha}  # fmt: skip


def save_fake(run: plan.Run, profile: str = "smoke", seed: int = 0, data_source=None, **fields) -> dict:
    """Store a fake result of ``run`` (``fields`` replace the fake's), as a stage would store it."""
    payload = fake_payload(run, profile, seed) | fields
    record = provenance.record(run.config, data_source, 1.0)
    return results.save(run.path(profile), run.config, payload, record)


def stage1_run(cfg: Stage1Config) -> plan.Run:
    return plan.Run(cfg, "stage1")


# ------------------------------------------------------------------ oracles


def direct_gap(labels, ref, new, high, low) -> tuple[float, float, float]:
    """(mean over runs of low-group drop - high-group drop, mean high drop, mean low drop), in points."""
    ref, new = np.atleast_2d(ref), np.atleast_2d(new)
    gaps, highs, lows = [], [], []
    for r in range(ref.shape[0]):
        acc_drop = {c: ref[r, labels == c].mean() - new[r, labels == c].mean() for c in set(high) | set(low)}
        h = 100 * np.mean([acc_drop[c] for c in high])
        lo = 100 * np.mean([acc_drop[c] for c in low])
        gaps.append(lo - h)
        highs.append(h)
        lows.append(lo)
    return float(np.mean(gaps)), float(np.mean(highs)), float(np.mean(lows))
