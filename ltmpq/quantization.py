"""Post-training ("fake") quantization of the models and of the decoupled classifiers: chapters 3-4.

One description of a quantized model: a **bit-width map** ``{"L1": 8, ..., "L16": "float"}`` that
names every weight layer; chapter 3 uses uniform maps, chapter 4's mixed precision writes
non-uniform ones. How the bits are spent is a :class:`~ltmpq.config.QuantConfig`.

Weights are signed symmetric integers ``q * s`` with ``q`` in ``[-2**(b-1), 2**(b-1) - 1]``;
the rounding is torch's own ``fake_quantize_per_channel_affine`` / ``..._per_tensor_affine``.
The scale is ``max|w| / (2**(b-1) - 1)`` (min-max) or ``alpha * max|w| / (2**(b-1) - 1)`` with
the clipping ratio ``alpha`` that minimises the squared error (MSE). BatchNorm is folded into
the convolution before quantizing (torch's ``fuse_conv_bn_eval``), as deployment does; biases
stay in float32. Activations, when quantized, are unsigned per-tensor after every ReLU.

Chapter 5's hypotheses (:data:`~ltmpq.config.QUANT_HYPOTHESES`) add other quantizers, all off by
default: affine weights (``q`` in the same signed range, ``w ~ s * (q - z)`` with an integer zero
point ``z``, as torch's observers compute it); activations at the weights' bits (``act_bits=
"match"``), affine ones (the network input is quantized too: after a ReLU an affine grid is the
unsigned one), calibrated by min-max, a percentile or torch's ``HistogramObserver``; the first and
last layers kept at ``first_last_bits``; and quantized logits (:func:`quantize_logits`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .config import ACT_CLIPPINGS, ACT_SCHEMES, CLIPPINGS, QUANT_HYPOTHESES, QuantConfig
from .models import Model
from .vocab import FLOAT, LAYER_NAMES, check_bits

#: Clipping ratios searched by the MSE scale (fractions of the largest magnitude).
MSE_GRID = tuple(np.round(np.linspace(0.2, 1.0, 81), 3))
SCALE_BITS = 32  # each scale is stored as a float32
#: The activation quantizer in front of L1 (the normalised image; only with ``act_scheme="affine"``).
INPUT = "input"

Bits = int | str  # an int in [MIN_BITS, MAX_BITS] or FLOAT


def bit_map(spec: Bits | Mapping[str, Bits], layers: Sequence[str] = LAYER_NAMES) -> dict[str, Bits]:
    """A complete, checked bit-width map: from one value for every layer, or from a full mapping.

    A mapping must name exactly ``layers``: unknown or missing layer names are errors (a silently
    float layer would inflate a mixed-precision model's accuracy).
    """
    if not isinstance(spec, Mapping):
        b = check_bits(spec, allow_float=True)
        return dict.fromkeys(layers, b)
    unknown = [k for k in spec if k not in layers]
    missing = [k for k in layers if k not in spec]
    if unknown or missing:
        raise ValueError(
            f"a bit-width map must name every layer {layers[0]}..{layers[-1]} once: "
            f"unknown {unknown}, missing {missing}"
        )
    return {k: check_bits(spec[k], f"bits of {k}", allow_float=True) for k in layers}


def map_label(bmap: Mapping[str, Bits]) -> str:
    """``"float"``, ``"8"`` (uniform) or ``"mixed"`` for a bit-width map."""
    values = set(bmap.values())
    return str(values.pop()) if len(values) == 1 else "mixed"


def _qrange(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _fake_quant(
    w: torch.Tensor, scale: torch.Tensor, bits: int, zero: torch.Tensor | None = None
) -> torch.Tensor:
    """Signed ``bits``-bit fake quantization; ``zero``: the zero point(s) (None: 0, symmetric)."""
    lo, hi = _qrange(bits)
    if scale.ndim == 0:
        z = 0 if zero is None else int(zero)
        return torch.fake_quantize_per_tensor_affine(w, float(scale), z, lo, hi)
    if zero is None:
        zero = torch.zeros(len(scale), dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale.float(), zero.to(torch.int32), 0, lo, hi)


def affine_qparams(
    lo: torch.Tensor, hi: torch.Tensor, qmin: int, qmax: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, integer zero point) of an affine grid over ``[lo, hi]`` (per entry), as torch's
    ``MinMaxObserver`` computes them: the range is widened to hold 0 (zero padding and ReLU zeros
    stay exact), ``scale = (hi - lo) / (qmax - qmin)``, ``zero = qmin - round(lo / scale)``."""
    lo = torch.clamp(lo.float(), max=0.0)
    hi = torch.clamp(hi.float(), min=0.0)
    span = hi - lo
    # an all-zero range gets any positive scale: everything quantizes to the zero point
    scale = torch.where(span > 0, span / float(qmax - qmin), torch.ones_like(span))
    zero = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int32)
    return scale, zero


