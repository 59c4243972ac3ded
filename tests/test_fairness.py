"""ltmpq.fairness (chapter 5's mechanism): per-class Hessian traces against exact Hessians, gradient
norms against direct autograd, linearity of class traces, the summed standard error's bound, HAWQ
terms, and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fakes import random_vgg
from torch import nn
from torch.func import functional_call

from ltmpq import fairness as fa
from ltmpq import mpq as mp
from ltmpq.config import QuantConfig
from ltmpq.decoupling import NearestClassMean
from ltmpq.models import VGG16
from ltmpq.quantization import quantize_weight, weight_module
from ltmpq.vocab import LAYER_NAMES

N_CLASSES = 3
COUNTS = (2, 3, 5)  # unequal class sizes: weighting by class size matters


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def vgg() -> VGG16:
    """A width-1/16, 3-class VGG16 in eval mode with BatchNorms far from the identity."""
    return random_vgg(0, num_classes=N_CLASSES)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Images of class c scaled by 0.3, 1 and 3, so the classes' curvatures differ; shuffled order."""
    gen = torch.Generator().manual_seed(2)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
    y = y[torch.randperm(len(y), generator=gen)]
    x = torch.randn(len(y), 3, 32, 32, generator=gen) * torch.tensor([0.3, 1.0, 3.0])[y][:, None, None, None]
    return x, y


@pytest.fixture(scope="module")
def head(vgg, data) -> nn.Linear:
    """The model's own L16 with the bias that centres the logits (a saturated softmax is flat)."""
    h = copy.deepcopy(vgg.layers["L16"])
    with torch.no_grad():
        h.bias.copy_(-h.weight @ vgg.features(data[0]).mean(0))
    return h


class Features(nn.Module):
    """``model.features`` as a forward, for ``torch.func.functional_call``."""

    def __init__(self, model: VGG16) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def weight_keys(model: VGG16) -> dict[str, str]:
    """State-dict key of each layer's (folded) weight inside :class:`Features`."""
    return {n: f"model.layers.{n}.0.weight" if isinstance(model.layers[n], nn.Sequential)
            else f"model.layers.{n}.weight" for n in LAYER_NAMES[:-1]}  # fmt: skip


def oracle_loss(vgg: VGG16, head: nn.Module, qcfg: QuantConfig, x, y):
    """The class-mean cross-entropy as a function of ``{layer: weight}``, built independently of
    ``model_traces`` (functional_call on the folded model and on the head), and the weights."""
    feats = Features(mp.prepared(vgg, qcfg))
    keys = weight_keys(feats.model)
    head_key = "means" if isinstance(head, NearestClassMean) else "weight"
    state = dict(feats.named_parameters()) | dict(feats.named_buffers())
    weights = {n: state[k].detach().clone() for n, k in keys.items()}
    weights["L16"] = getattr(head, head_key).detach().clone()

    def loss(ws: dict[str, torch.Tensor]) -> torch.Tensor:
        f = functional_call(feats, {keys[n]: ws[n] for n in keys}, (x,))
        return F.cross_entropy(functional_call(head, {head_key: ws["L16"]}, (f,)), y)

    return loss, weights


def exact_block_trace(loss, weights: dict[str, torch.Tensor], layer: str) -> float:
    """Exact trace of the Hessian w.r.t. one layer's weight (torch.autograd.functional.hessian)."""
    w0 = weights[layer]

    def of(w):
        return loss({**weights, layer: w})

    h = torch.autograd.functional.hessian(of, w0)
    return float(torch.diagonal(h.reshape(w0.numel(), w0.numel())).sum())


@pytest.fixture(scope="module")
def curvature(vgg, head, data) -> pd.DataFrame:
    """Per-(class, layer) curvature with many probes (the oracle tests' estimate)."""
    x, y = data
    return fa.class_layer_curvature(vgg, head, x, y, QuantConfig(), num_classes=N_CLASSES, samples=160,
                                    seed=3, bits=[3, 6])  # fmt: skip


# ------------------------------------------------------------------ (a) traces against exact Hessians


@pytest.mark.parametrize("layer", ["L1", "L2", "L16"])
def test_class_trace_matches_the_exact_hessian_trace(vgg, head, data, curvature, layer):
    x, y = data
    exact, est, se = {}, {}, {}
    for c in range(N_CLASSES):
        loss, weights = oracle_loss(vgg, head, QuantConfig(), x[y == c], y[y == c])
        exact[c] = exact_block_trace(loss, weights, layer)
        row = curvature[(curvature["class"] == c) & (curvature["layer"] == layer)].iloc[0]
        assert row["images"] == COUNTS[c]
        assert row["params"] == weights[layer].numel()
        assert row["trace_stderr"] > 0
        assert abs(row["trace"] - exact[c]) <= 4 * row["trace_stderr"] + 1e-6, (c, row.to_dict(), exact[c])
        est[c], se[c] = row["trace"], row["trace_stderr"]
    # the check has teeth: some class's estimate is precise enough to rule out another class's exact
    # trace, so computing the trace on the wrong images would fail it. (The per-layer estimates of
    # a random network are noisy: cross-layer curvature enters every block's variance.)
    z = max(abs(exact[d] - est[c]) / se[c] for c in exact for d in exact if d != c)
    assert z > 8, (exact, est, se)


