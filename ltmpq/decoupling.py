"""Classifier re-balancing on a frozen stage-1 backbone (Kang et al., ICLR 2020): chapter 2.

All four methods work on features extracted once from the stage-1 model (penultimate layer,
input of L16), so re-running them costs seconds:

- cRT: re-initialise the classifier and retrain it with class-balanced sampling;
- tau-norm: rescale each class's weight vector by ``1 / ||w_i||**tau`` (bias dropped, as in
  Kang et al.'s code), tau chosen on the validation split;
- LWS: keep the weights, learn one scale per class with class-balanced sampling;
- NCM: nearest class mean of L2-normalised features, cosine similarity;
- post-hoc logit adjustment (Menon et al., ICLR 2021; where ``DecoupleConfig.extra_methods``
  asks for it): the stage-1 classifier's logits minus ``tau * log(prior)``, the prior being the
  training set's class frequencies, tau from ``tau_grid``.

Choices (tau; the epoch kept for cRT and LWS) maximise balanced accuracy on the validation split.
cRT and LWS see the fixed features of the un-augmented training images (v1), or, as in Kang et
al., features of augmented views of them (``DecoupleConfig.augment_views``, drawn once).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from .config import DecoupleConfig
from .training import lr_at
from .vocab import LOGIT_ADJ, METHODS


def class_balanced_indices(labels: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices drawn with replacement: a class uniformly, then an image of it uniformly."""
    # Hand-written, not WeightedRandomSampler / torch.multinomial: those draw the same distribution
    # from another random stream, and the published cRT/LWS results come from this one.
    num_classes = int(labels.max()) + 1
    by_class = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    if any(len(b) == 0 for b in by_class):
        raise ValueError("class-balanced sampling needs at least one image of every class")
    classes = torch.randint(0, num_classes, (n,), generator=gen)
    sizes = torch.tensor([len(b) for b in by_class])
    within = (torch.rand(n, generator=gen) * sizes[classes]).long()
    flat = torch.cat(by_class)
    offsets = torch.cumsum(sizes, 0) - sizes
    return flat[offsets[classes] + within]