def _grid_rows(w: torch.Tensor, bits, granularity: str) -> tuple[int, torch.Tensor]:
    """Checked ``bits`` and ``w`` as the rows that each get one grid: one per output channel
    (dim 0) or a single row for the whole tensor."""
    bits = check_bits(bits, allow_float=True)
    if bits == FLOAT:
        raise ValueError("a float layer has no scale")
    if granularity not in ("channel", "tensor"):
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    w = w.detach().float()
    return bits, w.reshape(len(w), -1) if granularity == "channel" else w.reshape(1, -1)


def weight_scale(
    w: torch.Tensor, bits: int, granularity: str = "channel", clipping: str = "minmax"
) -> torch.Tensor:
    """The quantization step: one per output channel (dim 0) or a scalar for the whole tensor."""
    bits, flat = _grid_rows(w, bits, granularity)
    peak = flat.abs().amax(1)
    # an all-zero channel gets any positive scale: it quantizes to zero either way
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    qmax = _qrange(bits)[1]
    if clipping == "minmax":
        scale = peak / qmax
    elif clipping == "mse":
        candidates = torch.stack([peak * a / qmax for a in MSE_GRID])  # (grid, channels)
        errors = torch.stack([
            ((_fake_quant(flat, c if granularity == "channel" else c[0], bits) - flat) ** 2).sum(1)
            for c in candidates
        ])  # fmt: skip
        scale = candidates.gather(0, errors.argmin(0, keepdim=True))[0]
    else:
        raise ValueError(f"clipping must be 'minmax' or 'mse', got {clipping!r}")
    return scale if granularity == "channel" else scale[0]