def mlp_problem():
    """A tiny tanh MLP's cross-entropy: a dense Hessian, mostly within-block curvature."""
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(30, 4, generator=gen), torch.randint(0, 3, (30,), generator=gen)
    init = {"W1": 0.9 * torch.randn(5, 4, generator=gen), "W2": 0.9 * torch.randn(3, 5, generator=gen)}

    def loss_of(w1, w2):
        return F.cross_entropy(torch.tanh(x @ w1.T) @ w2.T, y)

    theta = torch.cat([t.flatten() for t in init.values()])
    hess = torch.autograd.functional.hessian(
        lambda t: loss_of(t[:20].reshape(5, 4), t[20:].reshape(3, 5)), theta
    )
    return init, loss_of, hess


def cross_block_problem():
    """A quadratic whose off-diagonal curvature is all between the two blocks: the summed
    estimate's variance is then exactly twice the sum of the blocks' variances."""
    gen = torch.Generator().manual_seed(5)
    b = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    hess = torch.block_diag(torch.zeros(6, 6, dtype=torch.float64), torch.zeros(4, 4, dtype=torch.float64))
    hess[:6, 6:], hess[6:, :6] = b, b.T
    hess += torch.diag(torch.rand(10, generator=gen, dtype=torch.float64) + 0.5)
    init = {
        "a": torch.randn(6, generator=gen, dtype=torch.float64),
        "b": torch.randn(4, generator=gen, dtype=torch.float64),
    }

    def loss_of(wa, wb):
        w = torch.cat([wa, wb])
        return 0.5 * w @ hess @ w

    return init, loss_of, hess


@pytest.mark.parametrize("problem", [mlp_problem, cross_block_problem], ids=["mlp", "cross-block"])
def test_summed_trace_and_its_stderr_bound_on_an_exact_problem(problem):
    # per-block Hutchinson estimates (shared probes) summed by per_class must match the exact total
    # trace, and sqrt(2 * sum se_n^2) must bound the true standard error of the total from above
    # (tight when the curvature is all cross-block) without being loose by more than sqrt(2)
    init, loss_of, hess = problem()
    samples = 600
    exact = float(torch.diagonal(hess).sum())
    off = hess - torch.diag(torch.diagonal(hess))
    true_se = float(torch.sqrt(2 * (off**2).sum() / samples))  # Var(v'Hv) = 2 sum_{i != j} H_ij^2
    params = {n: t.clone().requires_grad_(True) for n, t in init.items()}
    est = mp.hutchinson_traces(params, lambda: loss_of(*params.values()), samples=samples, seed=0)
    long = pd.DataFrame([{"class": 0, "layer": n, "trace": e["trace"], "trace_stderr": e["stderr"],
                          "grad_norm2": 0.0} for n, e in est.items()])  # fmt: skip
    total = fa.per_class(long).iloc[0]
    assert exact > 0.05 and true_se > 0
    assert abs(total["trace"] - exact) <= 4 * total["trace_stderr"], (total.to_dict(), exact)
    assert true_se <= 1.15 * total["trace_stderr"] <= 1.15 * 1.5 * true_se, (total["trace_stderr"], true_se)


# ------------------------------------------------------------------ (b) gradient norms


@pytest.mark.parametrize("kind", ["linear", "ncm", "unfolded"])
def test_grad_norm_matches_direct_autograd(vgg, head, data, kind):
    x, y = data
    qcfg = QuantConfig(fold_bn=False, granularity="tensor") if kind == "unfolded" else QuantConfig()
    h = head
    if kind == "ncm":
        with torch.no_grad():
            h = NearestClassMean(vgg.features(x), y)
    frame = fa.class_layer_curvature(vgg, h, x, y, qcfg, num_classes=N_CLASSES, samples=2)
    assert list(frame["layer"].unique()) == list(LAYER_NAMES)
    for c in range(N_CLASSES):
        loss, weights = oracle_loss(vgg, h, qcfg, x[y == c], y[y == c])
        ws = {n: w.requires_grad_(True) for n, w in weights.items()}
        grads = torch.autograd.grad(loss(ws), list(ws.values()))
        direct = {n: float((g**2).sum()) for n, g in zip(ws, grads, strict=True)}
        got = frame[frame["class"] == c].set_index("layer")["grad_norm2"]
        assert min(direct.values()) > 0
        for n in LAYER_NAMES:
            assert got[n] == pytest.approx(direct[n], rel=1e-4), (kind, c, n)
    summed = fa.per_class(frame)
    assert summed["grad_norm2"].to_numpy() == pytest.approx(
        frame.groupby("class")["grad_norm2"].sum().to_numpy()
    )


# ------------------------------------------------------------------ (c) linearity, HAWQ terms


