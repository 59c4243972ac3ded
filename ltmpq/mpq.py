"""Mixed-precision quantization (chapter 4): per-layer sensitivity, Hessian traces, bit allocation.

The blog's method: the sensitivity of layer n is what a metric loses when *only* layer n's
weights are quantized; the most sensitive layers get 6 bits and the rest 4. Here the metric is
pluggable (:data:`SENSITIVITY_METRICS`), the sweep reuses the float activations in front of
layer n (they do not depend on layer n's bits), a curvature reference (HAWQ-V3's
``Tr(H_n) / N_n * ||Q(W_n) - W_n||^2`` with Hutchinson trace estimates) sits beside it, and the
bits are allocated either by the blog's top-k rule or exactly, under a size budget, by
``scipy.optimize.milp``. Every allocation is a chapter-3 bit-width map
(:func:`ltmpq.quantization.bit_map`). Sensitivities are measured on the validation split only.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn
from torch.nn import functional as F

from .config import MPQConfig, QuantConfig
from .models import VGG16, Model
from .quantization import bit_map, fold_batchnorm, quantize_head, quantize_weight, weight_module
from .vocab import FLOAT, LAYER_NAMES, check_bits

# ---------------------------------------------------------------------------------------------
# Running a VGG16 from any layer on (chapter 4's sweep)


def prepared(model: Model, qcfg: QuantConfig) -> Model:
    """The float model in the form its weights are quantized in: BN folded when ``qcfg.fold_bn``."""
    return fold_batchnorm(model) if qcfg.fold_bn else copy.deepcopy(model).eval()


def _apply(model: VGG16, name: str, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Layer ``name`` (given as ``layer``) and what follows it inside ``VGG16.features``."""
    y = layer(x)
    if name in model.pool_after:
        y = model.pool(y)
    if name == "L13":
        y = torch.flatten(y, 1)
    elif name in ("L14", "L15"):
        y = torch.relu(y)
    return y


def features_from(model: VGG16, start: str, x: torch.Tensor, first: nn.Module | None = None) -> torch.Tensor:
    """Penultimate features computed from the input ``x`` of layer ``start`` (L1..L15) onwards.

    ``first`` replaces layer ``start`` (a quantized copy); later layers are the model's own.
    ``features_from(m, "L1", x)`` equals ``m.features(x)``.
    """
    names = list(LAYER_NAMES[:-1])
    i = names.index(start)
    for k, name in enumerate(names[i:]):
        x = _apply(model, name, first if (k == 0 and first is not None) else model.layers[name], x)
    return x


