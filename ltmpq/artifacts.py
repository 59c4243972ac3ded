"""The models and heavy artifacts of a run: the stage-1 network (published weights, or trained
from its config), its features and logits (cached), and the stage-2 classifiers (published, or
refitted on the features).

Published weights live beside the results (:mod:`ltmpq.weights`) and are verified by digest; the
ignored cache holds what can be rebuilt (training checkpoints, features, fitted classifiers), each
entry keyed on the weights digest as well as the config and data, so that a retrained model is
never mixed with an old model's features. A cache entry that cannot be read is logged and rebuilt.
:mod:`ltmpq.runs` builds the light, committed results from these. Used by chapters 1-4.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from . import plan, results, weights
from .config import DecoupleConfig, DecoupledRun, Stage1Config, config_hash
from .data import Cifar10, Splits, cached_digest, load_cifar10, make_splits
from .decoupling import blank, fit_all, rebuild
from .io import UNREADABLE, atomic_write
from .models import VGG16
from .paths import cache_dir, results_dir
from .training import TrainOutcome, augmented_features, build_model, predict, train_stage1
from .vocab import NUM_CLASSES

log = logging.getLogger("ltmpq")

#: What a features cache entry holds (an entry without all of it is rebuilt).
FEATURE_KEYS = {
    f"{split}_{what}" for split in ("train", "val", "test") for what in ("features", "logits", "labels")
} | {"classifier_weight", "classifier_bias", "weights_sha256"}

_DIGESTS: dict[tuple, str | None] = {}


_DATASETS: dict[tuple, Cifar10] = {}


def dataset() -> Cifar10:
    """The decoded CIFAR-10 every run reads (one place, so that tests can substitute it), loaded
    once per process and data setting: a worker running many tasks reads it once."""
    key = (os.environ.get("LTMPQ_DATA"), os.environ.get("LTMPQ_CACHE"))
    if key not in _DATASETS:
        _DATASETS.clear()  # one copy in memory at a time
        _DATASETS[key] = load_cifar10()
    return _DATASETS[key]


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


# --------------------------------------------------------------------------- the stage-1 model


def weights_metadata(cfg: Stage1Config) -> dict[str, str]:
    """What a stage-1 weights file says about itself (part of its digest)."""
    return {"kind": "stage1", "tag": cfg.tag, "config_hash": config_hash(cfg)}


def fix_command(cfg: Stage1Config, profile: str = "PROFILE") -> str:
    """How to make a run's weights (and the results computed from them) again."""
    args = f"--if {cfg.imbalance_factor:g} --seed {cfg.seed} --retrain"
    return f"retrain it: make runs PROFILE={profile} RUN_ARGS='{args}'"


def _published(kind: str, run, name: str) -> tuple[Path, str] | None:
    """The published weights file ``name`` and the digest the run's stored result records for it,
    or None when no stored result of the run records one (then nothing is published)."""
    path = weights.find(name)
    if path is None:
        return None
    stored = results.load(plan.result_path(path.parent.parent.name, kind, run), run)
    key = "weights_sha256" if kind == "stage1" else "classifiers_sha256"
    if stored is None or not stored.get(key):
        return None
    return path, stored[key]


def trained_model(cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True) -> TrainOutcome:
    """Train the stage-1 model from its config, resuming the cached checkpoint of an interrupted
    run (a finished checkpoint returns at once)."""
    data = data or dataset()
    splits = splits_for(cfg, data)
    x, y = torch.from_numpy(data.train_x[splits.train]), torch.from_numpy(data.train_y[splits.train])
    return train_stage1(cfg, x, y, run_dir(cfg), progress=progress, data_sha256=data.source.sha256)


