"""Heavy artifacts of a run, kept in the ignored cache and rebuilt from the config when missing:
the stage-1 checkpoint, its features and logits, and the stage-2 classifiers.

:mod:`ltmpq.runs` builds the light, committed results from these. A cache entry that cannot be
read is logged and rebuilt, never silently trusted. Used by chapters 1-4 (through the runs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .config import DecoupleConfig, DecoupledRun, Stage1Config, config_hash
from .data import Cifar10, Splits, cached_digest, load_cifar10, make_splits
from .decoupling import fit_all, rebuild
from .io import UNREADABLE, atomic_write
from .models import VGG16
from .paths import cache_dir
from .training import predict, train_stage1

log = logging.getLogger("ltmpq")


def dataset() -> Cifar10:
    """The decoded CIFAR-10 every run reads (one place, so that tests can substitute it)."""
    return load_cifar10()


_DIGESTS: dict[tuple, str | None] = {}
#: What a features cache entry holds (an entry without all of it is rebuilt).
FEATURE_KEYS = {
    f"{split}_{what}" for split in ("train", "val", "test") for what in ("features", "logits", "labels")
}
FEATURE_KEYS |= {"classifier_weight", "classifier_bias", "history", "train_seconds", "images_per_second"}


def data_digest() -> str | None:
    """The content digest of the data the runs read: from the decoded cache's metadata when there
    is one, else by decoding it. Remembered per process (and per data setting)."""
    key = (os.environ.get("LTMPQ_DATA"), os.environ.get("LTMPQ_CACHE"), dataset)
    if key not in _DIGESTS:
        _DIGESTS[key] = cached_digest() or dataset().source.sha256
    return _DIGESTS[key]


def run_dir(cfg: Stage1Config) -> Path:
    """Cache folder of one stage-1 run's heavy artifacts."""
    return cache_dir() / "runs" / config_hash(cfg)


def splits_for(cfg: Stage1Config, data: Cifar10) -> Splits:
    """The validation / long-tailed train / test indices of a stage-1 config."""
    return make_splits(
        data.train_y, data.test_y, cfg.imbalance_factor, val_per_class=cfg.val_per_class,
        n_max=cfg.n_max, profile=cfg.lt_profile, data_seed=cfg.seed, val_seed=cfg.val_seed,
        test_per_class=cfg.test_per_class,
    )  # fmt: skip


def load_tensors(path: Path) -> dict | None:
    """A cached ``torch.save`` dict, or None when absent or unreadable (logged: it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except UNREADABLE as exc:
        log.warning("unreadable cache entry %s (%s: %s); rebuilding it", path, type(exc).__name__, exc)
        return None


def features(cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True) -> dict:
    """Features, logits and labels of the train / val / test splits under the stage-1 model.

    Cached in ``.cache/runs/<hash>/features.pt``; rebuilt (training first if the checkpoint is
    missing too) when absent or unreadable.
    """
    path = run_dir(cfg) / "features.pt"
    data = data or dataset()
    cached = load_tensors(path)
    # features of another data copy (e.g. the JPEG copy, now that the original is present) are stale
    if (isinstance(cached, dict) and cached.get("config_hash") == config_hash(cfg)
            and cached.get("data_sha256") in (None, data.source.sha256)):  # fmt: skip
        if FEATURE_KEYS <= set(cached):
            return cached
        log.warning(
            "incomplete cache entry %s (no %s); rebuilding it", path, sorted(FEATURE_KEYS - set(cached))
        )
    splits = splits_for(cfg, data)
    x_tr, y_tr = torch.from_numpy(data.train_x[splits.train]), torch.from_numpy(data.train_y[splits.train])
    outcome = train_stage1(cfg, x_tr, y_tr, run_dir(cfg), progress=progress, data_sha256=data.source.sha256)
    out: dict = {"config_hash": config_hash(cfg), "data_sha256": data.source.sha256,
                 "history": outcome.history,
                 "train_seconds": outcome.train_seconds,
                 "images_per_second": outcome.images_per_second}  # fmt: skip
    for split, xs, ys in (
        ("train", data.train_x[splits.train], data.train_y[splits.train]),
        ("val", data.train_x[splits.val], data.train_y[splits.val]),
        ("test", data.test_x[splits.test], data.test_y[splits.test]),
    ):
        f, logits = predict(outcome.model, torch.from_numpy(xs))
        out[f"{split}_features"], out[f"{split}_logits"] = f, logits
        out[f"{split}_labels"] = torch.from_numpy(ys)
    clf = outcome.model.classifier
    out["classifier_weight"], out["classifier_bias"] = clf.weight.detach().clone(), clf.bias.detach().clone()
    atomic_write(path, lambda tmp: torch.save(out, tmp))
    return out


def stage1_model(cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True) -> VGG16:
    """The trained stage-1 model, from its checkpoint (trained first when the cache lacks it)."""
    data = data or dataset()
    splits = splits_for(cfg, data)
    x, y = torch.from_numpy(data.train_x[splits.train]), torch.from_numpy(data.train_y[splits.train])
    return train_stage1(cfg, x, y, run_dir(cfg), progress=progress, data_sha256=data.source.sha256).model


def baseline_classifier(feats: dict) -> torch.nn.Linear:
    """The stage-1 model's own classifier (L16), rebuilt from the cached features' copy of it."""
    base = torch.nn.Linear(feats["classifier_weight"].shape[1], feats["classifier_weight"].shape[0])
    base.weight.data, base.bias.data = feats["classifier_weight"], feats["classifier_bias"]
    return base


def classifiers_path(cfg: Stage1Config, dcfg: DecoupleConfig) -> Path:
    """Where the stage-2 classifiers of one run are cached."""
    return run_dir(cfg) / f"decoupled-{config_hash(DecoupledRun(cfg, dcfg))}.pt"


def fit_classifiers(cfg: Stage1Config, dcfg: DecoupleConfig, feats: dict) -> dict:
    """Fit every stage-2 method on the cached features and cache their states (deterministic)."""
    fitted = fit_all(baseline_classifier(feats), feats["train_features"], feats["train_labels"],
                     feats["val_features"], feats["val_labels"], dcfg)  # fmt: skip
    states = {name: f.classifier.state_dict() for name, f in fitted.items()}
    atomic_write(classifiers_path(cfg, dcfg), lambda tmp: torch.save(states, tmp))
    return fitted


def classifiers(
    cfg: Stage1Config, dcfg: DecoupleConfig, *, progress: bool = True
) -> dict[str, torch.nn.Module]:
    """The five classifiers of chapter 2 (baseline and the decoupled ones) of one stage-1 run.

    Loaded from the cache; refitted (deterministically, on the cached features) when missing.
    """
    feats = features(cfg, progress=progress)
    dim, num_classes = feats["classifier_weight"].shape[1], feats["classifier_weight"].shape[0]
    states = load_tensors(classifiers_path(cfg, dcfg))
    if states is not None:
        try:
            return rebuild(states, dim, num_classes)
        except (KeyError, RuntimeError, TypeError, AttributeError) as exc:  # {} or another model's states
            log.warning(
                "incomplete cache entry %s (%s); refitting the classifiers", classifiers_path(cfg, dcfg), exc
            )
    states = {name: f.classifier.state_dict() for name, f in fit_classifiers(cfg, dcfg, feats).items()}
    return rebuild(states, dim, num_classes)
