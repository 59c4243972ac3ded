"""Fakes the tests share: synthetic CIFAR-10 (in memory, as a JPEG folder, as pickled batches), a
random VGG16 whose BatchNorms matter, stored results of any run of the plan, made with the
header the stages themselves use (:meth:`ltmpq.plan.Run.payload`) and checked by the same schema
as every stored result (:func:`ltmpq.results.save`), hand-computable stage-1 and decoupled results
for chapters 0-2's analysis, the oracle :func:`direct_gap`, and small comparison helpers.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps
from torch import nn

from ltmpq import frames, plan, provenance, results
from ltmpq.config import Stage1Config
from ltmpq.data import Cifar10, DataSource, class_groups
from ltmpq.metrics import evaluate
from ltmpq.models import VGG16
from ltmpq.vocab import CLASSES, FLOAT, LAYER_NAMES, METHODS, NUM_CLASSES

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


#: QuantConfig's chapter-5 fields spelled out at their defaults: the same quantizer as leaving them out
EXPLICIT_DEFAULTS = dict(weight_scheme="symmetric", act_scheme="unsigned", act_clipping="mse",
                         act_percentile=99.99, first_last_bits=None, logit_bits=None)  # fmt: skip


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
    # the re-balancing methods of the run's stage 2 (post-hoc logit adjustment where it asks)
    methods = run.config.decouple.methods[1:] if hasattr(run.config, "decouple") else ()
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


def quant_sweep(cfg: Stage1Config, bits, test_of, *, methods=METHODS, val: dict | None = None,
                **header) -> dict:  # fmt: skip
    """A stored quantized sweep in the shape the quantized stage writes, for the analysis tests:
    per bit-width and method of ``methods``, ``test_of(method, bits)`` is the test split
    (``val``, if given, every entry's validation split); ``header`` adds top-level fields."""
    entries = {}
    for b in bits:
        methods = {m: {"test": test_of(m, b)} | ({"val": val} if val is not None else {}) for m in methods}
        entries[b] = {"bit_map": {}, "size": {}, "methods": methods, "seconds": 0.1}
    return {"kind": "quantized", "imbalance_factor": cfg.imbalance_factor, "seed": cfg.seed, **header,
            "entries": entries}  # fmt: skip


# ------------------------------------------------------------------ hand-computable results (chapters 0-2)
# Stage-1 and decoupled results built by hand in the shape those runs store (fractions, null for an
# empty group), with head and tail accuracies chosen so that every expected gap, mean and 95%
# t-interval of chapters 0-2's analysis and claims 1-2 can be computed by hand (IF-major, then seed).

#: t(0.975, 2): the 95% two-sided Student quantile for three seeds (hand value 4.3027).
T3 = float(sps.t.ppf(0.975, 2))
#: The 95% t half-width of three seeds whose standard deviation is 1 (e.g. gaps 10, 11, 12).
HALF1 = T3 / math.sqrt(3)
#: z(0.975) of the normal approximation.
Z = 1.959964

SEEDS = (0, 1, 2)
IFS = (0.1, 0.02, 0.01)
VAL_PER_CLASS = 50
N_TEST = 1000  # 100 test images per class

#: Training counts per class (class 0 the largest), by imbalance factor. At IF 0.01 the first four
#: (head) classes hold 3000 of 3750 images: a head share of exactly 80%.
COUNTS_BY_IF = {
    0.1: [1200, 1000, 800, 600, 500, 400, 300, 200, 150, 120],  # total 5270
    0.02: [1200, 950, 700, 500, 400, 300, 200, 130, 80, 60],  # total 4520
    0.01: [1200, 900, 600, 300, 270, 210, 120, 75, 45, 30],  # total 3750
    0.05: [1200, 950, 700, 500, 400, 300, 200, 130, 80, 60],
}
#: The blog's per-class counts (n_max 5000), the standard CIFAR-10-LT ones.
BLOG_001 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # total 12406
BLOG_01 = [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]  # total 20431


def ht(*gaps, head=90.0):
    """(head, tail) accuracies (points), one per seed, with the given head-tail gaps."""
    return [(head, head - g) for g in gaps]


#: (IF, method) -> (head, tail) test accuracy in points for seeds 0, 1, 2.
SPEC = {
    (0.1, "baseline"): [(90, 80), (91, 80), (92, 80)],  # gaps 10, 11, 12
    (0.02, "baseline"): [(90, 70), (90, 68), (90, 69)],  # gaps 20, 22, 21
    (0.01, "baseline"): [(90, 50), (90, 52), (90, 54)],  # gaps 40, 38, 36
    (0.1, "crt"): [(85, 85), (85, 84), (85, 86)],  # gaps 0, 1, -1
    (0.02, "crt"): [(85, 65), (85, 62), (85, 65)],  # gaps 20, 23, 20
    (0.01, "crt"): [(80, 65), (80, 66), (80, 67)],  # gaps 15, 14, 13
    **{(f, "tau_norm"): ht(30, 30, 30, head=85) for f in IFS + (0.05,)},
    **{(f, "lws"): ht(-8, -9, -10, head=75) for f in IFS + (0.05,)},  # over-corrects: tail above head
    **{(f, "ncm"): ht(5, 6, 7, head=80) for f in IFS + (0.05,)},
}
#: tau chosen on validation per IF and seed.
TAUS = {0.1: (0.2, 0.4, 0.4), 0.02: (0.5, 0.5, 0.6), 0.01: (0.6, 0.8, 1.0), 0.05: (0.3, 0.3, 0.3)}
TAU_GRID = (0.0, 0.5, 1.0)
#: Per-class test accuracy (fractions) of the decoupled methods: OFFSET + 0.02 * class (+-0.01 by seed).
OFFSET = {"crt": 0.5, "tau_norm": 0.4, "lws": 0.6, "ncm": 0.3}


def _metrics(head: float, tail: float) -> dict:
    """Stored metrics (fractions) of a run with these head / tail accuracies (points).

    The test set is balanced with 4 head and 6 tail classes, so overall = 0.4 head + 0.6 tail.
    """
    overall = 0.4 * head + 0.6 * tail
    return {
        "overall": overall / 100,
        "balanced": overall / 100,
        "macro_f1": (overall - 1) / 100,
        "worst_class": (tail - 10) / 100,
        "head": head / 100,
        "tail": tail / 100,
        "many": head / 100,
        "medium": tail / 100,
        "few": None,
        "deployment": (head - 5) / 100,
    }


def _split(head: float, tail: float, per_class: list[float], which: str) -> dict:
    """One split's stored entry; the validation numbers are off (gap 5 points wider)."""
    if which == "val":
        head, tail = head - 5, tail - 10
    return {"metrics": _metrics(head, tail), "per_class": per_class}


def _groups(counts) -> dict:
    return {
        "head": [0, 1, 2, 3],
        "tail": [4, 5, 6, 7, 8, 9],
        "many": [c for c, n in enumerate(counts) if n > 100],
        "medium": [c for c, n in enumerate(counts) if 20 <= n <= 100],
        "few": [c for c, n in enumerate(counts) if n < 20],
    }


def _baseline_per_class(counts, seed: int) -> list[float]:
    """Exactly log-linear on average over seeds: 10 + 20 log10(count) percent (seeds +-2)."""
    return [(10 + 20 * math.log10(n) + 2 * (seed - 1)) / 100 for n in counts]


def _stage1_result(f: float, seed: int, spec: dict) -> dict:
    counts = COUNTS_BY_IF[f]
    head, tail = spec[(f, "baseline")][seed]
    pc = _baseline_per_class(counts, seed)
    return {
        "kind": "stage1",
        "imbalance_factor": f,
        "seed": seed,
        "train_counts": list(counts),
        "groups": _groups(counts),
        "split_sizes": {"train": sum(counts), "val": 10 * VAL_PER_CLASS, "test": N_TEST},
        "test_labels": np.repeat(np.arange(10), N_TEST // 10).tolist(),
        "val": _split(head, tail, pc, "val"),
        "test": _split(head, tail, pc, "test"),
    }


def _choice(method: str, f: float, seed: int) -> dict:
    return {
        "crt": {"epoch": 10 + seed, "val_balanced": 0.6},
        "tau_norm": {"tau": TAUS[f][seed], "val_balanced": 0.55},
        "lws": {"epoch": 20 + seed, "val_balanced": 0.62},
        "ncm": {"val_balanced": 0.5},
    }[method]


def _classifier(f: float, seed: int) -> dict:
    """At IF 0.01 class 0's norm is 2.0/2.2/2.4 (mean 2.2), class 9's 1.0/1.1/1.2 (mean 1.1): ratio 2;
    biases 0.6 and -0.2 on average: difference 0.8. Elsewhere ratio 1.5 and difference 0.3."""
    d = seed - 1
    if f == 0.01:
        n0, n9, b0, b9 = 2.2 + 0.2 * d, 1.1 + 0.1 * d, 0.6 + 0.1 * d, -0.2 - 0.1 * d
    else:
        n0, n9, b0, b9 = 1.5, 1.0, 0.3, 0.0
    return {
        "weight_norm": list(np.linspace(n0, n9, 10)),
        "bias": list(np.linspace(b0, b9, 10)),
    }


def _decoupled_result(f: float, seed: int, spec: dict) -> dict:
    methods = {}
    for m in ("crt", "tau_norm", "lws", "ncm"):
        head, tail = spec[(f, m)][seed]
        pc = [OFFSET[m] + 0.02 * c + 0.01 * (seed - 1) for c in range(10)]
        curve = [0.5, 0.6 + 0.01 * seed, 0.55] if m == "tau_norm" else [0.6]
        methods[m] = {
            "choice": _choice(m, f, seed),
            "val_curve": curve,
            "val": _split(head, tail, pc, "val"),
            "test": _split(head, tail, pc, "test"),
        }
    return {
        "kind": "decoupled",
        "imbalance_factor": f,
        "seed": seed,
        "methods": methods,
        "stage1_classifier": _classifier(f, seed),
    }


def hand_results(overrides: dict | None = None, ifs=IFS, seeds=SEEDS):
    """(stage-1 results, decoupled results), both keyed by Stage1Config, IF-major then seed."""
    spec = {**SPEC, **(overrides or {})}
    cfgs = [Stage1Config(imbalance_factor=f, seed=s, val_per_class=VAL_PER_CLASS) for f in ifs for s in seeds]
    s1 = {c: _stage1_result(c.imbalance_factor, c.seed, spec) for c in cfgs}
    dec = {c: _decoupled_result(c.imbalance_factor, c.seed, spec) for c in cfgs}
    return s1, dec


def frame_of(overrides=None, ifs=IFS, seeds=SEEDS) -> pd.DataFrame:
    """:func:`ltmpq.frames.metrics_frame` of :func:`hand_results`."""
    return frames.metrics_frame(*hand_results(overrides, ifs, seeds))


#: (IF, method) -> (head, tail) test accuracy of each seed, for a frame as metrics_frame makes it
METRICS_SPEC = {
    (0.1, "baseline"): [(90, 80), (91, 80), (92, 80)],  # gaps 10, 11, 12
    (0.01, "baseline"): [(90, 50), (90, 52), (90, 54)],  # gaps 40, 38, 36
    (0.01, "crt"): [(85, 70), (86, 70), (87, 70)],  # gaps 15, 16, 17
    (0.01, "tau_norm"): [(90, 51), (90, 53), (90, 55)],  # gaps 39, 37, 35: tail +1 each seed
    (0.01, "lws"): [(80, 64), (80, 64), (80, 61)],  # gaps 16, 16, 19
    (0.01, "ncm"): [(80, 40), (80, 40), (80, 40)],  # gaps 40, 40, 40
    (0.1, "crt"): [(85, 84), (85, 84), (85, 84)],
    (0.1, "tau_norm"): [(85, 80), (85, 80), (85, 80)],
    (0.1, "lws"): [(85, 80), (85, 80), (85, 80)],
    (0.1, "ncm"): [(85, 80), (85, 80), (85, 80)],
}


DEPLOY = [20, 22, 24]


def spec_frame(spec=METRICS_SPEC, splits=("test",), deploy=DEPLOY) -> pd.DataFrame:
    """A metrics frame as :func:`ltmpq.frames.metrics_frame` makes it: overall = 0.4 head + 0.6 tail
    (4 head and 6 tail classes, a balanced test set), worst class = tail - 10, Kang's groups too."""
    rows = []
    for (f, m), seeds in spec.items():
        for s, (h, t) in enumerate(seeds):
            overall = 0.4 * h + 0.6 * t
            deployment = overall + (deploy[s] if (f, m) == (0.01, "baseline") else 5)
            values = {
                "overall": overall,
                "balanced": overall,
                "macro_f1": overall - 1,
                "worst_class": t - 10,
                "head": h,
                "tail": t,
                "many": h,
                "medium": t,
                "few": float("nan"),
                "deployment": deployment,
            }
            for split in splits:
                rows += [
                    {"imbalance_factor": f, "seed": s, "method": m, "split": split, "metric": k, "value": v}
                    for k, v in values.items()
                ]
    return pd.DataFrame(rows)


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


# ------------------------------------------------------------------ comparisons


def same_json(a, b) -> bool:
    """Equality as stored: NaN equals NaN, tuples equal lists."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state dict (parameters and buffers), detached."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(module: nn.Module, snap: dict[str, torch.Tensor]) -> None:
    """``module``'s state equals the snapshot ``snap`` exactly (the same keys, bitwise equal tensors)."""
    state = module.state_dict()
    assert state.keys() == snap.keys()
    for k, v in snap.items():
        assert torch.equal(state[k], v), k
