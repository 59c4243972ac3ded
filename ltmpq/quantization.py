"""Post-training ("fake") quantization of the VGG16 and of the decoupled classifiers: chapters 3-4.

One description of a quantized model: a **bit-width map** ``{"L1": 8, ..., "L16": "float"}`` that
names every weight layer; chapter 3 uses uniform maps, chapter 4's mixed precision writes
non-uniform ones. How the bits are spent is a :class:`~ltmpq.config.QuantConfig`.

Weights are signed symmetric integers ``q * s`` with ``q`` in ``[-2**(b-1), 2**(b-1) - 1]``;
the rounding is torch's own ``fake_quantize_per_channel_affine`` / ``..._per_tensor_affine``.
The scale is ``max|w| / (2**(b-1) - 1)`` (min-max) or ``alpha * max|w| / (2**(b-1) - 1)`` with
the clipping ratio ``alpha`` that minimises the squared error (MSE). BatchNorm is folded into
the convolution before quantizing (torch's ``fuse_conv_bn_eval``), as deployment does; biases
stay in float32. Activations, when quantized, are unsigned per-tensor after every ReLU.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .config import QuantConfig
from .models import LAYER_NAMES, VGG16

FLOAT = "float"
MIN_BITS, MAX_BITS = 2, 16
#: Clipping ratios searched by the MSE scale (fractions of the largest magnitude).
MSE_GRID = tuple(np.round(np.linspace(0.2, 1.0, 81), 3))
SCALE_BITS = 32  # each scale is stored as a float32

Bits = int | str  # an int in [MIN_BITS, MAX_BITS] or FLOAT


def check_bits(bits: Any, where: str = "bits") -> Bits:
    """``bits`` itself if it is an int in [2, 16] or ``"float"``; a clear error otherwise."""
    if bits == FLOAT:
        return FLOAT
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{where} must be an int in [{MIN_BITS}, {MAX_BITS}] or {FLOAT!r}, got {bits!r}")
    return int(bits)


def bit_map(spec: Bits | Mapping[str, Bits], layers: Sequence[str] = LAYER_NAMES) -> dict[str, Bits]:
    """A complete, checked bit-width map: from one value for every layer, or from a full mapping.

    A mapping must name exactly ``layers``: unknown or missing layer names are errors (a silently
    float layer would inflate a mixed-precision model's accuracy).
    """
    if not isinstance(spec, Mapping):
        b = check_bits(spec)
        return dict.fromkeys(layers, b)
    unknown = [k for k in spec if k not in layers]
    missing = [k for k in layers if k not in spec]
    if unknown or missing:
        raise ValueError(
            f"a bit-width map must name every layer {layers[0]}..{layers[-1]} once: "
            f"unknown {unknown}, missing {missing}"
        )
    return {k: check_bits(spec[k], where=f"bits of {k}") for k in layers}


def map_label(bmap: Mapping[str, Bits]) -> str:
    """``"float"``, ``"8"`` (uniform) or ``"mixed"`` for a bit-width map."""
    values = set(bmap.values())
    return str(values.pop()) if len(values) == 1 else "mixed"


def _qrange(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _fake_quant(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    lo, hi = _qrange(bits)
    if scale.ndim == 0:
        return torch.fake_quantize_per_tensor_affine(w, float(scale), 0, lo, hi)
    zero = torch.zeros(len(scale), dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale.float(), zero, 0, lo, hi)


def weight_scale(
    w: torch.Tensor, bits: int, granularity: str = "channel", clipping: str = "minmax"
) -> torch.Tensor:
    """The quantization step: one per output channel (dim 0) or a scalar for the whole tensor."""
    bits = check_bits(bits)
    if bits == FLOAT:
        raise ValueError("a float layer has no scale")
    if granularity not in ("channel", "tensor"):
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    w = w.detach().float()
    flat = w.reshape(len(w), -1) if granularity == "channel" else w.reshape(1, -1)
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


def quantize_weight(
    w: torch.Tensor, bits: Bits, granularity: str = "channel", clipping: str = "minmax"
) -> torch.Tensor:
    """``w`` rounded to its signed symmetric ``bits``-bit grid (float values on the grid)."""
    bits = check_bits(bits)
    if bits == FLOAT:
        return w.detach().clone()
    return _fake_quant(w.detach().float(), weight_scale(w, bits, granularity, clipping), bits).to(w.dtype)


def fold_batchnorm(model: VGG16) -> VGG16:
    """A copy of ``model`` with each BatchNorm folded into its convolution (eval-mode outputs equal)."""
    model = copy.deepcopy(model).eval()
    for block in model.layers.values():
        if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()
    return model


def weight_module(layer: nn.Module) -> nn.Conv2d | nn.Linear:
    """The module holding a weight layer's weight (a conv block's convolution)."""
    return layer[0] if isinstance(layer, nn.Sequential) else layer  # type: ignore[return-value]


class ActQuant(nn.Module):
    """Unsigned per-tensor fake quantization of a non-negative activation (after a ReLU)."""

    def __init__(self, bits: int, scale: float) -> None:
        super().__init__()
        self.bits, self.scale = bits, float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, 0, 0, 2**self.bits - 1)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, scale={self.scale:.4g}"


def activation_scale(x: torch.Tensor, bits: int, clipping: str = "mse", max_samples: int = 200_000) -> float:
    """Step of an unsigned ``bits``-bit grid for activations ``x`` (ReLU outputs, so >= 0)."""
    flat = x.detach().float().flatten().clamp_min(0)
    if flat.numel() > max_samples:  # a fixed subsample: the MSE search sees every layer equally
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:max_samples]]
    peak = float(flat.max()) or 1.0
    qmax = 2**bits - 1
    if clipping == "minmax":
        return peak / qmax
    errors = [
        float(((torch.fake_quantize_per_tensor_affine(flat, peak * a / qmax, 0, 0, qmax) - flat) ** 2).sum())
        for a in MSE_GRID
    ]
    return peak * MSE_GRID[int(np.argmin(errors))] / qmax


def _relu_outputs(model: VGG16, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each of L1..L15's output after its ReLU (what :class:`ActQuant` sees), on calibration images."""
    out: dict[str, torch.Tensor] = {}
    hooks = [model.layers[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.clamp_min(0)))
             for n in LAYER_NAMES[:-1]]  # fmt: skip
    try:
        with torch.inference_mode():
            model.features(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def quantize_model(
    model: VGG16, bmap: Mapping[str, Bits], qcfg: QuantConfig, calibration: torch.Tensor | None = None
) -> VGG16:
    """A fake-quantized copy of ``model`` (the original is untouched).

    ``calibration``: normalised input images for the activation ranges (needed only when
    ``qcfg.act_bits`` is set). A fully float map with float activations returns an unfolded
    copy: the float reference is the trained model itself.
    """
    bmap = bit_map(bmap, list(model.layers))
    quantize_acts = qcfg.act_bits is not None
    if not quantize_acts and all(b == FLOAT for b in bmap.values()):
        return copy.deepcopy(model).eval()
    q = fold_batchnorm(model) if qcfg.fold_bn else copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, layer in q.layers.items():
            m = weight_module(layer)
            m.weight.copy_(quantize_weight(m.weight, bmap[name], qcfg.granularity, qcfg.clipping))
    if quantize_acts:
        if calibration is None or len(calibration) == 0:
            raise ValueError("activation quantization (act_bits) needs calibration images")
        # ranges measured on the weight-quantized model with float activations
        acts = _relu_outputs(q, calibration)
        for name, a in acts.items():
            scale = activation_scale(a, qcfg.act_bits)
            q.layers[name] = nn.Sequential(q.layers[name], ActQuant(qcfg.act_bits, scale))
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
        head.weight.copy_(quantize_weight(weight, bits, qcfg.granularity, qcfg.clipping))
        if bias is not None:
            head.bias.copy_(bias)
    return nn.Sequential(NormalizeRows(), head) if normalize else head


class NormalizeRows(nn.Module):
    """L2-normalise each feature vector (NCM's input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=1)


def model_size(model: VGG16, bmap: Mapping[str, Bits], granularity: str = "channel") -> dict[str, float]:
    """Storage of the weight layers under a bit-width map, in bits and bytes.

    ``weight_bits``: the integer (or float32) weights; ``scale_bits``: one float32 scale per
    output channel (or per layer) of each quantized layer; ``bias_bits``: float32 biases (the
    folded BatchNorm shift of conv layers counts as their bias). ``average_bits``: weight bits
    per weight, what a bit budget is stated in.
    """
    bmap = bit_map(bmap, list(model.layers))
    if granularity not in ("channel", "tensor"):
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    weight_bits = scale_bits = bias_bits = weights = 0
    for name, layer in model.layers.items():
        m = weight_module(layer)
        n, out = m.weight.numel(), m.weight.shape[0]
        b = bmap[name]
        weights += n
        weight_bits += n * (32 if b == FLOAT else b)
        scale_bits += 0 if b == FLOAT else SCALE_BITS * (out if granularity == "channel" else 1)
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