@torch.inference_mode()
def layer_inputs(model: VGG16, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The float input of every weight layer L1..L16 (L16's input is the penultimate feature)."""
    out = {}
    for name in LAYER_NAMES[:-1]:
        out[name] = x
        x = _apply(model, name, model.layers[name], x)
    out[LAYER_NAMES[-1]] = x
    return out


def quantized_layer(layer: nn.Module, bits, qcfg: QuantConfig) -> nn.Module:
    """A copy of one weight layer (conv block or linear) with its weight quantized."""
    q = copy.deepcopy(layer)
    with torch.no_grad():
        m = weight_module(q)
        m.weight.copy_(quantize_weight(m.weight, bits, qcfg.granularity, qcfg.clipping))
    return q


def _batches(x: torch.Tensor, batch_size: int):
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


@torch.inference_mode()
def single_layer_sweep(
    model: Model,
    heads: Mapping[str, nn.Module],
    x: torch.Tensor,
    bits: Sequence[int],
    qcfg: QuantConfig,
    *,
    reuse: bool = True,
    batch_size: int = 500,
    progress: Callable | None = None,
) -> tuple[dict[str, torch.Tensor], dict[tuple[str, int], dict[str, torch.Tensor]]]:
    """Logits of every head with exactly one layer quantized, for every layer and bit-width.

    ``model``: the trained stage-1 model (its own last layer is ignored: each head is that layer);
    ``x``: normalised input images (the validation split). Returns the float logits per head and
    ``{(layer, bits): {head: logits}}``. With ``reuse`` (a VGG16; a ResNet's skip connections
    always take the other path) the float input of layer n is computed once and only layers
    n..16 run per (n, bits); without it every (n, bits) is a full forward pass of a
    :func:`~ltmpq.quantization.quantize_model`-style copy. Both give identical numbers (a test
    asserts equality); ``make bench`` measures the time saved.
    """
    bits = [check_bits(b) for b in bits]
    base = prepared(model, qcfg)
    chunks = _batches(x, batch_size)
    names = list(model.layers)
    last = names[-1]
    grid = [(n, b) for n in names for b in bits]
    step = progress or (lambda it: it)

    def head_logits(feats: list[torch.Tensor], layer: str, b: int | None) -> dict[str, torch.Tensor]:
        f = torch.cat(feats)
        out = {}
        for name, head in heads.items():
            h = quantize_head(head, b, qcfg) if layer == last else head
            out[name] = h(f)
        return out

    if reuse and isinstance(base, VGG16):
        inputs = [layer_inputs(base, c) for c in chunks]
        float_logits = head_logits([i["L16"] for i in inputs], "", None)
        logits = {}
        for n, b in step(grid):
            if n == "L16":
                logits[n, b] = head_logits([i["L16"] for i in inputs], n, b)
                continue
            qlayer = quantized_layer(base.layers[n], b, qcfg)
            logits[n, b] = head_logits([features_from(base, n, i[n], qlayer) for i in inputs], n, None)
        return float_logits, logits
    float_logits = head_logits([base.features(c) for c in chunks], "", None)
    logits = {}
    for n, b in step(grid):
        qmodel = copy.deepcopy(base)
        if n != last:
            qmodel.layers[n] = quantized_layer(base.layers[n], b, qcfg)
        logits[n, b] = head_logits([qmodel.features(c) for c in chunks], n, b)
    return float_logits, logits


def kl_per_class(float_logits: torch.Tensor, q_logits: torch.Tensor, labels, num_classes: int) -> list[float]:
    """Mean KL(p_float || p_quantized) (nats) over the images of each class."""
    kl = F.kl_div(F.log_softmax(q_logits, 1), F.log_softmax(float_logits, 1), log_target=True,
                  reduction="none").sum(1)  # fmt: skip
    labels = torch.as_tensor(np.asarray(labels))
    return [
        float(kl[labels == c].mean()) if (labels == c).any() else float("nan") for c in range(num_classes)
    ]


# ---------------------------------------------------------------------------------------------
# Curvature: Hutchinson estimates of each layer's Hessian trace (HAWQ)


def hutchinson_traces(
    params: Mapping[str, torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
    samples: int = 32,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per-block Hessian traces ``Tr(d2 loss / d params[n]^2)`` by Hutchinson's estimator.

    Each probe is one Rademacher vector ``v`` over all blocks and one Hessian-vector product;
    ``v_n . (Hv)_n`` is an unbiased estimate of block n's trace (cross-block terms have mean
    zero). Returns, per block, the mean over probes (``trace``), its standard error
    (``stderr``) and the number of parameters (``params``). ``loss_fn`` recomputes the loss.
    """
    if samples < 2:
        raise ValueError(f"samples must be >= 2 (the standard error needs two probes), got {samples!r}")
    names = list(params)
    tensors = [params[n] for n in names]
    gen = torch.Generator().manual_seed(seed)
    grads = torch.autograd.grad(loss_fn(), tensors, create_graph=True)
    estimates = np.zeros((samples, len(names)))
    for s in range(samples):
        v = [torch.randint(0, 2, t.shape, generator=gen).to(t) * 2 - 1 for t in tensors]
        hv = torch.autograd.grad(grads, tensors, grad_outputs=v, retain_graph=True)
        estimates[s] = [float((a * b).sum()) for a, b in zip(v, hv, strict=True)]
    mean, se = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(samples)
    return {n: {"trace": float(mean[i]), "stderr": float(se[i]), "params": int(tensors[i].numel())}
            for i, n in enumerate(names)}  # fmt: skip


def balanced_subset(labels, n: int | None) -> np.ndarray:
    """Indices of the first ``n / classes`` images of each class, in split order (all images
    when ``n`` is None): the validation images chapter 4's Hessian traces use
    (``MPQConfig.hessian_images``). ``n`` must be a multiple of the class count that every class
    can fill."""
    labels = np.asarray(labels)
    if n is None:
        return np.arange(len(labels))
    classes = np.unique(labels)
    per, rest = divmod(n, len(classes))
    by_class = [np.flatnonzero(labels == c) for c in classes]
    smallest = min(len(b) for b in by_class)
    if rest or per < 1 or per > smallest:
        raise ValueError(
            f"hessian_images must be a multiple of the {len(classes)} classes, at most "
            f"{len(classes) * smallest} (this split's), got {n}"
        )
    return np.sort(np.concatenate([b[:per] for b in by_class]))


def model_traces(
    model: Model,
    head: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    qcfg: QuantConfig,
    *,
    class_weights: Sequence[float] | None = None,
    samples: int = 32,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Hessian traces of the cross-entropy of ``head(features(x))`` w.r.t. each layer's weight.

    The weights are those that get quantized (BN folded when ``qcfg.fold_bn``), L16 being the
    head's linear form (:func:`ltmpq.decoupling.as_linear`). ``class_weights`` weights each
    image's loss by its class (e.g. 0 for head classes: the tail-only Hessian).
    """
    from .decoupling import as_linear
    from .quantization import NormalizeRows

    base = prepared(model, qcfg)
    weight, bias, normalize = as_linear(head)
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    top = nn.Sequential(NormalizeRows(), linear) if normalize else linear
    for p in list(base.parameters()) + list(top.parameters()):
        p.requires_grad_(False)
    *inner, last = list(base.layers)
    params = {n: weight_module(base.layers[n]).weight for n in inner} | {last: linear.weight}
    for p in params.values():
        p.requires_grad_(True)
    w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)[y]
    if w is not None and float(w.sum()) <= 0:
        raise ValueError("class_weights give every image zero weight")

    def loss_fn() -> torch.Tensor:
        per_image = F.cross_entropy(top(base.features(x)), y, reduction="none")
        return per_image.mean() if w is None else (per_image * w).sum() / w.sum()

    return hutchinson_traces(params, loss_fn, samples=samples, seed=seed)


def hawq_sensitivity(
    traces: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, torch.Tensor],
    bits: Sequence[int],
    qcfg: QuantConfig,
) -> pd.DataFrame:
    """HAWQ-V3's sensitivity ``Tr(H_n) / N_n * ||Q_b(W_n) - W_n||^2`` (layers x bits)."""
    rows = {}
    for n, w in weights.items():
        t = traces[n]["trace"] / traces[n]["params"]
        err = {int(b): float(((quantize_weight(w, b, qcfg.granularity, qcfg.clipping) - w) ** 2).sum())
               for b in bits}  # fmt: skip
        rows[n] = {b: t * e for b, e in err.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def layer_weights(model: Model, qcfg: QuantConfig, head: nn.Module) -> dict[str, torch.Tensor]:
    """The weight tensors that get quantized: every layer but the last (BN folded as configured)
    and, as the last, the head's."""
    from .decoupling import as_linear

    base = prepared(model, qcfg)
    *inner, last = list(base.layers)
    return {n: weight_module(base.layers[n]).weight.detach() for n in inner} | {last: as_linear(head)[0]}


# ---------------------------------------------------------------------------------------------
# Allocation: the blog's top-k rule, an exact budgeted ILP, random and uniform controls


def layer_params(model: Model) -> dict[str, int]:
    """Number of weights of each layer L1..Ln (what a bit budget is spent on)."""
    return {n: int(weight_module(layer).weight.numel()) for n, layer in model.layers.items()}


def average_bits(bmap: Mapping[str, int], params: Mapping[str, int]) -> float:
    """Weight bits per weight of a bit-width map (the budget's unit)."""
    return sum(params[n] * bmap[n] for n in params) / sum(params.values())


def ranking(scores: Mapping[str, float]) -> list[str]:
    """Layers from most to least sensitive; ties keep layer order (L1 before L2)."""
    order = list(scores)
    return sorted(order, key=lambda n: (-scores[n], order.index(n)))


def top_k_map(
    scores: Mapping[str, float], k: int, high: int = 6, low: int = 4, layers: Sequence[str] = LAYER_NAMES
) -> dict[str, int]:
    """The blog's rule: the ``k`` most sensitive layers get ``high`` bits, the rest ``low``."""
    missing = [n for n in layers if n not in scores]
    if missing:
        raise ValueError(f"sensitivities are missing for layers {missing}")
    undefined = [n for n in layers if np.isnan(scores[n])]
    if undefined:
        raise ValueError(f"sensitivities of layers {undefined} are NaN (an empty class group?)")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k <= len(layers):
        raise ValueError(f"k must be an int in [0, {len(layers)}], got {k!r}")
    top = set(ranking({n: scores[n] for n in layers})[:k])
    return bit_map({n: check_bits(high) if n in top else check_bits(low) for n in layers}, layers)


def _check_choices(choices: Sequence[int]) -> list[int]:
    choices = sorted({check_bits(b, "a bit choice") for b in choices if b != FLOAT})
    if not choices:
        raise ValueError("the set of bit-widths to choose from is empty")
    return choices


def budget_range(choices: Sequence[int]) -> tuple[float, float]:
    """Smallest and largest average weight bits the choices allow."""
    choices = _check_choices(choices)
    return float(choices[0]), float(choices[-1])


def ilp_allocation(table: pd.DataFrame, params: Mapping[str, int], max_average_bits: float) -> dict[str, int]:
    """Bits per layer minimising total sensitivity with average weight bits <= the budget.

    ``table``: sensitivity of each layer (rows, L1..L16) at each bit-width (columns, the
    choices). One binary variable per (layer, bits), one choice per layer, one size constraint;
    solved exactly by ``scipy.optimize.milp`` (HiGHS, no optimality gap). The objective is
    additive over layers, HAWQ-V3's approximation.

    Accuracy sensitivities are multiples of one image, so several maps often tie. Ties are
    broken the same way every time, lexicographically: least sensitivity, then the most bits
    spent (what the budget pays for), then the most bits in the earliest layers.
    """
    choices = _check_choices(list(table.columns))
    layers = list(params)
    missing = [n for n in layers if n not in table.index]
    if missing:
        raise ValueError(f"sensitivities are missing for layers {missing}")
    lo = budget_range(choices)[0]
    if isinstance(max_average_bits, bool) or not np.isfinite(max_average_bits):
        raise ValueError(f"the budget must be a finite number of average bits, got {max_average_bits!r}")
    if max_average_bits < lo - 1e-9:
        raise ValueError(
            f"budget of {max_average_bits!r} average bits is below the smallest model ({lo:g} bits per "
            f"weight with choices {choices})"
        )
    s = table.loc[layers, choices].to_numpy(dtype=float)
    if np.isnan(s).any():
        raise ValueError("the sensitivity table has missing values")
    n_layers, n_bits = s.shape
    size = np.concatenate([np.asarray(choices, float) * params[n] for n in layers])
    total = sum(params.values())
    constraints = [LinearConstraint(np.kron(np.eye(n_layers), np.ones(n_bits)), 1, 1),
                   LinearConstraint(size[None, :], -np.inf, max_average_bits * total + 1e-6)]  # fmt: skip
    # bits placed earlier weigh more: a map's position-weighted bits are unique among equal-size maps
    early = np.concatenate([np.asarray(choices, float) * (n_layers - i) for i in range(n_layers)])
    x = None
    for objective in (s.ravel(), -size / total, -early):
        objective = objective / (np.abs(objective).max() or 1.0)  # O(1): HiGHS's tolerances are absolute
        res = milp(c=objective, constraints=constraints, integrality=np.ones(s.size), bounds=Bounds(0, 1),
                   options={"mip_rel_gap": 0.0})  # fmt: skip
        if not res.success:
            raise RuntimeError(f"the bit allocation ILP failed: {res.message}")
        x = res.x
        # keep this objective at its optimum (within a hair above the solver's tolerance) while the
        # next one breaks its ties
        constraints.append(LinearConstraint(objective[None, :], -np.inf, res.fun + 1e-6))
    picks = x.reshape(n_layers, n_bits).argmax(1)
    return bit_map({n: choices[j] for n, j in zip(layers, picks, strict=True)}, layers)


def brute_force_allocation(
    table: pd.DataFrame, params: Mapping[str, int], max_average_bits: float
) -> tuple[dict[str, int], float]:
    """Every combination tried (tests' oracle for :func:`ilp_allocation`; small cases only)."""
    choices = list(table.columns)
    layers = list(params)
    total = sum(params.values())
    best, best_cost = None, np.inf
    for combo in itertools.product(choices, repeat=len(layers)):
        if sum(params[n] * b for n, b in zip(layers, combo, strict=True)) > max_average_bits * total + 1e-6:
            continue
        cost = sum(float(table.loc[n, b]) for n, b in zip(layers, combo, strict=True))
        if cost < best_cost - 1e-12:
            best, best_cost = dict(zip(layers, combo, strict=True)), cost
    if best is None:
        raise ValueError("no allocation fits the budget")
    return best, best_cost


def monotone(table: pd.DataFrame) -> pd.DataFrame:
    """Each layer's sensitivity made non-increasing in bits (a noisy measurement must not make a
    layer look more robust at fewer bits): the value at b is the max over b' >= b."""
    cols = sorted(table.columns)
    return table[cols][cols[::-1]].cummax(axis=1)[cols]


def random_allocation(
    params: Mapping[str, int],
    choices: Sequence[int],
    max_average_bits: float,
    rng: np.random.Generator,
    tolerance: float = 0.25,
    tries: int = 200_000,
) -> dict[str, int]:
    """A uniformly random bit map whose average bits lie in [budget - tolerance, budget].

    Rejection sampling over independent uniform choices per layer: every map in the band is
    equally likely. The control that says what any allocation at this size achieves.
    """
    choices = _check_choices(choices)
    layers = list(params)
    n = np.asarray([params[k] for k in layers], float)
    draws = rng.choice(choices, size=(tries, len(layers)))
    avg = draws @ n / n.sum()
    ok = np.flatnonzero((avg <= max_average_bits + 1e-9) & (avg >= max_average_bits - tolerance))
    if ok.size == 0:
        raise ValueError(
            f"no random allocation of {choices} found with average bits in "
            f"[{max_average_bits - tolerance:g}, {max_average_bits:g}]"
        )
    return bit_map({k: int(b) for k, b in zip(layers, draws[ok[0]], strict=True)}, layers)


def random_top_k_map(k: int, rng: np.random.Generator, high: int = 6, low: int = 4,
                     layers: Sequence[str] = LAYER_NAMES) -> dict[str, int]:  # fmt: skip
    """``k`` layers drawn at random get ``high`` bits, the rest ``low`` (the top-k rule's control)."""
    return top_k_map(dict(zip(layers, rng.permutation(len(layers)).astype(float), strict=True)),
                     k, high, low, layers)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# What chapter 4 evaluates: sensitivity tables from a stored sweep, and every allocation


def random_maps(params: dict[str, int], mcfg: MPQConfig, seed: int) -> dict[tuple, dict]:
    """Chapter 4's random controls, drawn before any compute so a budget no random map reaches
    fails at once: ``{("k", k, draw): map, ("budget", budget, draw): map}``."""
    high, low = mcfg.rule_bits
    rng = np.random.default_rng([mcfg.seed, seed])
    out: dict[tuple, dict] = {}
    for k in mcfg.rule_ks:
        for draw in range(mcfg.random_draws):
            out["k", k, draw] = random_top_k_map(k, rng, high, low, list(params))
    for budget in mcfg.budgets:
        for draw in range(mcfg.random_draws):
            out["budget", budget, draw] = random_allocation(
                params, mcfg.choices, budget, rng, mcfg.random_tolerance
            )
    return out


def allocations(
    tables: dict[str, dict[str, pd.DataFrame]],
    params: dict[str, int],
    mcfg: MPQConfig,
    seed: int,
    randoms: dict[tuple, dict] | None = None,
) -> list[dict]:
    """Every bit map chapter 4 evaluates, each with how it was chosen.

    ``tables[head][metric]``: sensitivity, layers x bits (validation split). ``kind`` is
    ``float``, ``uniform``, ``rule`` (the blog's top-k), ``rule-random`` (k random layers),
    ``budget`` (the ILP) or ``budget-random`` (random maps of the same size). ``randoms``: the
    maps of :func:`random_maps` when the caller has drawn them already.
    """
    high, low = mcfg.rule_bits
    layers = list(params)
    heads = list(dict.fromkeys([*mcfg.rule_heads, *mcfg.budget_heads]))
    randoms = random_maps(params, mcfg, seed) if randoms is None else randoms
    out: list[dict] = []
    for head in heads:
        out.append({"head": head, "kind": "float", "bit_map": bit_map(FLOAT, layers)})
        out += [
            {"head": head, "kind": "uniform", "bits": b, "bit_map": bit_map(b, layers)} for b in mcfg.choices
        ]
    for k in mcfg.rule_ks:
        for draw in range(mcfg.random_draws):
            bmap = randoms["k", k, draw]  # the same random maps for every head
            out += [{"head": h, "kind": "rule-random", "k": k, "draw": draw, "bit_map": bmap}
                    for h in mcfg.rule_heads]  # fmt: skip
        for head in mcfg.rule_heads:
            for metric in mcfg.rule_metrics:
                scores = tables[head][metric][low].to_dict()
                out.append({"head": head, "kind": "rule", "metric": metric, "k": k,
                            "bit_map": top_k_map(scores, k, high, low, layers)})  # fmt: skip
    for budget in mcfg.budgets:
        for draw in range(mcfg.random_draws):
            bmap = randoms["budget", budget, draw]
            out += [{"head": h, "kind": "budget-random", "budget": budget, "draw": draw, "bit_map": bmap}
                    for h in mcfg.budget_heads]  # fmt: skip
        for head in mcfg.budget_heads:
            for metric in mcfg.budget_metrics:
                bmap = ilp_allocation(monotone(tables[head][metric]), params, budget)
                out.append(
                    {"head": head, "kind": "budget", "metric": metric, "budget": budget, "bit_map": bmap}
                )
    for a in out:
        a["average_bits"] = average_bits(a["bit_map"], params) if a["kind"] != "float" else 32.0
    return out