def test_class_traces_weighted_by_class_size_add_up_to_the_whole_set_trace(vgg, head, data):
    x, y = data
    qcfg = QuantConfig()
    frame = fa.class_layer_curvature(vgg, head, x, y, qcfg, num_classes=N_CLASSES, samples=4, seed=9)
    whole = mp.model_traces(vgg, head, x, y, qcfg, samples=4, seed=9)
    share = {c: n / len(y) for c, n in enumerate(COUNTS)}
    for n in LAYER_NAMES:
        rows = frame[frame["layer"] == n]
        combined = sum(share[int(r["class"])] * r["trace"] for _, r in rows.iterrows())
        # the same probes for every class: equal probe by probe, up to float32 summation order
        assert combined == pytest.approx(whole[n]["trace"], rel=2e-4, abs=1e-6), n
    # the class-only pass is model_traces with one-hot class weights on all images
    one_hot = mp.model_traces(vgg, head, x, y, qcfg, samples=4, seed=9, class_weights=[0.0, 1.0, 0.0])
    rows = frame[frame["class"] == 1].set_index("layer")
    for n in LAYER_NAMES:
        assert rows.loc[n, "trace"] == pytest.approx(one_hot[n]["trace"], rel=2e-4, abs=1e-6), n
    # and other probes give other numbers (the equalities above are not vacuous)
    other = mp.model_traces(vgg, head, x, y, qcfg, samples=4, seed=10)
    assert abs(other["L1"]["trace"] - whole["L1"]["trace"]) > 1e-3 * abs(whole["L1"]["trace"])


def test_hawq_terms_are_trace_weighted_quantization_errors(vgg, head, curvature):
    base = mp.prepared(vgg, QuantConfig())
    weights = {n: weight_module(base.layers[n]).weight.detach() for n in LAYER_NAMES[:-1]}
    weights["L16"] = head.weight.detach()
    for b in (3, 6):
        err = {n: float(((quantize_weight(w, b) - w) ** 2).sum()) for n, w in weights.items()}
        for _, r in curvature.iterrows():
            n = r["layer"]
            assert r[f"hawq_{b}"] == pytest.approx(r["trace"] / weights[n].numel() * err[n], rel=1e-5)
            assert r[f"hawq_{b}_stderr"] == pytest.approx(r["trace_stderr"] / weights[n].numel() * err[n])
    summed = fa.per_class(curvature)
    assert list(summed.columns) == ["class", "images", "trace", "trace_stderr", "grad_norm2", "hawq_3",
                                    "hawq_3_stderr", "hawq_6", "hawq_6_stderr"]  # fmt: skip
    assert list(summed["images"]) == list(COUNTS)
    for c, g in curvature.groupby("class"):
        row = summed.set_index("class").loc[c]
        assert row["trace"] == pytest.approx(g["trace"].sum())
        assert row["trace_stderr"] == pytest.approx(np.sqrt(2 * (g["trace_stderr"] ** 2).sum()))
        # the sign is the trace's (a random network is not at a minimum); fewer bits, larger size
        assert abs(row["hawq_3"]) > abs(row["hawq_6"]) > 0
        assert np.sign(row["hawq_3"]) == np.sign(row["trace"])


def test_class_curvature_is_per_class_of_the_layer_frame(vgg, head, data):
    x, y = data
    kwargs = {"num_classes": N_CLASSES, "samples": 2, "seed": 1, "bits": [4]}
    a = fa.class_curvature(vgg, head, x, y, QuantConfig(), **kwargs)
    b = fa.per_class(fa.class_layer_curvature(vgg, head, x, y, QuantConfig(), **kwargs))
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == N_CLASSES and list(a["class"]) == [0, 1, 2]


# ------------------------------------------------------------------ (d) bad input


def test_curvature_rejects_bad_input(vgg, head, data):
    x, y = data
    kw = {"num_classes": N_CLASSES, "samples": 2}
    with pytest.raises(ValueError, match=r"classes \[3\] have no images"):
        fa.class_curvature(vgg, head, x, y, QuantConfig(), num_classes=4, samples=2)
    with pytest.raises(ValueError, match="x has 10 images but y has 9 labels"):
        fa.class_curvature(vgg, head, x, y[:9], QuantConfig(), **kw)
    with pytest.raises(ValueError, match=r"labels \[5\] are outside the classes 0..2"):
        fa.class_curvature(vgg, head, x, torch.where(y == 0, 5, y), QuantConfig(), **kw)
    with pytest.raises(ValueError, match=r"a bit-width must be an int in \[2, 16\]"):
        fa.class_curvature(vgg, head, x, y, QuantConfig(), bits=["float"], **kw)
    with pytest.raises(ValueError, match="a bit-width must be an int"):
        fa.class_curvature(vgg, head, x, y, QuantConfig(), bits=[1], **kw)
    with pytest.raises(ValueError, match="samples must be >= 2"):
        fa.class_curvature(vgg, head, x, y, QuantConfig(), num_classes=N_CLASSES, samples=1)
    with pytest.raises(ValueError, match=r"unknown columns \['trace'\]"):
        fa.per_class(pd.DataFrame({"class": [0], "layer": ["L1"]}).assign(trace_stderr=1.0, grad_norm2=0.0))
