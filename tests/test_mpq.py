"""ltmpq.mpq (chapter 4): running the VGG16 from any layer, the single-layer sensitivity sweep (with
and without reuse), per-class KL and sensitivities, Hutchinson Hessian traces and HAWQ sensitivities,
the top-k rule, the budgeted ILP against exhaustive and knapsack oracles, random controls, and
``mpq.allocations`` on synthetic sensitivity tables."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fakes import random_vgg
from torch import nn

from ltmpq import mpq as mp
from ltmpq import sensitivity as sn
from ltmpq.config import ALL_METRICS, SENSITIVITY_METRICS, MPQConfig, QuantConfig
from ltmpq.data import class_groups
from ltmpq.metrics import evaluate
from ltmpq.models import VGG16
from ltmpq.quantization import quantize_head, quantize_model, quantize_weight, weight_module
from ltmpq.vocab import FLOAT, LAYER_NAMES

QCFGS = [QuantConfig(), QuantConfig(fold_bn=False, granularity="tensor")]
QCFG_IDS = ["channel-folded", "tensor-unfolded"]
TRAIN_COUNTS = [500, 300, 180, 110, 65, 40, 24, 14, 8, 5]  # long-tailed, 10 classes
N_IMAGES = 64


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def vgg() -> VGG16:
    return random_vgg()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """64 normalised input images."""
    return torch.randn(N_IMAGES, 3, 32, 32, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def labels() -> torch.Tensor:
    return torch.randint(0, 10, (N_IMAGES,), generator=torch.Generator().manual_seed(6))


@pytest.fixture(scope="module")
def heads(vgg, images) -> dict[str, nn.Module]:
    """The model's own L16 (a copy) and another random linear classifier on the features, both with
    the bias that centres the features (else one class wins every image of a random network)."""
    torch.manual_seed(7)
    out = {"own": copy.deepcopy(vgg.layers["L16"]), "other": nn.Linear(vgg.feature_dim, 10)}
    with torch.no_grad():
        mean = vgg.features(images).mean(0)
        for head in out.values():
            head.bias.copy_(-head.weight @ mean)
    return out


@pytest.fixture(scope="module")
def params16() -> dict[str, int]:
    return mp.layer_params(VGG16(width=1 / 16))


def test_fixtures_are_not_trivial(vgg, images, heads):
    # otherwise folding would not be exercised: the folded conv weights must differ from the raw ones
    folded = mp.prepared(vgg, QuantConfig())
    for n in LAYER_NAMES[:13]:
        assert not torch.allclose(weight_module(folded.layers[n]).weight, weight_module(vgg.layers[n]).weight)
    with torch.no_grad():
        torch.testing.assert_close(folded.features(images), vgg.features(images), rtol=1e-4, atol=1e-4)
        assert float((vgg.features(images) > 0).float().mean()) > 0.2  # features are not all dead
        for head in heads.values():  # the heads predict many classes: "predictions equal" means something
            assert len(torch.unique(head(vgg.features(images)).argmax(1))) >= 6


# ------------------------------------------------------------------ running from any layer


def test_features_from_first_layer_is_the_model_features(vgg, images):
    with torch.no_grad():
        assert torch.equal(mp.features_from(vgg, "L1", images), vgg.features(images))


@pytest.mark.parametrize("qcfg", QCFGS, ids=QCFG_IDS)
def test_layer_inputs_restart_the_model_at_every_layer(vgg, images, qcfg):
    model = mp.prepared(vgg, qcfg)
    inputs = mp.layer_inputs(model, images)
    assert list(inputs) == list(LAYER_NAMES)
    with torch.no_grad():  # layer_inputs returns inference tensors: no autograd on them
        feats = model.features(images)
        assert torch.equal(inputs["L1"], images)
        assert torch.equal(inputs["L16"], feats)
        for n in LAYER_NAMES[:-1]:
            assert torch.equal(mp.features_from(model, n, inputs[n]), feats), n
    # each stored input really is that layer's input: the spatial size halves after each pool
    assert inputs["L3"].shape[-1] == 16 and inputs["L13"].shape[-1] == 2
    assert inputs["L14"].shape == (N_IMAGES, weight_module(model.layers["L14"]).in_features)


# ------------------------------------------------------------------ the single-layer sweep


def sensitivity_kwargs() -> dict:
    return {"train_counts": TRAIN_COUNTS, "groups": class_groups(TRAIN_COUNTS)}


@pytest.mark.parametrize("qcfg", QCFGS, ids=QCFG_IDS)
def test_sixteen_bits_is_float(vgg, heads, images, labels, qcfg):
    float_logits, logits = mp.single_layer_sweep(vgg, heads, images, [16, 3], qcfg, batch_size=40)
    assert set(logits) == {(n, b) for n in LAYER_NAMES for b in (16, 3)}
    for n in LAYER_NAMES:
        for h in heads:
            lf, l16, l3 = float_logits[h], logits[n, 16][h], logits[n, 3][h]
            span = float(lf.abs().max())
            err16, err3 = float((l16 - lf).abs().max()), float((l3 - lf).abs().max())
            assert err16 <= 1e-3 * span, (n, h, err16, span)
            assert err3 > 100 * err16, (n, h)  # the sweep does quantize the layer: 3 bits are far off
            assert torch.equal(l16.argmax(1), lf.argmax(1)), (n, h)
            kl = mp.kl_per_class(lf, l16, labels.numpy(), 10)
            assert len(kl) == 10 and max(abs(v) for v in kl) < 1e-6, (n, h, kl)  # float32 rounding: ~1e-8
            assert max(mp.kl_per_class(lf, l3, labels.numpy(), 10)) > 1e-4  # and KL does see 3 bits
            pf, pq = lf.argmax(1).numpy(), l16.argmax(1).numpy()
            for metric in ("overall", "tail", "balanced", "worst_class"):
                assert sn.sensitivity(metric, labels.numpy(), pf, pq, **sensitivity_kwargs()) == 0.0
            assert abs(sn.sensitivity("kl", labels, pf, pq, kl_class=kl, **sensitivity_kwargs())) < 1e-6


@pytest.mark.parametrize("qcfg", QCFGS, ids=QCFG_IDS)
def test_sweep_with_reuse_equals_the_naive_sweep_exactly(vgg, heads, images, qcfg):
    bits = [3, 4, 8]
    seen = []

    def progress(grid):
        seen.append(list(grid))
        return grid

    fr, reused = mp.single_layer_sweep(vgg, heads, images, bits, qcfg, batch_size=24, progress=progress)
    fn, naive = mp.single_layer_sweep(vgg, heads, images, bits, qcfg, reuse=False, batch_size=24)
    grid = [(n, b) for n in LAYER_NAMES for b in bits]
    assert seen == [grid]
    assert list(reused) == list(naive) == grid
    for h in heads:
        assert fr[h].shape == (N_IMAGES, 10)
        assert torch.equal(fr[h], fn[h]), h
        for key in grid:
            assert torch.equal(reused[key][h], naive[key][h]), (key, h)
            assert not torch.equal(reused[key][h], fr[h]), (key, h)  # every entry is really quantized
    # one batch instead of three: the same numbers up to float reassociation
    f1, one = mp.single_layer_sweep(vgg, heads, images, bits, qcfg, batch_size=500)
    for h in heads:
        torch.testing.assert_close(f1[h], fr[h], rtol=1e-5, atol=1e-5)
        for key in grid:
            torch.testing.assert_close(one[key][h], reused[key][h], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("qcfg", QCFGS, ids=QCFG_IDS)
def test_sweep_equals_chapter3_quantize_model_with_one_layer_quantized(vgg, heads, images, qcfg):
    # an oracle independent of mpq: chapter 3's quantize_model / quantize_head with a one-layer map
    _, logits = mp.single_layer_sweep(vgg, heads, images, [4], qcfg, batch_size=24)
    for n in LAYER_NAMES:
        qmodel = quantize_model(vgg, {**dict.fromkeys(LAYER_NAMES, FLOAT), n: 4}, qcfg)
        with torch.no_grad():
            feats = torch.cat([qmodel.features(c) for c in images.split(24)])
            for h, head in heads.items():
                qhead = quantize_head(head, 4, qcfg) if n == "L16" else head
                assert torch.equal(qhead(feats), logits[n, 4][h]), (n, h)


def test_sweep_leaves_the_model_and_heads_untouched(vgg, heads, images):
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    head_before = {h: {k: v.clone() for k, v in m.state_dict().items()} for h, m in heads.items()}
    mp.single_layer_sweep(vgg, heads, images[:8], [3], QuantConfig())
    assert all(torch.equal(v, before[k]) for k, v in vgg.state_dict().items())
    for h, m in heads.items():
        assert all(torch.equal(v, head_before[h][k]) for k, v in m.state_dict().items())


# ------------------------------------------------------------------ KL and sensitivities


def test_kl_per_class_is_the_class_mean_of_kl_float_to_quantized():
    gen = torch.Generator().manual_seed(0)
    lf, lq = torch.randn(30, 4, generator=gen), torch.randn(30, 4, generator=gen)
    y = np.arange(30) % 3  # class 3 is absent
    pf, pq = F.softmax(lf, 1), F.softmax(lq, 1)
    per_image = (pf * (pf.log() - pq.log())).sum(1)  # KL(p_float || p_quantized)
    kl = mp.kl_per_class(lf, lq, y, 4)
    for c in range(3):
        assert kl[c] == pytest.approx(float(per_image[y == c].mean()), rel=1e-5)
        assert kl[c] > 0
    assert np.isnan(kl[3])
    # the direction matters: KL(q || p) is a different number
    reverse = (pq * (pq.log() - pf.log())).sum(1)
    assert abs(kl[0] - float(reverse[y == 0].mean())) > 1e-3
    assert mp.kl_per_class(lf, lf, y, 4)[:3] == [0.0, 0.0, 0.0]


@pytest.mark.filterwarnings("ignore::UserWarning:sklearn")  # the resample holds a single class
def test_accuracy_sensitivity_is_the_metric_lost():
    groups = class_groups(TRAIN_COUNTS)
    y = np.repeat(np.arange(10), 4)
    pf = y.copy()  # float model: all correct
    pq = y.copy()
    pq[y == 9] = 0  # quantized: the rarest (tail) class is lost
    kw = sensitivity_kwargs()
    assert sn.sensitivity("overall", y, pf, pq, **kw) == pytest.approx(0.1)
    assert sn.sensitivity("head", y, pf, pq, **kw) == 0.0
    assert sn.sensitivity("tail", y, pf, pq, **kw) == pytest.approx(1 / len(groups["tail"]))
    assert sn.sensitivity("worst_class", y, pf, pq, **kw) == pytest.approx(1.0)
    for metric in ("overall", "balanced", "deployment"):
        m = [evaluate(y, p, TRAIN_COUNTS, groups)["metrics"][metric] for p in (pf, pq)]
        assert sn.sensitivity(metric, y, pf, pq, **kw) == pytest.approx(m[0] - m[1])
    # a resample of the images: only class 9's images -> all lost
    idx = np.flatnonzero(y == 9)
    assert sn.sensitivity("overall", y, pf, pq, images=idx, **kw) == pytest.approx(1.0)


def test_kl_sensitivity_is_the_class_balanced_mean_over_a_group():
    groups = class_groups(TRAIN_COUNTS)
    kl = [float(c) for c in range(10)]
    kl[2] = float("nan")  # a class absent from the validation images is skipped
    kw = sensitivity_kwargs()
    assert sn.sensitivity("kl", None, None, kl_class=kl, **kw) == pytest.approx(np.nanmean(kl))
    assert sn.sensitivity("kl_head", None, None, kl_class=kl, **kw) == pytest.approx(
        np.nanmean([kl[c] for c in groups["head"]])
    )
    assert sn.sensitivity("kl_tail", None, None, kl_class=kl, **kw) == pytest.approx(
        np.mean([kl[c] for c in groups["tail"]])
    )
    with pytest.raises(ValueError, match="needs the per-class KL"):
        sn.sensitivity("kl", None, None, **kw)


# ------------------------------------------------------------------ Hutchinson traces


def tiny_mlp_problem(seed: int):
    """A 4-5-3 tanh MLP with cross-entropy on fixed random data: (params, loss_fn, exact block traces)."""
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(40, 4, generator=gen), torch.randint(0, 3, (40,), generator=gen)
    init = {"W1": 0.8 * torch.randn(5, 4, generator=gen), "b1": 0.1 * torch.randn(5, generator=gen),
            "W2": 0.8 * torch.randn(3, 5, generator=gen)}  # fmt: skip

    def loss_of(w1, b1, w2):
        return F.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T, y)

    sizes = [t.numel() for t in init.values()]
    shapes = [t.shape for t in init.values()]

    def flat_loss(theta):
        return loss_of(*[p.reshape(s) for p, s in zip(torch.split(theta, sizes), shapes, strict=True)])

    hess = torch.autograd.functional.hessian(flat_loss, torch.cat([t.flatten() for t in init.values()]))
    offsets = np.cumsum([0, *sizes])
    blocks = {n: slice(offsets[i], offsets[i + 1]) for i, n in enumerate(init)}
    params = {n: t.clone().requires_grad_(True) for n, t in init.items()}
    return params, lambda: loss_of(*params.values()), hess, blocks


def hutchinson_stderr(hess: torch.Tensor, block: slice, samples: int) -> float:
    """Standard error of the mean of ``v_B . (H v)_B`` over Rademacher ``v`` (closed form)."""
    rows = hess[block]
    inner = hess[block, block]
    within = 2 * float((inner**2).sum() - (torch.diagonal(inner) ** 2).sum())  # pairs i != j in B
    cross = float((rows**2).sum() - (inner**2).sum())  # i in B, j outside B
    return float(np.sqrt((within + cross) / samples))


@pytest.mark.parametrize("seed", [0, 1])
def test_hutchinson_matches_the_exact_hessian_trace_of_each_block(seed):
    params, loss_fn, hess, blocks = tiny_mlp_problem(seed)
    samples = 400
    est = mp.hutchinson_traces(params, loss_fn, samples=samples, seed=seed)
    assert list(est) == ["W1", "b1", "W2"]
    for n, block in blocks.items():
        exact = float(torch.diagonal(hess)[block].sum())
        e = est[n]
        assert e["params"] == params[n].numel()
        assert abs(e["trace"] - exact) <= 4 * e["stderr"] + 1e-6, (n, e, exact)
        theory = hutchinson_stderr(hess, block, samples)
        assert 0.7 * theory <= e["stderr"] <= 1.4 * theory, (n, e["stderr"], theory)
    # the loss is not flat here: the check above has something to compare
    assert float(torch.diagonal(hess).sum()) > 0.1


def test_hutchinson_on_a_quadratic_with_known_trace():
    gen = torch.Generator().manual_seed(3)
    sizes = {"a": 6, "b": 3}
    d = sum(sizes.values())
    diag = torch.rand(d, generator=gen, dtype=torch.float64) + 0.5
    m = torch.randn(d, d, generator=gen, dtype=torch.float64)
    full = m @ m.T / d + torch.diag(diag)  # symmetric positive definite, with off-diagonal terms
    blocks = {"a": slice(0, 6), "b": slice(6, 9)}
    for a, samples in ((torch.diag(diag), 8), (full, 400)):
        params = {n: torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_(True)
                  for n, s in sizes.items()}  # fmt: skip

        def loss_fn(a=a, params=params):
            w = torch.cat(list(params.values()))
            return 0.5 * w @ a @ w

        est = mp.hutchinson_traces(params, loss_fn, samples=samples, seed=0)
        for n, block in blocks.items():
            exact = float(torch.diagonal(a)[block].sum())
            if a is full:
                assert abs(est[n]["trace"] - exact) <= 4 * est[n]["stderr"] + 1e-9, (n, est[n], exact)
                assert est[n]["stderr"] > 0
            else:  # a diagonal Hessian: every Rademacher probe gives the trace exactly
                assert est[n]["trace"] == pytest.approx(exact, rel=1e-12)
                assert est[n]["stderr"] == pytest.approx(0.0, abs=1e-12)


def test_hutchinson_is_deterministic_for_a_seed():
    params, loss_fn, _, _ = tiny_mlp_problem(0)
    a = mp.hutchinson_traces(params, loss_fn, samples=5, seed=11)
    b = mp.hutchinson_traces(params, loss_fn, samples=5, seed=11)
    c = mp.hutchinson_traces(params, loss_fn, samples=5, seed=12)
    assert a == b
    assert a != c


@pytest.mark.parametrize("samples", [1, 0, -3])
def test_hutchinson_needs_two_samples(samples):
    params, loss_fn, _, _ = tiny_mlp_problem(0)
    with pytest.raises(ValueError, match="samples must be >= 2"):
        mp.hutchinson_traces(params, loss_fn, samples=samples)


@pytest.fixture(scope="module")
def vgg_traces(vgg, images, labels):
    torch.manual_seed(8)
    head = nn.Linear(vgg.feature_dim, 10)
    with torch.no_grad():
        head.weight.copy_(0.3 * torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(9)))
    traces = mp.model_traces(vgg, head, images, labels, QuantConfig(), samples=24, seed=0)
    return head, traces


def exact_head_trace(vgg, head, images, labels, weights=None) -> float:
    """Exact trace of the cross-entropy's Hessian w.r.t. a linear head's weight: the mean (or weighted
    mean) over images of ``sum_c p_c (1 - p_c) * ||f||^2``."""
    with torch.no_grad():
        f = mp.prepared(vgg, QuantConfig()).features(images)
        p = F.softmax(head(f), 1)
        per_image = (p * (1 - p)).sum(1) * (f**2).sum(1)
    w = torch.ones(len(labels)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)[labels]
    return float((per_image * w).sum() / w.sum())


def test_model_traces_cover_every_layer(vgg, images, labels, vgg_traces):
    head, traces = vgg_traces
    assert list(traces) == list(LAYER_NAMES)
    assert {n: t["params"] for n, t in traces.items()} == mp.layer_params(vgg)
    for n, t in traces.items():
        assert np.isfinite(t["trace"]) and np.isfinite(t["stderr"]) and t["stderr"] > 0, n
        assert t["trace"] + 4 * t["stderr"] > 0, (n, t)  # consistent with a non-negative curvature
    # the head's block has a closed form (cross-entropy is convex in a linear head's weights)
    exact = exact_head_trace(vgg, head, images, labels)
    assert exact > 0 and traces["L16"]["trace"] > 0
    assert abs(traces["L16"]["trace"] - exact) <= 4 * traces["L16"]["stderr"], (traces["L16"], exact)


def test_model_traces_class_weights_and_untouched_model(vgg, images, labels, vgg_traces):
    head, _ = vgg_traces
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    grads = [p.requires_grad for p in vgg.parameters()]
    tail_only = [0.0] * 4 + [1.0] * 6
    traces = mp.model_traces(vgg, head, images, labels, QuantConfig(), samples=24, seed=1,
                             class_weights=tail_only)  # fmt: skip
    exact = exact_head_trace(vgg, head, images, labels, tail_only)
    assert abs(traces["L16"]["trace"] - exact) <= 4 * traces["L16"]["stderr"], (traces["L16"], exact)
    assert all(torch.equal(v, before[k]) for k, v in vgg.state_dict().items())
    assert [p.requires_grad for p in vgg.parameters()] == grads
    with pytest.raises(ValueError, match="zero weight"):
        mp.model_traces(vgg, head, images, labels, QuantConfig(), samples=2, class_weights=[0.0] * 10)


# ------------------------------------------------------------------ HAWQ sensitivity


def test_hawq_sensitivity_is_the_trace_weighted_quantization_error(vgg, vgg_traces):
    head, _ = vgg_traces
    qcfg = QuantConfig(granularity="tensor")
    weights = mp.layer_weights(vgg, qcfg, head)
    assert list(weights) == list(LAYER_NAMES)
    assert torch.equal(weights["L16"], head.weight.detach())
    traces = {
        n: {"trace": 2.0 * (i + 1), "params": int(w.numel())} for i, (n, w) in enumerate(weights.items())
    }
    table = mp.hawq_sensitivity(traces, weights, [3, 5], qcfg)
    assert list(table.index) == list(LAYER_NAMES) and list(table.columns) == [3, 5]
    for i, (n, w) in enumerate(weights.items()):
        for b in (3, 5):
            err = float(((quantize_weight(w, b, "tensor") - w) ** 2).sum())
            assert table.loc[n, b] == pytest.approx(2.0 * (i + 1) / w.numel() * err, rel=1e-6), (n, b)


def test_hawq_sensitivity_vanishes_at_sixteen_bits_and_falls_with_bits(vgg, vgg_traces):
    head, traces = vgg_traces
    qcfg = QuantConfig()
    table = mp.hawq_sensitivity(traces, mp.layer_weights(vgg, qcfg, head), [3, 4, 8, 16], qcfg)
    assert table.shape == (16, 4)
    scale = float(table[3].abs().max())
    assert scale > 0
    assert float(table[16].abs().max()) <= 1e-6 * scale
    for n in LAYER_NAMES:  # the sign is the trace's; the size falls with every added bit
        mags = table.loc[n, [3, 4, 8, 16]].abs().to_numpy()
        assert np.all(np.diff(mags) < 0), (n, mags)
    assert table[3].sum() > table[4].sum() > table[8].sum() > 0


# ------------------------------------------------------------------ the blog's top-k rule


@pytest.mark.parametrize("k", range(17))
def test_top_k_map_gives_the_k_highest_scores_six_bits(k):
    rng = np.random.default_rng(k)
    scores = dict(zip(LAYER_NAMES, rng.permutation(16).astype(float) - 5.0, strict=True))  # distinct
    bmap = mp.top_k_map(scores, k)
    assert list(bmap) == list(LAYER_NAMES)
    assert sum(b == 6 for b in bmap.values()) == k and sum(b == 4 for b in bmap.values()) == 16 - k
    highest = sorted(scores, key=scores.get, reverse=True)[:k]
    assert {n for n, b in bmap.items() if b == 6} == set(highest)
    assert mp.top_k_map(scores, np.int64(k)) == bmap


def test_top_k_map_breaks_ties_by_layer_order():
    # equal scores: the earlier layers win, whatever order the mapping lists them in
    scores = dict.fromkeys(reversed(LAYER_NAMES), 0.5)
    assert {n for n, b in mp.top_k_map(scores, 3).items() if b == 6} == {"L1", "L2", "L3"}
    scores = {**dict.fromkeys(LAYER_NAMES, 0.0), "L9": 1.0, "L12": 0.2, "L5": 0.2, "L14": 0.2}
    assert {n for n, b in mp.top_k_map(scores, 3).items() if b == 6} == {"L9", "L5", "L12"}
    assert mp.ranking(scores)[:4] == ["L9", "L5", "L12", "L14"]


def test_top_k_map_other_bits():
    scores = {n: float(i) for i, n in enumerate(LAYER_NAMES)}
    bmap = mp.top_k_map(scores, 2, high=8, low=3)
    assert bmap == {**dict.fromkeys(LAYER_NAMES, 3), "L15": 8, "L16": 8}


@pytest.mark.parametrize("k", [-1, 17, 2.5, True, "3", None])
def test_top_k_map_rejects_bad_k(k):
    scores = dict.fromkeys(LAYER_NAMES, 0.0)
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 16\]"):
        mp.top_k_map(scores, k)


def test_top_k_map_needs_every_layer():
    scores = dict.fromkeys(LAYER_NAMES[:-1], 0.0)
    with pytest.raises(ValueError, match=r"missing for layers \['L16'\]"):
        mp.top_k_map(scores, 4)


# ------------------------------------------------------------------ the budgeted ILP


def cost(table: pd.DataFrame, bmap: dict) -> float:
    return float(sum(table.loc[n, b] for n, b in bmap.items()))


def knapsack_optimum(table: pd.DataFrame, params: dict[str, int], budget: float) -> float:
    """The exact optimum of the multiple-choice knapsack by dynamic programming over integer sizes."""
    total = sum(params.values())
    cap = int(np.floor(budget * total + 1e-6))
    best = np.zeros(cap + 1)  # best[c]: least cost of the layers so far within size c
    for n in params:
        new = np.full(cap + 1, np.inf)
        for b in table.columns:
            size = int(b) * params[n]
            if size <= cap:
                shifted = np.full(cap + 1, np.inf)
                shifted[size:] = best[: cap + 1 - size] + float(table.loc[n, b])
                new = np.minimum(new, shifted)
        best = new
    return float(best[cap])


SMALL_CASES = [
    # (layer names, parameter counts, bit choices)
    (["L1", "L2", "L3"], [100, 7, 40], [2, 3, 4]),
    (["conv", "fc", "head"], [1000, 10, 250], [3, 4, 6, 8]),
    (["L2", "L7", "L9", "L16"], [9, 300, 41, 1200], [3, 4, 6, 8]),
    (["a", "b", "c", "d"], [5, 5, 5, 5], [2, 3, 4]),
]


@pytest.mark.parametrize("names,counts,choices", SMALL_CASES)
def test_ilp_equals_brute_force(names, counts, choices):
    params = dict(zip(names, counts, strict=True))
    rng = np.random.default_rng(len(names) * 100 + len(choices))
    lo, hi = min(choices), max(choices)
    for trial in range(12):
        raw = rng.normal(size=(len(names), len(choices))) * rng.choice([1e-3, 1.0, 50.0])
        table = pd.DataFrame(raw, index=names, columns=choices)  # includes negative values
        if trial % 3 == 0:
            table = mp.monotone(table)
        for budget in (lo, lo + 0.3, float(rng.uniform(lo, hi)), (lo + hi) / 2, hi, hi + 1):
            bmap = mp.ilp_allocation(table, params, budget)
            best_map, best_cost = mp.brute_force_allocation(table, params, budget)
            assert list(bmap) == names and set(bmap.values()) <= set(choices)
            assert mp.average_bits(bmap, params) <= budget + 1e-9, (bmap, budget)
            assert cost(table, bmap) == pytest.approx(best_cost, rel=1e-9, abs=1e-12), (trial, budget)
            assert mp.average_bits(best_map, params) <= budget + 1e-9


def test_ilp_never_exceeds_the_budget_and_is_optimal_on_sixteen_layers(params16):
    rng = np.random.default_rng(0)
    choices = [3, 4, 5, 6, 8]
    for trial in range(40):
        table = pd.DataFrame(rng.normal(size=(16, 5)) * rng.choice([1e-4, 1.0, 100.0]),
                             index=list(LAYER_NAMES), columns=choices)  # fmt: skip
        if trial % 2:
            table = mp.monotone(table.abs())
        budget = float(rng.uniform(3.0, 8.5))
        bmap = mp.ilp_allocation(table, params16, budget)
        assert list(bmap) == list(LAYER_NAMES) and set(bmap.values()) <= set(choices)
        assert mp.average_bits(bmap, params16) <= budget + 1e-12, (trial, budget)
        if trial < 8:  # an exact oracle on the real layer sizes
            opt = knapsack_optimum(table, params16, budget)
            assert cost(table, bmap) == pytest.approx(opt, rel=1e-9, abs=1e-12), (trial, budget)


def test_ilp_known_answers():
    names = ["big", "small", "mid"]
    params = {"big": 1000, "small": 10, "mid": 100}
    table = pd.DataFrame({3: [1.0, 0.5, 0.6], 4: [0.0, 0.0, 0.0]}, index=names)
    total = sum(params.values())
    # room for 'big' alone or for 'small' + 'mid' (1.1 > 1.0) at 4 bits: greedy-by-sensitivity is wrong
    assert mp.ilp_allocation(table, params, 3 + 1000 / total) == {"big": 3, "small": 4, "mid": 4}
    assert mp.ilp_allocation(table, params, 3 + 1010 / total) == {"big": 4, "small": 4, "mid": 3}
    assert mp.ilp_allocation(table, params, 4.0) == dict.fromkeys(names, 4)
    assert mp.ilp_allocation(table, params, 3.0) == dict.fromkeys(names, 3)
    # one of 16 equal layers far more sensitive: the budget for one upgrade goes to it
    equal = dict.fromkeys(LAYER_NAMES, 100)
    t16 = pd.DataFrame({4: [0.01] * 16, 6: [0.0] * 16}, index=list(LAYER_NAMES))
    t16.loc["L7", 4] = 5.0
    assert mp.ilp_allocation(t16, equal, 4 + 2 / 16) == {**dict.fromkeys(LAYER_NAMES, 4), "L7": 6}


def test_ilp_ignores_layers_not_in_params_and_a_float_column():
    params = {"L1": 10, "L2": 10}
    table = pd.DataFrame({3: [1.0, 2.0, 9.0], 8: [0.0, 0.0, 0.0], FLOAT: [0.0] * 3}, index=["L1", "L2", "L3"])
    assert mp.ilp_allocation(table, params, 5.5) == {"L1": 3, "L2": 8}


def test_brute_force_raises_when_nothing_fits():
    table = pd.DataFrame({3: [0.0], 4: [0.0]}, index=["a"])
    with pytest.raises(ValueError, match="no allocation fits the budget"):
        mp.brute_force_allocation(table, {"a": 1}, 2.5)


# ------------------------------------------------------------------ monotone tables


def test_monotone_is_the_running_max_from_the_top_bits():
    rng = np.random.default_rng(0)
    cols = [8, 3, 5, 4]  # unsorted on purpose
    table = pd.DataFrame(rng.normal(size=(16, 4)), index=list(LAYER_NAMES), columns=cols)
    out = mp.monotone(table)
    assert list(out.columns) == [3, 4, 5, 8] and list(out.index) == list(LAYER_NAMES)
    for n in LAYER_NAMES:
        row = out.loc[n].to_numpy()
        assert np.all(np.diff(row) <= 0), (n, row)  # non-increasing in bits
        for b in (3, 4, 5, 8):
            assert out.loc[n, b] == max(table.loc[n, c] for c in cols if c >= b)
    assert (out.loc[:, 8] == table.loc[:, 8]).all()
    pd.testing.assert_frame_equal(mp.monotone(out), out)  # idempotent
    assert not out.equals(table[[3, 4, 5, 8]])  # this random table was not monotone


def test_monotone_keeps_an_already_monotone_table():
    table = pd.DataFrame(
        {3: [0.5, 0.2, -0.1], 4: [0.5, 0.1, -0.2], 6: [0.0, 0.1, -0.3]}, index=["a", "b", "c"]
    )
    pd.testing.assert_frame_equal(mp.monotone(table), table)


# ------------------------------------------------------------------ random controls


@pytest.mark.parametrize("choices", [[3, 4, 5, 6, 8], [2, 4, 8]])
@pytest.mark.parametrize("budget", [3.5, 4.0, 5.0, 6.0])
def test_random_allocation_lies_in_the_band(params16, choices, budget):
    for seed in range(3):
        bmap = mp.random_allocation(params16, choices, budget, np.random.default_rng(seed))
        assert list(bmap) == list(LAYER_NAMES) and set(bmap.values()) <= set(choices)
        avg = mp.average_bits(bmap, params16)
        assert budget - 0.25 - 1e-9 <= avg <= budget + 1e-9, (seed, avg)
        assert mp.random_allocation(params16, choices, budget, np.random.default_rng(seed)) == bmap
    narrow = mp.random_allocation(params16, choices, budget, np.random.default_rng(0), tolerance=0.05)
    assert budget - 0.05 - 1e-9 <= mp.average_bits(narrow, params16) <= budget + 1e-9


def test_random_allocation_differs_between_seeds(params16):
    maps = [tuple(mp.random_allocation(params16, [3, 4, 5, 6, 8], 5.0, np.random.default_rng(s)).values())
            for s in range(5)]  # fmt: skip
    assert len(set(maps)) == 5


def test_random_allocation_is_uniform_over_the_band():
    # two equal layers, budget 3.5 with tolerance 0.5: (3, 3), (3, 4), (4, 3) each with probability 1/3
    params = {"a": 1, "b": 1}
    rng = np.random.default_rng(0)
    counts = Counter(tuple(mp.random_allocation(params, [3, 4], 3.5, rng, tolerance=0.5, tries=50).values())
                     for _ in range(900))  # fmt: skip
    assert set(counts) == {(3, 3), (3, 4), (4, 3)}
    assert all(240 <= c <= 360 for c in counts.values()), counts


@pytest.mark.parametrize("k", [0, 1, 4, 8, 16])
def test_random_top_k_map(k):
    maps = [mp.random_top_k_map(k, np.random.default_rng(s)) for s in range(4)]
    for bmap in maps:
        assert list(bmap) == list(LAYER_NAMES)
        assert sum(b == 6 for b in bmap.values()) == k and sum(b == 4 for b in bmap.values()) == 16 - k
    assert mp.random_top_k_map(k, np.random.default_rng(2)) == maps[2]
    if 0 < k < 16:
        assert len({tuple(m.values()) for m in maps}) > 1
    assert set(mp.random_top_k_map(k, np.random.default_rng(0), high=8, low=3).values()) <= {8, 3}


# ------------------------------------------------------------------ bad inputs


def test_average_bits_and_layer_params(params16):
    assert mp.average_bits(dict.fromkeys(LAYER_NAMES, 5), params16) == pytest.approx(5.0)
    bmap = {**dict.fromkeys(LAYER_NAMES, 4), "L9": 8}
    assert mp.average_bits(bmap, params16) == pytest.approx(4 + 4 * params16["L9"] / sum(params16.values()))
    model = VGG16(width=1 / 16)
    assert params16 == {n: int(weight_module(m).weight.numel()) for n, m in model.layers.items()}
    assert params16["L1"] == 3 * 4 * 9 and params16["L16"] == model.feature_dim * 10


def _table(choices, layers=LAYER_NAMES):
    return pd.DataFrame(np.ones((len(layers), len(choices))), index=list(layers), columns=list(choices))


BAD_INPUTS = [
    ("empty-table", lambda p: mp.ilp_allocation(pd.DataFrame(index=list(LAYER_NAMES)), p, 4.0),
     "the set of bit-widths to choose from is empty"),
    ("float-only-table", lambda p: mp.ilp_allocation(_table([FLOAT]), p, 4.0), "is empty"),
    ("empty-random-choices", lambda p: mp.random_allocation(p, [], 4.0, np.random.default_rng(0)),
     "the set of bit-widths to choose from is empty"),
    ("budget-below-smallest", lambda p: mp.ilp_allocation(_table([3, 4, 8]), p, 2.0),
     r"budget of 2\.0 average bits is below the smallest model \(3 bits"),
    ("missing-layer", lambda p: mp.ilp_allocation(_table([3, 4], LAYER_NAMES[:-1]), p, 4.0),
     r"sensitivities are missing for layers \['L16'\]"),
    ("nan-in-table", lambda p: mp.ilp_allocation(_table([3, 4]).replace({1.0: np.nan}), p, 4.0),
     "missing values"),
    ("bad-choice", lambda p: mp.random_allocation(p, [1, 4], 4.0, np.random.default_rng(0)),
     "a bit choice must be an int"),
    ("unreachable-band", lambda p: mp.random_allocation(p, [3, 4, 5, 6, 8], 3.0, np.random.default_rng(0)),
     r"no random allocation of \[3, 4, 5, 6, 8\] found with average bits in \[2\.75, 3\]"),
    ("unknown-metric", lambda p: sn.check_metric("foo"), "unknown sensitivity metric 'foo'"),
    ("hessian-not-from-predictions",
     lambda p: sn.sensitivity("hessian", [0], [0], [0], **sensitivity_kwargs()),
     "unknown sensitivity metric 'hessian'"),
    ("unknown-metric-sensitivity", lambda p: sn.sensitivity("foo", [0], [0], [0], **sensitivity_kwargs()),
     "unknown sensitivity metric 'foo'"),
    ("config-budget-metric", lambda p: MPQConfig(budget_metrics=("foo",)), "unknown budget metric 'foo'"),
    ("config-rule-metric", lambda p: MPQConfig(rule_metrics=("hessian",)), "unknown rule metric 'hessian'"),
    ("config-no-choices", lambda p: MPQConfig(choices=()), "choices .* must not be empty"),
    ("config-budget-above", lambda p: MPQConfig(budgets=(9.0,)), r"budget 9\.0 average bits is outside"),
    ("config-budget-below", lambda p: MPQConfig(budgets=(2.5,)), r"budget 2\.5 average bits is outside"),
    ("config-rule-k", lambda p: MPQConfig(rule_ks=(33,)), r"rule_ks must be in \[0, 32\]"),
    ("config-rule-low", lambda p: MPQConfig(rule_bits=(6, 7)), "rule_bits must be"),
    ("config-samples", lambda p: MPQConfig(hessian_samples=1), r"hessian_samples must be in \[2, inf\]"),
]  # fmt: skip


@pytest.mark.parametrize("call,match", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_get_clear_errors(params16, call, match):
    with pytest.raises(ValueError, match=match):
        call(params16)


def test_check_metric_accepts_every_known_metric():
    for m in ALL_METRICS:
        assert sn.check_metric(m) == m
    for m in SENSITIVITY_METRICS:
        assert sn.check_metric(m, SENSITIVITY_METRICS) == m
    with pytest.raises(ValueError, match=r"choose one of \['overall'"):
        sn.check_metric("hessian_tail", SENSITIVITY_METRICS)


# ------------------------------------------------------------------ experiments.mpq_allocations


def synthetic_tables(mcfg: MPQConfig, heads, seed: int = 0) -> dict[str, dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    metrics = {*mcfg.rule_metrics, *mcfg.budget_metrics}
    return {h: {m: pd.DataFrame(rng.normal(size=(16, len(mcfg.choices))), index=list(LAYER_NAMES),
                                columns=list(mcfg.choices))
                for m in sorted(metrics)}
            for h in heads}  # fmt: skip


SMALL_MPQ = MPQConfig(rule_ks=(4, 12), budgets=(4.0, 5.0), random_draws=2, budget_metrics=("overall", "tail"),
                      budget_heads=("baseline", "crt"))  # fmt: skip


def test_mpq_allocations_on_synthetic_tables(params16):
    mcfg = SMALL_MPQ
    tables = synthetic_tables(mcfg, ("baseline", "crt"))
    out = mp.allocations(tables, params16, mcfg, seed=3)
    kinds = Counter((a["head"], a["kind"]) for a in out)
    for h in ("baseline", "crt"):
        assert kinds[h, "float"] == 1 and kinds[h, "uniform"] == len(mcfg.choices)
        assert kinds[h, "rule"] == len(mcfg.rule_ks) * len(mcfg.rule_metrics)
        assert kinds[h, "rule-random"] == len(mcfg.rule_ks) * mcfg.random_draws
        assert kinds[h, "budget"] == len(mcfg.budgets) * len(mcfg.budget_metrics)
        assert kinds[h, "budget-random"] == len(mcfg.budgets) * mcfg.random_draws
    random_maps: dict[tuple, list] = {}
    for a in out:
        bmap, kind = a["bit_map"], a["kind"]
        assert list(bmap) == list(LAYER_NAMES), a
        if kind == "float":
            assert set(bmap.values()) == {FLOAT} and a["average_bits"] == 32.0
            continue
        assert all(isinstance(b, int) and 2 <= b <= 16 for b in bmap.values()), a
        assert a["average_bits"] == pytest.approx(mp.average_bits(bmap, params16))
        if kind == "uniform":
            assert set(bmap.values()) == {a["bits"]}
        elif kind in ("rule", "rule-random"):
            assert sum(b == 6 for b in bmap.values()) == a["k"] and set(bmap.values()) <= {6, 4}, a
            if kind == "rule":
                column = tables[a["head"]][a["metric"]][4]
                assert {n for n, b in bmap.items() if b == 6} == set(column.nlargest(a["k"]).index)
            else:
                random_maps.setdefault(("k", a["k"], a["draw"]), []).append(bmap)
        elif kind in ("budget", "budget-random"):
            assert set(bmap.values()) <= set(mcfg.choices)
            assert a["average_bits"] <= a["budget"] + 1e-9, a
            if kind == "budget":
                table = mp.monotone(tables[a["head"]][a["metric"]])
                assert bmap == mp.ilp_allocation(table, params16, a["budget"])
            else:
                assert a["average_bits"] >= a["budget"] - mcfg.random_tolerance - 1e-9, a
                random_maps.setdefault(("budget", a["budget"], a["draw"]), []).append(bmap)
        else:
            raise AssertionError(f"unexpected kind {kind!r}")
    # the random controls are shared by the heads: one map per (k, draw) or (budget, draw)
    assert len(random_maps) == mcfg.random_draws * (len(mcfg.rule_ks) + len(mcfg.budgets))
    for key, maps in random_maps.items():
        assert len(maps) == 2 and maps[0] == maps[1], key
    assert len({tuple(m[0].values()) for m in random_maps.values()}) == len(random_maps)  # draws differ
    # the ILP beats (or ties) every random map of its budget on the table it optimises
    for a in out:
        if a["kind"] == "budget":
            table = mp.monotone(tables[a["head"]][a["metric"]])
            for d in range(mcfg.random_draws):
                rnd = random_maps["budget", a["budget"], d][0]
                assert cost(table, a["bit_map"]) <= cost(table, rnd) + 1e-12


def test_mpq_allocations_are_deterministic_for_a_seed(params16):
    tables = synthetic_tables(SMALL_MPQ, ("baseline", "crt"))
    a = mp.allocations(tables, params16, SMALL_MPQ, seed=3)
    b = mp.allocations(tables, params16, SMALL_MPQ, seed=3)
    c = mp.allocations(tables, params16, SMALL_MPQ, seed=4)
    assert a == b
    random_kinds = ("rule-random", "budget-random")
    assert [x["bit_map"] for x in a if x["kind"] in random_kinds] != [
        x["bit_map"] for x in c if x["kind"] in random_kinds
    ]
    # only the random controls depend on the seed
    assert [x for x in a if x["kind"] not in random_kinds] == [x for x in c if x["kind"] not in random_kinds]


def test_mpq_allocations_with_the_default_heads(params16):
    # the brief's configuration: the budget only for cRT, the rule for both heads
    mcfg = MPQConfig(rule_ks=(4,), budgets=(4.0, 5.0), random_draws=2, budget_metrics=("overall", "tail"))
    tables = synthetic_tables(mcfg, ("baseline", "crt"))
    out = mp.allocations(tables, params16, mcfg, seed=0)
    assert {a["head"] for a in out if a["kind"].startswith("budget")} == {"crt"}
    assert {a["head"] for a in out if a["kind"].startswith("rule")} == {"baseline", "crt"}
    for a in out:
        if a["kind"] == "budget":
            assert a["average_bits"] <= a["budget"] + 1e-9
        if a["kind"] == "rule":
            assert sum(b == 6 for b in a["bit_map"].values()) == 4


def test_ilp_breaks_ties_the_same_way_every_time():
    """Among equally sensitive maps: the most bits spent, then the most bits in the earliest layers."""
    params = dict.fromkeys(["L1", "L2", "L3"], 100)
    flat = pd.DataFrame({3: [0.0] * 3, 4: [0.0] * 3, 6: [0.0] * 3}, index=list(params))
    # nothing is sensitive: spend the whole budget, upgrading the earliest layers first
    assert mp.ilp_allocation(flat, params, 4.0) == {"L1": 6, "L2": 3, "L3": 3}
    assert mp.ilp_allocation(flat, params, 6.0) == dict.fromkeys(params, 6)
    # L2 and L3 tie; L1 is insensitive: the upgrade goes to L2, every time
    tied = pd.DataFrame({3: [0.0, 1.0, 1.0], 4: [0.0, 0.0, 0.0], 6: [0.0] * 3}, index=list(params))
    maps = {tuple(mp.ilp_allocation(tied, params, 3 + 1 / 3).values()) for _ in range(5)}
    assert maps == {(3, 4, 3)}


# ---------------------------------------------------------------- ResNet-32: 32 layers


def test_resnet_single_layer_sweep_equals_quantizing_that_layer_alone():
    """On a ResNet the sweep runs each (layer, bits) as a full forward pass (skip connections):
    its logits equal quantize_model's with only that layer quantized, for an inner conv and the
    classifier (quantized as the head)."""
    from ltmpq.models import ResNet32

    torch.manual_seed(0)
    model = ResNet32().eval()
    x = torch.randn(6, 3, 32, 32)
    heads = {"baseline": model.classifier}
    qcfg = QuantConfig()
    float_logits, logits = mp.single_layer_sweep(model, heads, x, [4], qcfg)
    assert sorted(n for n, _ in logits) == sorted(model.layers)
    with torch.no_grad():
        assert torch.allclose(float_logits["baseline"], model(x), atol=1e-5)
        for name in ("L7", "L32"):
            bmap = {n: FLOAT for n in model.layers} | {name: 4}
            ref = quantize_model(model, bmap, qcfg)(x)
            assert torch.allclose(logits[name, 4]["baseline"], ref, atol=1e-5), name


def test_resnet_allocations_cover_its_32_layers():
    from ltmpq.models import ResNet32

    model = ResNet32()
    params = mp.layer_params(model)
    assert list(params) == [f"L{i}" for i in range(1, 33)] and sum(params.values()) == sum(
        weight_module(layer).weight.numel() for layer in model.layers.values()
    )
    rng = np.random.default_rng(0)
    scores = dict(zip(params, rng.random(32), strict=True))
    table = pd.DataFrame({b: {n: s / b for n, s in scores.items()} for b in (3, 4, 5, 6, 8)})
    tables = {"crt": {m: table for m in ("overall", "tail", "kl", "kl_tail")}}
    mcfg = MPQConfig(rule_heads=("crt",), budget_heads=("crt",), budgets=(4.0,), random_draws=1,
                     budget_metrics=("overall", "tail"), rule_ks=(8,))  # fmt: skip
    out = mp.allocations(tables, params, mcfg, seed=0)
    assert {tuple(a["bit_map"]) for a in out} == {tuple(params)}
    rule = next(a for a in out if a["kind"] == "rule" and a["metric"] == "tail")
    top8 = sorted(params, key=lambda n: -scores[n])[:8]
    assert sorted(n for n, b in rule["bit_map"].items() if b == 6) == sorted(top8)
    budget = next(a for a in out if a["kind"] == "budget")
    assert budget["average_bits"] <= 4.0 + 1e-9
