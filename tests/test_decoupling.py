"""ltmpq.decoupling: class-balanced sampling, cRT, LWS, tau-normalisation, NCM."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import assert_same_state, state_snapshot
from scipy.stats import chisquare
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from ltmpq.config import DecoupleConfig
from ltmpq.decoupling import (
    NearestClassMean,
    ScaledLinear,
    balanced_accuracy,
    class_balanced_indices,
    crt,
    fit_all,
    lws,
    ncm,
    tau_norm,
    tau_normalize,
)
from ltmpq.vocab import METHODS

# ------------------------------------------------------------------ class-balanced sampling

SKEWED_COUNTS = [2000, 800, 300, 120, 50, 20, 8, 4, 2, 1]


@pytest.fixture
def skewed_labels():
    gen = torch.Generator().manual_seed(0)
    labels = torch.repeat_interleave(torch.arange(10), torch.tensor(SKEWED_COUNTS))
    return labels[torch.randperm(len(labels), generator=gen)]


def test_class_balanced_indices_draws_classes_uniformly(skewed_labels):
    n = 20_000
    idx = class_balanced_indices(skewed_labels, n, torch.Generator().manual_seed(1))
    assert idx.shape == (n,) and idx.dtype == torch.int64
    assert int(idx.min()) >= 0 and int(idx.max()) < len(skewed_labels)
    per_class = np.bincount(skewed_labels[idx].numpy(), minlength=10)
    assert chisquare(per_class).pvalue > 0.01  # uniform over the 10 classes
    assert per_class.min() > 0.8 * n / 10


def test_instance_sampling_fails_the_same_uniformity_test(skewed_labels):
    # contrast: drawing images uniformly reproduces the long tail and is rejected by the test
    n = 20_000
    idx = torch.randint(0, len(skewed_labels), (n,), generator=torch.Generator().manual_seed(1))
    per_class = np.bincount(skewed_labels[idx].numpy(), minlength=10)
    assert chisquare(per_class).pvalue < 1e-12


def test_class_balanced_indices_uniform_within_a_class(skewed_labels):
    idx = class_balanced_indices(skewed_labels, 20_000, torch.Generator().manual_seed(2))
    for c in (6, 7):  # 8 and 4 images: every one of them drawn, about equally often
        members = torch.nonzero(skewed_labels == c).flatten().numpy()
        picked = idx.numpy()[np.isin(idx.numpy(), members)]
        counts = np.array([(picked == m).sum() for m in members])
        assert counts.min() > 0
        assert chisquare(counts).pvalue > 0.01


def test_class_balanced_indices_deterministic_and_errors(skewed_labels):
    a = class_balanced_indices(skewed_labels, 500, torch.Generator().manual_seed(3))
    b = class_balanced_indices(skewed_labels, 500, torch.Generator().manual_seed(3))
    c = class_balanced_indices(skewed_labels, 500, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    missing = torch.tensor([0, 0, 2, 2])  # class 1 has no image
    with pytest.raises(ValueError, match="every class"):
        class_balanced_indices(missing, 10, torch.Generator().manual_seed(0))


def test_balanced_accuracy_matches_sklearn():
    gen = torch.Generator().manual_seed(0)
    labels = torch.repeat_interleave(torch.arange(5), torch.tensor([40, 20, 10, 5, 3]))
    logits = torch.randn(len(labels), 5, generator=gen) + 1.5 * F.one_hot(labels, 5)
    expected = balanced_accuracy_score(labels.numpy(), logits.argmax(1).numpy())
    assert balanced_accuracy(logits, labels) == pytest.approx(expected)


# ------------------------------------------------------------------ stage-2 methods on synthetic features

NUM_CLASSES, DIM = 5, 16


def _clustered_features(counts, seed, spread=0.9):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(NUM_CLASSES, DIM, generator=torch.Generator().manual_seed(100)) * 2
    labels = torch.repeat_interleave(torch.arange(NUM_CLASSES), torch.tensor(counts))
    feats = torch.relu(centers[labels] + spread * torch.randn(len(labels), DIM, generator=gen))
    return feats, labels


@pytest.fixture
def stage2_data():
    feats, labels = _clustered_features([300, 120, 50, 20, 8], seed=0)
    val_feats, val_labels = _clustered_features([30] * NUM_CLASSES, seed=1)
    torch.manual_seed(0)
    base = nn.Linear(DIM, NUM_CLASSES)
    # a head-biased "stage-1" classifier: large norms for the head classes
    with torch.no_grad():
        base.weight.mul_(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.3])[:, None])
    return base, feats, labels, val_feats, val_labels


CFG = DecoupleConfig(epochs=3, batch_size=64, lr=0.1, tau_grid=(0.0, 0.5, 1.0, 1.5), seed=0)


def test_crt_returns_a_new_linear_and_leaves_base_untouched(stage2_data):
    base, feats, labels, val_feats, val_labels = stage2_data
    before = state_snapshot(base)
    feats_before = feats.clone()
    fit = crt(base, feats, labels, val_feats, val_labels, CFG)
    assert_same_state(base, before)
    assert torch.equal(feats, feats_before)
    assert isinstance(fit.classifier, nn.Linear) and fit.classifier is not base
    assert fit.classifier.weight.shape == base.weight.shape
    assert not torch.equal(fit.classifier.weight, base.weight)
    # the kept epoch is the best one on validation, and the returned weights are that epoch's
    assert len(fit.val_curve) == CFG.epochs
    assert fit.choice["val_balanced"] == max(fit.val_curve)
    assert fit.choice["epoch"] == int(np.argmax(fit.val_curve)) + 1
    with torch.no_grad():
        kept = balanced_accuracy(fit.classifier(val_feats), val_labels)
    assert kept == pytest.approx(fit.choice["val_balanced"])
    assert fit.choice["val_balanced"] > 0.8  # separable clusters: re-training finds them


def test_crt_is_deterministic(stage2_data):
    base, feats, labels, val_feats, val_labels = stage2_data
    a = crt(base, feats, labels, val_feats, val_labels, CFG)
    torch.manual_seed(12345)  # global RNG state must not matter
    b = crt(base, feats, labels, val_feats, val_labels, CFG)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert a.val_curve == b.val_curve


def test_lws_learns_only_scales(stage2_data):
    base, feats, labels, val_feats, val_labels = stage2_data
    before = state_snapshot(base)
    fit = lws(base, feats, labels, val_feats, val_labels, CFG)
    assert_same_state(base, before)
    clf = fit.classifier
    assert isinstance(clf, ScaledLinear)
    assert [n for n, p in clf.named_parameters() if p.requires_grad] == ["scales"]
    # the frozen copy keeps the stage-1 weights exactly; only the per-class scales moved
    assert torch.equal(clf.base.weight, before["weight"]) and torch.equal(clf.base.bias, before["bias"])
    assert clf.scales.shape == (NUM_CLASSES,)
    assert not torch.equal(clf.scales.detach(), torch.ones(NUM_CLASSES))
    with torch.no_grad():
        expected = base(val_feats) * clf.scales
        assert torch.allclose(clf(val_feats), expected)


def test_tau_normalize():
    w = torch.tensor([[3.0, 4.0], [0.6, 0.8], [1.0, 0.0]])
    assert torch.equal(tau_normalize(w, 0), w)
    assert tau_normalize(w, 0) is not w
    unit = tau_normalize(w, 1)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(unit[0], torch.tensor([0.6, 0.8]))
    half = tau_normalize(w, 0.5)
    torch.testing.assert_close(half[0], w[0] / 5**0.5)
    torch.testing.assert_close(tau_normalize(w, 2)[0], w[0] / 25)
    with pytest.raises(ValueError, match="tau"):
        tau_normalize(w, -0.1)


def test_tau_norm_picks_first_best_tau(stage2_data):
    base, _, _, val_feats, val_labels = stage2_data
    before = state_snapshot(base)
    fit = tau_norm(base, val_feats, val_labels, CFG)
    assert_same_state(base, before)
    assert len(fit.val_curve) == len(CFG.tau_grid)
    best = int(np.argmax(fit.val_curve))
    assert fit.choice["tau"] == CFG.tau_grid[best]
    assert fit.choice["val_balanced"] == fit.val_curve[best]
    assert fit.classifier.bias is None
    torch.testing.assert_close(fit.classifier.weight, tau_normalize(base.weight.detach(), CFG.tau_grid[best]))
    # curve entries are the accuracies of the bias-free tau-normalised heads
    for tau, acc in zip(CFG.tau_grid, fit.val_curve, strict=True):
        logits = val_feats @ tau_normalize(base.weight.detach(), tau).T
        assert acc == pytest.approx(balanced_accuracy(logits, val_labels))


def test_ncm_predicts_nearest_class_mean():
    # three classes along the axes; magnitudes differ (cosine similarity ignores them)
    feats = torch.tensor([[5.0, 0.1, 0.0], [9.0, -0.2, 0.1], [0.1, 2.0, 0.0], [0.0, 0.5, 0.1],
                          [0.0, 0.1, 3.0], [0.2, 0.0, 0.4]])  # fmt: skip
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    head = NearestClassMean(feats, labels)
    queries = torch.tensor([[0.1, 7.0, 0.3], [4.0, 0.0, 1.0], [0.0, 0.2, 0.05], [1.0, 1.1, 0.0]])
    assert head(queries).argmax(1).tolist() == [1, 0, 1, 1]
    # oracle: cosine similarity to the normalised mean of the normalised features
    z = F.normalize(feats, dim=1)
    means = F.normalize(torch.stack([z[labels == c].mean(0) for c in range(3)]), dim=1)
    torch.testing.assert_close(head(queries), F.normalize(queries, dim=1) @ means.T)
    fit = ncm(feats, labels, feats, labels)
    assert fit.choice["val_balanced"] == 1.0


def test_fit_all_runs_every_method_without_touching_base(stage2_data):
    base, feats, labels, val_feats, val_labels = stage2_data
    before = state_snapshot(base)
    fitted = fit_all(base, feats, labels, val_feats, val_labels, CFG)
    assert_same_state(base, before)
    assert tuple(fitted) == METHODS
    assert fitted["baseline"].classifier is not base
    assert_same_state(fitted["baseline"].classifier, before)
    for name, fit in fitted.items():
        with torch.no_grad():
            acc = balanced_accuracy(fit.classifier(val_feats), val_labels)
        assert acc == pytest.approx(fit.choice["val_balanced"]), name


# ------------------------------------------------------------------ post-hoc logit adjustment


def test_logit_adjustment_decision_rule_on_a_hand_made_case():
    """Menon et al.'s rule argmax_y f_y(x) - tau log pi_y, by hand: logits (2.0, 1.5) and a prior
    (0.9, 0.1). tau = 0: class 0. tau = 1: 2.0 - log 0.9 = 2.105 < 1.5 - log 0.1 = 3.803, class 1.
    The adjusted head is the same linear map with the bias shifted (weights untouched)."""
    from ltmpq.decoupling import class_prior, logit_adjusted

    base = nn.Linear(1, 2)
    with torch.no_grad():
        base.weight.copy_(torch.tensor([[2.0], [1.5]]))
        base.bias.zero_()
    prior = class_prior(torch.tensor([0] * 9 + [1]), 2)
    assert prior.tolist() == pytest.approx([0.9, 0.1])
    x = torch.ones(1, 1)
    with torch.no_grad():
        assert logit_adjusted(base, prior, 0.0)(x).argmax(1).item() == 0
        out = logit_adjusted(base, prior, 1.0)(x)
    assert out[0].tolist() == pytest.approx([2.0 - np.log(0.9), 1.5 - np.log(0.1)], abs=1e-6)
    assert out.argmax(1).item() == 1
    assert torch.equal(logit_adjusted(base, prior, 1.0).weight, base.weight)
    assert base.bias.abs().sum() == 0  # the base is untouched
    with pytest.raises(ValueError, match="tau must be >= 0"):
        logit_adjusted(base, prior, -1.0)
    with pytest.raises(ValueError, match="every class"):
        class_prior(torch.tensor([0, 0]), 2)


def test_posthoc_logit_adjustment_picks_tau_on_validation(stage2_data):
    from ltmpq.decoupling import class_prior, posthoc_logit_adjustment

    base, feats, labels, val_feats, val_labels = stage2_data
    fit = posthoc_logit_adjustment(base, labels, val_feats, val_labels, CFG)
    prior = class_prior(labels, NUM_CLASSES)
    with torch.no_grad():
        by_hand = [
            balanced_accuracy(base(val_feats) - t * torch.log(prior), val_labels) for t in CFG.tau_grid
        ]
    assert fit.val_curve == pytest.approx(by_hand)
    assert fit.choice["tau"] == CFG.tau_grid[int(np.argmax(by_hand))]  # the first maximum
    assert fit.choice["val_balanced"] == pytest.approx(max(by_hand))
    # on this head-biased classifier the adjustment helps the balanced accuracy
    assert max(by_hand) > by_hand[0]


def test_fit_all_adds_logit_adjustment_where_asked(stage2_data):
    from ltmpq.decoupling import as_linear, blank, rebuild
    from ltmpq.vocab import LOGIT_ADJ

    base, feats, labels, val_feats, val_labels = stage2_data
    cfg = replace(CFG, extra_methods=(LOGIT_ADJ,))
    fitted = fit_all(base, feats, labels, val_feats, val_labels, cfg)
    assert tuple(fitted) == METHODS + (LOGIT_ADJ,) == cfg.methods
    states = {m: f.classifier.state_dict() for m, f in fitted.items()}
    again = rebuild(states, DIM, NUM_CLASSES, cfg.methods)
    w, b, normalize = as_linear(again[LOGIT_ADJ])
    assert torch.equal(w, base.weight) and not normalize and not torch.equal(b, base.bias)
    assert set(blank(DIM, NUM_CLASSES)) == set(METHODS)  # the published runs' five
    with pytest.raises(KeyError, match="logit_adj"):
        rebuild({m: s for m, s in states.items() if m != LOGIT_ADJ}, DIM, NUM_CLASSES, cfg.methods)


@pytest.mark.parametrize("bad", [("crt",), ("logit_adj", "logit_adj"), "logit_adj", ("la",)])
def test_extra_methods_are_checked(bad):
    with pytest.raises(ValueError, match="extra_methods must be distinct"):
        DecoupleConfig(extra_methods=bad)


def test_extra_methods_leave_the_published_hash():
    from ltmpq.config import config_hash

    assert config_hash(DecoupleConfig(extra_methods=())) == config_hash(DecoupleConfig())
    assert config_hash(DecoupleConfig(extra_methods=["logit_adj"])) != config_hash(DecoupleConfig())