def stage1_weights(
    cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True
) -> tuple[VGG16, str]:
    """The stage-1 model of a run and the SHA-256 of its weights file.

    Published weights are loaded and verified. A run that has none yet is trained (how a new run
    is made). A stored stage-1 result without published weights (made before they were committed)
    is an error: training again would give another model than the one its numbers came from, so
    such a run is retrained on purpose (``--retrain``), which remakes its results too.
    """
    found = _published("stage1", cfg, weights.stage1_name(cfg))
    if found is not None:
        path, expected = found
        fix = fix_command(cfg, path.parent.parent.name)
        state = weights.load(path, expected, fix)
        # the config says the model (its shapes); the data says the classes (CIFAR-10's ten)
        model = build_model(cfg, num_classes=NUM_CLASSES)
        weights.check_shapes(path, state, model.state_dict(), cfg.tag, fix)
        model.load_state_dict(state)
        return model.eval(), expected
    for old in sorted(results_dir().glob(f"*/stage1/{cfg.tag}-{config_hash(cfg)}.json")):
        if (stored := results.load(old, cfg)) is not None and not stored.get("weights_sha256"):
            raise weights.WeightsError(
                f"{old} has no published weights (it predates them), and training again would give "
                f"another model than its numbers came from; {fix_command(cfg, old.parent.parent.name)}"
            )
    model = trained_model(cfg, data, progress=progress).model
    return model, weights.digest(model.state_dict(), weights_metadata(cfg))


def stage1_model(cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True) -> VGG16:
    """The stage-1 model of a run (:func:`stage1_weights` without the digest)."""
    return stage1_weights(cfg, data, progress=progress)[0]


def features(
    cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True, model: tuple | None = None
) -> dict:
    """Features, logits and labels of the train / val / test splits under the stage-1 model.

    Cached in ``.cache/runs/<hash>/features.pt`` with the digest of the weights they came from;
    rebuilt when absent, unreadable, or of other weights or data. ``model``: ``(model, digest)``
    when the caller holds them already (a run being made).
    """
    path = run_dir(cfg) / "features.pt"
    data = data or dataset()
    net, sha = model if model is not None else stage1_weights(cfg, data, progress=progress)
    cached = load_tensors(path)
    # features of another data copy (e.g. the JPEG copy, now that the original is present) or of
    # other weights (a retrained model) are stale
    if (isinstance(cached, dict) and cached.get("config_hash") == config_hash(cfg)
            and cached.get("data_sha256") in (None, data.source.sha256)
            and cached.get("weights_sha256") == sha):  # fmt: skip
        if FEATURE_KEYS <= set(cached):
            return cached
        absent = sorted(FEATURE_KEYS - set(cached))
        log.warning("incomplete cache entry %s (no %s); rebuilding it", path, absent)
    splits = splits_for(cfg, data)
    out: dict = {"config_hash": config_hash(cfg), "data_sha256": data.source.sha256, "weights_sha256": sha}
    for split, xs, ys in (
        ("train", data.train_x[splits.train], data.train_y[splits.train]),
        ("val", data.train_x[splits.val], data.train_y[splits.val]),
        ("test", data.test_x[splits.test], data.test_y[splits.test]),
    ):
        f, logits = predict(net, torch.from_numpy(xs))
        out[f"{split}_features"], out[f"{split}_logits"] = f, logits
        out[f"{split}_labels"] = torch.from_numpy(ys)
    clf = net.classifier
    out["classifier_weight"], out["classifier_bias"] = clf.weight.detach().clone(), clf.bias.detach().clone()
    atomic_write(path, lambda tmp: torch.save(out, tmp))
    return out


# --------------------------------------------------------------------------- stage-2 classifiers


def baseline_classifier(feats: dict) -> torch.nn.Linear:
    """The stage-1 model's own classifier (L16), rebuilt from the cached features' copy of it."""
    base = torch.nn.Linear(feats["classifier_weight"].shape[1], feats["classifier_weight"].shape[0])
    base.weight.data, base.bias.data = feats["classifier_weight"], feats["classifier_bias"]
    return base


def classifiers_path(cfg: Stage1Config, dcfg: DecoupleConfig, weights_sha256: str) -> Path:
    """Where the stage-2 classifiers fitted on one model's features are cached."""
    return run_dir(cfg) / f"decoupled-{config_hash(DecoupledRun(cfg, dcfg))}-{weights_sha256[:12]}.pt"