def balanced_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean per-class recall of argmax predictions (sklearn's; the validation split is balanced)."""
    return float(balanced_accuracy_score(labels.numpy(), logits.argmax(1).numpy()))


class ScaledLinear(nn.Module):
    """LWS: a frozen linear classifier whose logits are multiplied by learned per-class scales."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = copy.deepcopy(base).requires_grad_(False)
        self.scales = nn.Parameter(torch.ones(base.out_features))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.base(f) * self.scales


@dataclass
class Fitted:
    """A stage-2 classifier and the choice made on the validation split."""

    classifier: nn.Module
    choice: dict[str, float]
    val_curve: list[float]  # validation balanced accuracy per epoch or per tau


def _train_balanced(
    module: nn.Module, feats, labels, val_feats, val_labels, cfg: DecoupleConfig, stream: int
) -> Fitted:
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + stream)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(labels) / cfg.batch_size)
    best, best_state, best_epoch, curve = -1.0, None, 0, []
    for epoch in range(cfg.epochs):
        module.train()
        idx = class_balanced_indices(labels, steps * cfg.batch_size, gen)
        for i in range(steps):
            b = idx[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps + i, cfg.epochs * steps, 0, cfg.lr)
            loss = F.cross_entropy(module(feats[b]), labels[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        module.eval()
        with torch.no_grad():
            acc = balanced_accuracy(module(val_feats), val_labels)
        curve.append(acc)
        if acc > best:  # ties keep the earlier epoch
            best, best_epoch = acc, epoch + 1
            best_state = copy.deepcopy(module.state_dict())
    module.load_state_dict(best_state)
    return Fitted(module, {"epoch": best_epoch, "val_balanced": best}, curve)


def crt(base: nn.Linear, feats, labels, val_feats, val_labels, cfg: DecoupleConfig) -> Fitted:
    """Classifier re-training: a freshly initialised linear layer, class-balanced sampling."""
    torch.manual_seed(cfg.seed)
    head = nn.Linear(base.in_features, base.out_features)
    return _train_balanced(head, feats, labels, val_feats, val_labels, cfg, stream=1)


def lws(base: nn.Linear, feats, labels, val_feats, val_labels, cfg: DecoupleConfig) -> Fitted:
    """Learnable weight scaling: per-class logit scales on the frozen stage-1 classifier."""
    return _train_balanced(ScaledLinear(base), feats, labels, val_feats, val_labels, cfg, stream=2)


def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """``w_i / ||w_i||**tau`` for each class row ``w_i``; tau = 0 returns the weights unchanged."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    if tau == 0:
        return weight.clone()
    return weight / weight.norm(dim=1, keepdim=True).pow(tau)


def tau_norm(base: nn.Linear, val_feats, val_labels, cfg: DecoupleConfig) -> Fitted:
    """tau-normalised classifier (no bias), tau from ``cfg.tau_grid`` by validation accuracy."""
    curve = []
    for tau in cfg.tau_grid:
        head = nn.Linear(base.in_features, base.out_features, bias=False)
        head.weight.data = tau_normalize(base.weight.data, tau)
        with torch.no_grad():
            curve.append(balanced_accuracy(head(val_feats), val_labels))
    best = int(np.argmax(curve))  # first maximum: the smallest tau among ties
    head = nn.Linear(base.in_features, base.out_features, bias=False)
    head.weight.data = tau_normalize(base.weight.data, cfg.tau_grid[best])
    return Fitted(head, {"tau": float(cfg.tau_grid[best]), "val_balanced": curve[best]}, curve)


class NearestClassMean(nn.Module):
    """NCM: cosine similarity to the mean of each class's L2-normalised training features."""

    def __init__(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        z = F.normalize(feats, dim=1)
        num_classes = int(labels.max()) + 1
        means = torch.stack([z[labels == c].mean(0) for c in range(num_classes)])
        self.register_buffer("means", F.normalize(means, dim=1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(f, dim=1) @ self.means.T


def ncm(feats, labels, val_feats, val_labels) -> Fitted:
    """Nearest-class-mean classifier (nothing to choose on validation; its accuracy is kept)."""
    head = NearestClassMean(feats, labels)
    with torch.no_grad():
        acc = balanced_accuracy(head(val_feats), val_labels)
    return Fitted(head, {"val_balanced": acc}, [acc])


def class_prior(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The training set's class frequencies (every class must occur: log 0 has no adjustment)."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    if bool((counts == 0).any()):
        raise ValueError(f"a class prior needs every class in the training labels, got {counts.tolist()}")
    return (counts / counts.sum()).float()


def logit_adjusted(base: nn.Linear, prior: torch.Tensor, tau: float) -> nn.Linear:
    """``base`` with ``tau * log(prior)`` subtracted from its bias: its argmax is Menon et al.'s
    post-hoc rule ``argmax_y f_y(x) - tau * log pi_y`` (eq. 8), and it stays one linear map (a
    quantizer treats it as it treats the baseline)."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    head = copy.deepcopy(base).eval()
    bias = torch.zeros(base.out_features) if base.bias is None else base.bias.detach()
    head.bias = nn.Parameter(bias - tau * torch.log(prior), requires_grad=False)
    return head


def posthoc_logit_adjustment(base: nn.Linear, labels, val_feats, val_labels, cfg: DecoupleConfig) -> Fitted:
    """Post-hoc logit adjustment, tau from ``cfg.tau_grid`` by validation balanced accuracy (the
    smallest tau among ties; tau = 0 is the baseline)."""
    prior = class_prior(labels, base.out_features)
    curve = []
    with torch.no_grad():
        base_logits = base(val_feats)
        for tau in cfg.tau_grid:
            curve.append(balanced_accuracy(base_logits - tau * torch.log(prior), val_labels))
    best = int(np.argmax(curve))
    tau = float(cfg.tau_grid[best])
    return Fitted(logit_adjusted(base, prior, tau), {"tau": tau, "val_balanced": curve[best]}, curve)


def fit_all(
    base: nn.Linear, feats, labels, val_feats, val_labels, cfg: DecoupleConfig, augmented=None
) -> dict[str, Fitted]:
    """Every stage-2 method of ``cfg.methods`` on the same frozen features.

    ``augmented``: ``(features, labels)`` of augmented views of the training images, which cRT
    and LWS then train on (``cfg.augment_views > 0``); NCM's class means stay those of the
    un-augmented images, and tau-norm uses no training image."""
    if (augmented is None) != (cfg.augment_views == 0):
        raise ValueError(
            f"augment_views is {cfg.augment_views} but augmented features were "
            f"{'not ' if augmented is None else ''}given"
        )
    tr_feats, tr_labels = (feats, labels) if augmented is None else augmented
    with torch.no_grad():
        base_acc = balanced_accuracy(base(val_feats), val_labels)
    out = {
        "baseline": Fitted(copy.deepcopy(base).eval(), {"val_balanced": base_acc}, [base_acc]),
        "crt": crt(base, tr_feats, tr_labels, val_feats, val_labels, cfg),
        "tau_norm": tau_norm(base, val_feats, val_labels, cfg),
        "lws": lws(base, tr_feats, tr_labels, val_feats, val_labels, cfg),
        "ncm": ncm(feats, labels, val_feats, val_labels),
    }
    if LOGIT_ADJ in cfg.extra_methods:  # the prior of the training images, not of augmented views
        out[LOGIT_ADJ] = posthoc_logit_adjustment(base, labels, val_feats, val_labels, cfg)
    return out


def as_linear(classifier: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """Any stage-2 classifier as ``(weight, bias, normalize_input)`` of one linear map.

    Chapter 3 quantizes this weight matrix as layer L16: LWS's scales are folded into the rows
    (``s_i * (w_i . f + b_i)``), NCM's rows are its class means on L2-normalised features.
    """
    if isinstance(classifier, ScaledLinear):
        s = classifier.scales.detach()
        b = classifier.base.bias
        return classifier.base.weight.detach() * s[:, None], None if b is None else b.detach() * s, False
    if isinstance(classifier, NearestClassMean):
        return classifier.means.detach(), None, True
    if isinstance(classifier, nn.Linear):
        b = classifier.bias
        return classifier.weight.detach(), None if b is None else b.detach(), False
    raise TypeError(f"no linear form for a {type(classifier).__name__}; expected Linear, ScaledLinear or NCM")


def blank(in_features: int, num_classes: int, methods: tuple[str, ...] = METHODS) -> dict[str, nn.Module]:
    """The classifiers of ``methods``, untrained: what their saved state dicts load into (and must fit)."""
    dummy = nn.Linear(in_features, num_classes)
    modules = {
        "baseline": nn.Linear(in_features, num_classes),
        "crt": nn.Linear(in_features, num_classes),
        "tau_norm": nn.Linear(in_features, num_classes, bias=False),
        "lws": ScaledLinear(dummy),
        "ncm": NearestClassMean(torch.eye(num_classes, in_features), torch.arange(num_classes)),
        LOGIT_ADJ: nn.Linear(in_features, num_classes),
    }
    unknown = [m for m in methods if m not in modules]
    if unknown:
        raise ValueError(f"unknown stage-2 methods {unknown}; known: {list(modules)}")
    return {m: modules[m] for m in methods}


def rebuild(states: dict[str, dict], in_features: int, num_classes: int,
            methods: tuple[str, ...] = METHODS) -> dict[str, nn.Module]:  # fmt: skip
    """The stage-2 classifiers of ``methods`` from their saved state dicts
    (:func:`ltmpq.runs.decoupled` saves them)."""
    modules = blank(in_features, num_classes, methods)
    missing = [m for m in methods if m not in states]
    if missing:
        raise KeyError(f"saved classifiers lack {missing}")
    for name, module in modules.items():
        module.load_state_dict(states[name])
        module.eval()
    return modules
