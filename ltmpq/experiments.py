"""Runs of the study: stage-1 training (chapter 1) and decoupled classifiers (chapter 2).

Each function returns the stored result when ``results/`` has it; otherwise it computes it (only
when ``compute=True``) and stores it. Heavy artifacts (checkpoints, features, classifiers) live
in the ignored cache and are rebuilt from the config when missing or corrupt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import results
from .config import DecoupleConfig, Stage1Config, config_hash, get_profile
from .data import Cifar10, Splits, class_groups, load_cifar10, make_splits
from .decoupling import METHODS, fit_all
from .io import atomic_write
from .metrics import evaluate
from .paths import cache_dir
from .training import predict, train_stage1


@dataclass(frozen=True)
class DecoupledRun:
    """Stage 2 on the features of one stage-1 run."""

    stage1: Stage1Config
    decouple: DecoupleConfig

    @property
    def tag(self) -> str:
        return self.stage1.tag


def run_command(profile: str, cfg: Stage1Config) -> str:
    """The shell command that produces a missing result (named in error messages)."""
    return f"make runs PROFILE={profile} RUN_ARGS='--if {cfg.imbalance_factor:g} --seed {cfg.seed}'"


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


def _load_tensors(path: Path) -> dict | None:
    try:
        return torch.load(path, weights_only=True) if path.is_file() else None
    except Exception:  # truncated or corrupt cache entry: recompute it
        return None


def features(cfg: Stage1Config, data: Cifar10 | None = None, *, progress: bool = True) -> dict:
    """Features, logits and labels of the train / val / test splits under the stage-1 model.

    Cached in ``.cache/runs/<hash>/features.pt``; rebuilt (training first if the checkpoint is
    missing too) when absent or unreadable.
    """
    path = run_dir(cfg) / "features.pt"
    data = data or load_cifar10()
    cached = _load_tensors(path)
    # features of another data copy (e.g. the JPEG copy, now that the original is present) are stale
    if (cached is not None and cached.get("config_hash") == config_hash(cfg)
            and cached.get("data_sha256") in (None, data.source.sha256)):  # fmt: skip
        return cached
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


def _split_eval(logits: torch.Tensor, labels: torch.Tensor, counts) -> dict:
    pred = logits.argmax(1).numpy()
    return {**evaluate(labels.numpy(), pred, counts), "predictions": pred.tolist()}


def stage1(cfg: Stage1Config, profile: str, *, compute: bool = False, progress: bool = True) -> dict:
    """The baseline (stage-1, instance-balanced cross-entropy) result of one run."""
    path = results.result_path(profile, "stage1", cfg)
    if (stored := results.load(path, cfg)) is not None:
        return stored
    if not compute:
        return results.require(path, cfg, run_command(profile, cfg))
    t0 = time.perf_counter()
    data = load_cifar10()
    splits = splits_for(cfg, data)
    feats = features(cfg, data, progress=progress)
    counts = list(splits.train_counts)
    payload = {
        "kind": "stage1",
        "profile": profile,
        "imbalance_factor": cfg.imbalance_factor,
        "seed": cfg.seed,
        "train_counts": counts,
        "groups": {k: list(v) for k, v in class_groups(counts).items()},
        "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "history": feats["history"],
        "train_seconds": feats["train_seconds"],
        "train_images_per_second": feats["images_per_second"],
        "val": _split_eval(feats["val_logits"], feats["val_labels"], counts),
        "test": _split_eval(feats["test_logits"], feats["test_labels"], counts),
        "test_labels": feats["test_labels"].tolist(),
    }
    return results.save(path, cfg, payload, data.source, time.perf_counter() - t0)


def decoupled(
    cfg: Stage1Config, dcfg: DecoupleConfig, profile: str, *, compute: bool = False, progress: bool = True
) -> dict:
    """cRT, tau-norm, LWS and NCM on the frozen backbone of one stage-1 run."""
    run = DecoupledRun(cfg, dcfg)
    path = results.result_path(profile, "decoupled", run)
    if (stored := results.load(path, run)) is not None:
        return stored
    if not compute:
        return results.require(path, run, run_command(profile, cfg))
    t0 = time.perf_counter()
    base_result = stage1(cfg, profile, compute=True, progress=progress)
    feats = features(cfg, progress=progress)
    base = torch.nn.Linear(feats["classifier_weight"].shape[1], feats["classifier_weight"].shape[0])
    base.weight.data, base.bias.data = feats["classifier_weight"], feats["classifier_bias"]
    fitted = fit_all(base, feats["train_features"], feats["train_labels"], feats["val_features"],
                     feats["val_labels"], dcfg)  # fmt: skip
    counts = base_result["train_counts"]
    methods = {}
    for name in METHODS:
        if name == "baseline":
            continue
        fit = fitted[name]
        with torch.no_grad():
            methods[name] = {
                "choice": fit.choice,
                "val_curve": fit.val_curve,
                "val": _split_eval(fit.classifier(feats["val_features"]), feats["val_labels"], counts),
                "test": _split_eval(fit.classifier(feats["test_features"]), feats["test_labels"], counts),
            }
    classifiers = {name: f.classifier.state_dict() for name, f in fitted.items()}
    atomic_write(run_dir(cfg) / f"decoupled-{config_hash(run)}.pt", lambda tmp: torch.save(classifiers, tmp))
    payload = {"kind": "decoupled", "profile": profile, "imbalance_factor": cfg.imbalance_factor,
               "seed": cfg.seed, "stage1_hash": config_hash(cfg), "methods": methods,
               # what tau-norm and LWS act on: the stage-1 classifier's per-class weight norms and biases
               "stage1_classifier": {"weight_norm": base.weight.norm(dim=1).tolist(),
                                     "bias": base.bias.tolist()}}  # fmt: skip
    source = base_result["provenance"]["data_source"]
    return results.save(path, run, payload, source, time.perf_counter() - t0)


def run_profile(
    profile: str, imbalance_factors=None, seeds=None, *, stages=("stage1", "decoupled"), progress: bool = True
) -> None:
    """Produce (or find) every result of a profile, seed-major so one full seed lands first."""
    prof = get_profile(profile)
    cfgs = prof.stage1_configs(imbalance_factors, seeds)
    cfgs.sort(key=lambda c: (c.seed, -c.imbalance_factor))
    for cfg in tqdm(cfgs, desc=f"{profile} runs", disable=not progress):
        t0 = time.perf_counter()
        if "stage1" in stages:
            stage1(cfg, profile, compute=True, progress=progress)
        if "decoupled" in stages:
            decoupled(cfg, prof.decouple, profile, compute=True, progress=progress)
        tqdm.write(f"{profile} {cfg.tag}: done in {time.perf_counter() - t0:.0f} s")