def classifiers_metadata(run: DecoupledRun, weights_sha256: str) -> dict[str, str]:
    """What a classifiers file says about itself: its run and the backbone it belongs to."""
    return {"kind": "classifiers", "tag": run.tag, "config_hash": config_hash(run),
            "weights_sha256": weights_sha256}  # fmt: skip


def augmented_train_features(cfg: Stage1Config, dcfg: DecoupleConfig, feats: dict) -> tuple | None:
    """Features and labels of ``dcfg.augment_views`` augmented views of the training images under
    the stage-1 model whose features ``feats`` are (None for ``augment_views == 0``). Cached
    beside the features, keyed on the weights digest, the views and stage 2's seed."""
    views = dcfg.augment_views
    if views == 0:
        return None
    sha = feats["weights_sha256"]
    path = run_dir(cfg) / f"augmented-{views}-{dcfg.seed}-{sha[:12]}.pt"
    cached = load_tensors(path)
    complete = isinstance(cached, dict) and {"features", "labels"} <= set(cached)
    if complete and cached.get("weights_sha256") == sha:
        return cached["features"], cached["labels"]
    data = dataset()
    splits = splits_for(cfg, data)
    model, model_sha = stage1_weights(cfg, data)
    if model_sha != sha:
        raise ValueError(f"{cfg.tag}: the features are of weights {sha[:12]}, the model is {model_sha[:12]}")
    x = torch.from_numpy(data.train_x[splits.train])
    labels = torch.from_numpy(data.train_y[splits.train]).repeat(views)
    feats_aug = augmented_features(model, x, views, dcfg.seed)
    out = {"features": feats_aug, "labels": labels, "weights_sha256": sha}
    atomic_write(path, lambda tmp: torch.save(out, tmp))
    return out["features"], out["labels"]


def fit_classifiers(cfg: Stage1Config, dcfg: DecoupleConfig, feats: dict) -> dict:
    """Fit every stage-2 method on the cached features and cache their states (deterministic)."""
    fitted = fit_all(baseline_classifier(feats), feats["train_features"], feats["train_labels"],
                     feats["val_features"], feats["val_labels"], dcfg,
                     augmented=augmented_train_features(cfg, dcfg, feats))  # fmt: skip
    states = {name: f.classifier.state_dict() for name, f in fitted.items()}
    atomic_write(classifiers_path(cfg, dcfg, feats["weights_sha256"]), lambda tmp: torch.save(states, tmp))
    return fitted


def classifiers(
    cfg: Stage1Config, dcfg: DecoupleConfig, *, progress: bool = True
) -> dict[str, torch.nn.Module]:
    """The classifiers of chapter 2 (baseline and the decoupled ones, ``dcfg.methods``) of one run.

    Published ones are loaded and verified; otherwise the cache's, or refitted (deterministically,
    on the features of the same weights) when missing.
    """
    feats = features(cfg, progress=progress)
    dim, num_classes = feats["classifier_weight"].shape[1], feats["classifier_weight"].shape[0]
    run = DecoupledRun(cfg, dcfg)
    found = _published("decoupled", run, weights.classifiers_name(run))
    if found is not None:
        path, expected = found
        fix = fix_command(cfg, path.parent.parent.name)
        states = weights.split_classifiers(weights.load(path, expected, fix))
        for head, module in blank(dim, num_classes, dcfg.methods).items():
            weights.check_shapes(path, states.get(head, {}), module.state_dict(), f"{run.tag} {head}", fix)
        return rebuild(states, dim, num_classes, dcfg.methods)
    cache = classifiers_path(cfg, dcfg, feats["weights_sha256"])
    states = load_tensors(cache)
    if states is not None:
        try:
            return rebuild(states, dim, num_classes, dcfg.methods)
        except (KeyError, RuntimeError, TypeError, AttributeError) as exc:  # {} or another model's states
            log.warning("incomplete cache entry %s (%s); refitting the classifiers", cache, exc)
    states = {name: f.classifier.state_dict() for name, f in fit_classifiers(cfg, dcfg, feats).items()}
    return rebuild(states, dim, num_classes, dcfg.methods)