def affine_weight_qparams(
    w: torch.Tensor, bits: int, granularity: str = "channel", clipping: str = "minmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero point) of an affine (asymmetric) signed ``bits``-bit grid for ``w``: one per
    output channel (dim 0) or scalars for the whole tensor. ``minmax``: the grid spans
    ``[min(w, 0), max(w, 0)]``; ``mse``: ``alpha`` times that range, ``alpha`` from
    :data:`MSE_GRID` minimising the squared error (the zero point barely moves with ``alpha``)."""
    bits, flat = _grid_rows(w, bits, granularity)
    lo, hi = flat.amin(1), flat.amax(1)
    qmin, qmax = _qrange(bits)
    if clipping == "minmax":
        scale, zero = affine_qparams(lo, hi, qmin, qmax)
    elif clipping == "mse":
        cands = [affine_qparams(lo * a, hi * a, qmin, qmax) for a in MSE_GRID]
        errors = torch.stack([
            ((_fake_quant(flat, s if granularity == "channel" else s[0], bits,
                          z if granularity == "channel" else z[0]) - flat) ** 2).sum(1)
            for s, z in cands
        ])  # fmt: skip
        best = errors.argmin(0, keepdim=True)
        scale = torch.stack([s for s, _ in cands]).gather(0, best)[0]
        zero = torch.stack([z for _, z in cands]).gather(0, best)[0]
    else:
        raise ValueError(f"clipping must be 'minmax' or 'mse', got {clipping!r}")
    return (scale, zero) if granularity == "channel" else (scale[0], zero[0])


def quantize_weight(
    w: torch.Tensor,
    bits: Bits,
    granularity: str = "channel",
    clipping: str = "minmax",
    scheme: str = "symmetric",
) -> torch.Tensor:
    """``w`` rounded to its signed ``bits``-bit grid (float values on the grid): symmetric (zero
    point 0) or ``affine`` (a zero point per scale, :func:`affine_weight_qparams`)."""
    bits = check_bits(bits, allow_float=True)
    if scheme not in ("symmetric", "affine"):
        raise ValueError(f"weight scheme must be 'symmetric' or 'affine', got {scheme!r}")
    if bits == FLOAT:
        return w.detach().clone()
    if scheme == "affine":
        scale, zero = affine_weight_qparams(w, bits, granularity, clipping)
        return _fake_quant(w.detach().float(), scale, bits, zero).to(w.dtype)
    return _fake_quant(w.detach().float(), weight_scale(w, bits, granularity, clipping), bits).to(w.dtype)


def fold_batchnorm(model: Model) -> Model:
    """A copy of ``model`` with each BatchNorm folded into its convolution (eval-mode outputs equal)."""
    model = copy.deepcopy(model).eval()
    for block in model.layers.values():
        if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()
    return model


def clipping_profile(model: Model, bits: int, fold_bn: bool = True) -> dict[str, dict[str, float]]:
    """Per weight layer at ``bits`` (per-channel symmetric grids): the clipping ratio the MSE search
    picks (``alpha``: its scale over the min-max one, averaged over channels) and the relative
    squared weight error ``||Q(W) - W||^2 / ||W||^2`` of min-max and of MSE clipping. Chapter 3:
    why minimising the weight error is not minimising the accuracy lost."""
    net = fold_batchnorm(model) if fold_bn else model
    out = {}
    for name, layer in net.layers.items():
        w = weight_module(layer).weight.detach()
        ratio = weight_scale(w, bits, "channel", "mse") / weight_scale(w, bits, "channel", "minmax")
        norm = float((w**2).sum())
        err = {c: float(((quantize_weight(w, bits, "channel", c) - w) ** 2).sum()) / norm for c in CLIPPINGS}
        out[name] = {"alpha": float(ratio.mean()), "error_minmax": err["minmax"], "error_mse": err["mse"]}
    return out


def weight_module(layer: nn.Module) -> nn.Conv2d | nn.Linear:
    """The module holding a weight layer's weight (a conv block's convolution), also inside the
    activation quantizers :func:`quantize_model` wraps a layer in."""
    for m in layer.modules():  # the layer itself first, then depth first: a block's conv
        if isinstance(m, nn.Conv2d | nn.Linear):
            return m
    raise ValueError(f"no convolution or linear layer in {type(layer).__name__}")


class ActQuant(nn.Module):
    """Per-tensor fake quantization of an activation on the grid ``scale * (k - zero_point)``,
    ``k`` in ``[0, 2**bits - 1]``: unsigned (zero point 0) after a ReLU, affine on a signed tensor
    (the network input, the logits)."""

    def __init__(self, bits: int, scale: float, zero_point: int = 0) -> None:
        super().__init__()
        self.bits, self.scale, self.zero_point = bits, float(scale), int(zero_point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 2**self.bits - 1)

    def extra_repr(self) -> str:
        zero = f", zero_point={self.zero_point}" if self.zero_point else ""
        return f"bits={self.bits}, scale={self.scale:.4g}{zero}"


def histogram_qparams(x: torch.Tensor, bits: int) -> tuple[float, int]:
    """(scale, zero point) that torch.ao's ``HistogramObserver`` gives ``x`` for an affine
    per-tensor grid ``[0, 2**bits - 1]`` (zero point 0 for non-negative ``x``).

    The observer picks the range that minimises the L2 quantization error on a 2048-bin
    histogram. It sizes that error by the dtype's 256 levels whatever ``quant_max`` is, so its
    ``dst_nbins`` is set to the ``2**bits`` levels actually used (a no-op at 8 bits).
    """
    from torch.ao.quantization.observer import HistogramObserver  # torch.ao loads slowly: only here

    qmax = 2**bits - 1
    obs = HistogramObserver(dtype=torch.quint8 if bits <= 8 else torch.int32,
                            qscheme=torch.per_tensor_affine, quant_min=0, quant_max=qmax)  # fmt: skip
    obs.dst_nbins = qmax + 1
    obs(x.detach().float().flatten().cpu())
    scale, zero = obs.calculate_qparams()
    return float(scale), int(zero)


def _percentile(flat: torch.Tensor, q: float) -> float:
    """numpy's (linearly interpolated) ``q``-th percentile of a flat tensor."""
    return float(np.percentile(flat.cpu().numpy(), q))


def _subsample(flat: torch.Tensor, max_samples: int) -> torch.Tensor:
    """A fixed subsample of at most ``max_samples`` values: the MSE search sees every layer equally."""
    if flat.numel() <= max_samples:
        return flat
    return flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:max_samples]]


def activation_scale(
    x: torch.Tensor, bits: int, clipping: str = "mse", max_samples: int = 200_000, percentile: float = 99.99
) -> float:
    """Step of an unsigned ``bits``-bit grid for activations ``x`` (ReLU outputs, so >= 0).

    ``mse``: the clipping of :data:`MSE_GRID` with the least squared error on a fixed subsample of
    ``max_samples`` values; ``minmax``: the largest value; ``percentile``: the ``percentile``-th
    percentile (the largest value when that is 0: a mostly-zero ReLU output); ``histogram``:
    :func:`histogram_qparams`.
    """
    flat = x.detach().float().flatten().clamp_min(0)
    qmax = 2**bits - 1
    if clipping == "minmax":  # every value, not the MSE search's subsample: an extreme is rare
        return (float(flat.max()) or 1.0) / qmax
    if clipping == "percentile":
        return (_percentile(flat, percentile) or float(flat.max()) or 1.0) / qmax
    if clipping == "histogram":
        return histogram_qparams(flat, bits)[0]
    if clipping != "mse":
        raise ValueError(f"activation clipping must be one of {ACT_CLIPPINGS}, got {clipping!r}")
    flat = _subsample(flat, max_samples)
    peak = float(flat.max()) or 1.0
    errors = [
        float(((torch.fake_quantize_per_tensor_affine(flat, peak * a / qmax, 0, 0, qmax) - flat) ** 2).sum())
        for a in MSE_GRID
    ]
    return peak * MSE_GRID[int(np.argmin(errors))] / qmax


def activation_qparams(
    x: torch.Tensor,
    bits: int,
    scheme: str = "unsigned",
    clipping: str = "mse",
    percentile: float = 99.99,
    max_samples: int = 200_000,
) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor grid ``[0, 2**bits - 1]`` for activations ``x``.

    ``unsigned``, or any ``x`` without negative values (a ReLU output): :func:`activation_scale`
    and zero point 0 (an affine grid over ``[0, max]`` is that grid). ``affine`` on a signed
    ``x``: :func:`affine_qparams` of its range, that range being its min and max (``minmax``),
    its ``100 - percentile`` and ``percentile`` percentiles, ``alpha`` times its min and max
    (``mse``, ``alpha`` from :data:`MSE_GRID` on the same subsample as the unsigned search) or
    what torch's ``HistogramObserver`` finds (``histogram``).
    """
    if scheme not in ACT_SCHEMES:
        raise ValueError(f"activation scheme must be one of {ACT_SCHEMES}, got {scheme!r}")
    if clipping not in ACT_CLIPPINGS:
        raise ValueError(f"activation clipping must be one of {ACT_CLIPPINGS}, got {clipping!r}")
    flat = x.detach().float().flatten()
    if scheme == "unsigned" or float(flat.min()) >= 0:
        return activation_scale(flat, bits, clipping, max_samples, percentile), 0
    qmax = 2**bits - 1
    if clipping == "histogram":
        return histogram_qparams(flat, bits)
    if clipping == "minmax":
        lo, hi = torch.aminmax(flat)
    elif clipping == "percentile":
        lo, hi = (torch.tensor(_percentile(flat, q)) for q in (100 - percentile, percentile))
    else:  # mse
        flat = _subsample(flat, max_samples)
        lo, hi = torch.aminmax(flat)
        cands = [affine_qparams(lo * a, hi * a, 0, qmax) for a in MSE_GRID]
        fq = torch.fake_quantize_per_tensor_affine
        errors = [float(((fq(flat, float(s), int(z), 0, qmax) - flat) ** 2).sum()) for s, z in cands]
        s, z = cands[int(np.argmin(errors))]
        return float(s), int(z)
    s, z = affine_qparams(lo, hi, 0, qmax)
    return float(s), int(z)


def _relu_outputs(model: Model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each layer's output activation but the last's (its ``act_sites`` module's output after a
    ReLU: what :class:`ActQuant` sees), on calibration images."""
    out: dict[str, torch.Tensor] = {}
    sites = model.act_sites()
    hooks = [holder[key].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.clamp_min(0)))
             for n, (holder, key) in sites.items()]  # fmt: skip
    try:
        with torch.inference_mode():
            model.features(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def sweep_map(bits: Bits, qcfg: QuantConfig, layers: Sequence[str] = LAYER_NAMES) -> dict[str, Bits]:
    """The bit-width map of one point of chapter 3's uniform sweep: ``bits`` for every layer,
    except the first and last at ``qcfg.first_last_bits`` when that is set (a float point stays
    float: it is the reference)."""
    bmap = bit_map(bits, layers)
    if bmap[layers[0]] != FLOAT and qcfg.first_last_bits is not None:
        bmap[layers[0]] = bmap[layers[-1]] = qcfg.first_last_bits
    return bmap


def activation_bits(qcfg: QuantConfig, bmap: Mapping[str, Bits]) -> dict[str, int]:
    """The bits of each activation quantizer under ``qcfg`` and a full bit-width map: the output
    of ``L1``..``L15`` (after its ReLU) and, for ``act_scheme="affine"``, :data:`INPUT` (the
    image into L1). Empty: float activations.

    Each quantized tensor is the input of the next layer: with ``act_bits="match"`` it gets that
    layer's weight bits (none when that layer is float); with an int, ``act_bits``, except the
    inputs of the first and last layers at ``first_last_bits`` when that is set.
    """
    if qcfg.act_bits is None:
        return {}
    layers = list(bmap)
    sites = ([INPUT] if qcfg.act_scheme == "affine" else []) + layers[:-1]
    out: dict[str, int] = {}
    for site in sites:
        nxt = layers[0] if site == INPUT else layers[layers.index(site) + 1]
        if qcfg.act_bits == "match":
            b = bmap[nxt]
        elif qcfg.first_last_bits is not None and nxt in (layers[0], layers[-1]):
            b = qcfg.first_last_bits
        else:
            b = qcfg.act_bits
        if b != FLOAT:
            out[site] = int(b)
    return out


def logit_bits(qcfg: QuantConfig, bmap: Mapping[str, Bits]) -> int | None:
    """The bits of the logits under ``qcfg`` and a bit-width map (None: float logits);
    ``logit_bits="match"``: the classifier's (the last layer's) weight bits."""
    if qcfg.logit_bits == "match":
        b = list(bmap.values())[-1]
        return None if b == FLOAT else int(b)
    return qcfg.logit_bits  # type: ignore[return-value]


def needs_calibration(qcfg: QuantConfig) -> bool:
    """Whether ``qcfg`` needs calibration images: for activation or logit ranges, or for what
    GPTQ, GPFQ and bias correction reconstruct."""
    strong = qcfg.ptq in ("gptq", "gpfq") or qcfg.bias_correction
    return qcfg.act_bits is not None or qcfg.logit_bits is not None or strong


def quantize_model(
    model: Model, bmap: Mapping[str, Bits], qcfg: QuantConfig, calibration: torch.Tensor | None = None
) -> Model:
    """A fake-quantized copy of ``model`` (the original is untouched).

    ``bmap`` is what the weights get (``first_last_bits`` is applied by :func:`sweep_map`, not
    here). ``calibration``: normalised input images for the activation ranges (needed only when
    activations are quantized, :func:`activation_bits`). A fully float map with float
    activations returns an unfolded copy: the float reference is the trained model itself. The
    logits are quantized at the head (:func:`quantize_logits`), not here.
    """
    if qcfg.brevitas:
        raise ValueError(f"ptq={qcfg.ptq!r}, bias correction or equalization: use ltmpq.ptq.quantize_model")
    bmap = bit_map(bmap, list(model.layers))
    acts = activation_bits(qcfg, bmap)
    if not acts and all(b == FLOAT for b in bmap.values()):
        return copy.deepcopy(model).eval()
    q = fold_batchnorm(model) if qcfg.fold_bn else copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, layer in q.layers.items():
            m = weight_module(layer)
            m.weight.copy_(
                quantize_weight(m.weight, bmap[name], qcfg.granularity, qcfg.clipping, qcfg.weight_scheme)
            )
    return add_activation_quantizers(q, bmap, qcfg, calibration)


def add_activation_quantizers(
    q: Model, bmap: Mapping[str, Bits], qcfg: QuantConfig, calibration: torch.Tensor | None
) -> Model:
    """``q`` (weights quantized already) with the activation quantizers of :func:`activation_bits`
    placed after each layer's ReLU (and before L1 for affine activations), their ranges measured
    on ``calibration`` through ``q`` with float activations; ``q`` itself where there are none."""
    acts = activation_bits(qcfg, bmap)
    if acts:
        if calibration is None or len(calibration) == 0:
            raise ValueError("activation quantization (act_bits) needs calibration images")

        def quantizer(x: torch.Tensor, bits: int) -> ActQuant:
            scale, zero = activation_qparams(x, bits, qcfg.act_scheme, qcfg.act_clipping, qcfg.act_percentile)
            return ActQuant(bits, scale, zero)

        # ranges measured on the weight-quantized model with float activations
        outputs = _relu_outputs(q, calibration)
        first = next(iter(q.layers))
        sites = q.act_sites()
        for name in list(q.layers):
            pre = [quantizer(calibration, acts[INPUT])] if name == first and INPUT in acts else []
            post = [quantizer(outputs[name], acts[name])] if name in acts else []
            holder, key = sites.get(name, (q.layers, name))
            if holder is q.layers:  # the VGG's layers end in their ReLU: one wrapper
                if pre or post:
                    q.layers[name] = nn.Sequential(*pre, q.layers[name], *post)
                continue
            if pre:
                q.layers[name] = nn.Sequential(*pre, q.layers[name])
            if post:  # a residual block's ReLU after the addition
                holder[key] = nn.Sequential(holder[key], *post)
    return q


def quantize_head(classifier: nn.Module, bits: Bits, qcfg: QuantConfig) -> nn.Module:
    """A decoupled classifier (chapter 2) with its effective weight matrix quantized as L16.

    Every method is a linear map on the features: a plain linear layer (baseline, cRT, tau-norm),
    LWS with its per-class scales folded into the rows, NCM with its class means as rows (on
    L2-normalised features). The quantized head is that linear map with quantized weights.
    """
    from .decoupling import as_linear  # decoupling imports nothing from here; avoid a cycle anyway

    weight, bias, normalize = as_linear(classifier)
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        head.weight.copy_(quantize_weight(weight, bits, qcfg.granularity, qcfg.clipping, qcfg.weight_scheme))
        if bias is not None:
            head.bias.copy_(bias)
    return nn.Sequential(NormalizeRows(), head) if normalize else head


def quantize_logits(head: nn.Module, features: torch.Tensor, bits: int, qcfg: QuantConfig) -> nn.Module:
    """``head`` followed by an affine per-tensor ``bits``-bit quantizer of its logits, the range
    calibrated (``qcfg.act_clipping``) on ``head(features)``: the calibration images' logits.

    Coarse logits tie: ``argmax`` then takes the lowest class index among the tied, which in
    CIFAR-10-LT is the most frequent class (what a deployed argmax does too).
    """
    with torch.no_grad():
        logits = head(features)
    scale, zero = activation_qparams(logits, bits, "affine", qcfg.act_clipping, qcfg.act_percentile)
    return nn.Sequential(head, ActQuant(bits, scale, zero))


def hypothesis_configs(base: QuantConfig, names: Sequence[str] | None = None) -> dict[str, QuantConfig]:
    """Chapter 5's quantizer hypotheses by name (:data:`~ltmpq.config.QUANT_HYPOTHESES`), each
    applied to ``base`` (a profile's default quantizer)."""
    names = list(QUANT_HYPOTHESES) if names is None else list(names)
    unknown = [n for n in names if n not in QUANT_HYPOTHESES]
    if unknown:
        raise ValueError(f"unknown quantizer hypotheses {unknown}; choose from {list(QUANT_HYPOTHESES)}")
    return {n: replace(base, **QUANT_HYPOTHESES[n]) for n in names}


class NormalizeRows(nn.Module):
    """L2-normalise each feature vector (NCM's input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=1)


def model_size(
    model: Model, bmap: Mapping[str, Bits], granularity: str = "channel", weight_scheme: str = "symmetric"
) -> dict[str, float]:
    """Storage of the weight layers under a bit-width map, in bits and bytes.

    ``weight_bits``: the integer (or float32) weights; ``scale_bits``: one float32 scale per
    output channel (or per layer) of each quantized layer, and with ``affine`` weights its
    ``b``-bit zero point; ``bias_bits``: float32 biases (the folded BatchNorm shift of conv layers
    counts as their bias). ``average_bits``: weight bits per weight, what a bit budget is stated in.
    """
    bmap = bit_map(bmap, list(model.layers))
    if granularity not in ("channel", "tensor"):
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    if weight_scheme not in ("symmetric", "affine"):
        raise ValueError(f"weight scheme must be 'symmetric' or 'affine', got {weight_scheme!r}")
    weight_bits = scale_bits = bias_bits = weights = 0
    for name, layer in model.layers.items():
        m = weight_module(layer)
        n, out = m.weight.numel(), m.weight.shape[0]
        b = bmap[name]
        weights += n
        weight_bits += n * (32 if b == FLOAT else b)
        per_scale = SCALE_BITS + (0 if b == FLOAT or weight_scheme == "symmetric" else b)
        scale_bits += 0 if b == FLOAT else per_scale * (out if granularity == "channel" else 1)
        bias_bits += 32 * out  # conv: folded BN shift; linear: its bias
    total = weight_bits + scale_bits + bias_bits
    return {"weights": weights, "weight_bits": weight_bits, "scale_bits": scale_bits,
            "bias_bits": bias_bits, "total_bits": total, "total_bytes": total / 8,
            "average_bits": weight_bits / weights}  # fmt: skip


def calibration_indices(
    labels: np.ndarray, composition: str, size: int, seed: int, tail_classes: Sequence[int]
) -> np.ndarray:
    """Indices (into ``labels``, the long-tailed training split) of a calibration set.

    ``lt``: a uniform draw, so classes appear as in the long-tailed training set; ``balanced``:
    ``size / num_classes`` per class; ``tail``: ``size / len(tail_classes)`` per tail class
    (remainders go to the lowest classes). Never drawn from test data: the caller passes the
    training split's labels.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if size < 1:
        raise ValueError(f"calibration size must be >= 1, got {size!r}")
    if composition == "lt":
        if size > len(labels):
            raise ValueError(f"calibration size {size} exceeds the {len(labels)} training images")
        return np.sort(rng.choice(len(labels), size, replace=False))
    if composition == "balanced":
        classes = list(range(int(labels.max()) + 1))
    elif composition == "tail":
        classes = list(tail_classes)
    else:
        raise ValueError(f"calibration must be one of ('lt', 'balanced', 'tail'), got {composition!r}")
    per = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    picked = []
    for c, k in zip(classes, per, strict=True):
        pool = np.flatnonzero(labels == c)
        if k > len(pool):
            raise ValueError(
                f"a {composition} calibration set of {size} needs {k} images of class {c}, "
                f"which has {len(pool)} in the training split; use a smaller calibration_size"
            )
        picked.append(rng.choice(pool, k, replace=False))
    return np.sort(np.concatenate(picked))
