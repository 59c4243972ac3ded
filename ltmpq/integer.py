"""Chapter 5: real integer inference. Does the simulated ("fake") W8A8 quantization predict it?

Chapters 3-4 *simulate* quantization (:func:`ltmpq.quantization.quantize_model`): weights and
activations are rounded to their integer grids, but every product and sum is float32. Here the
same quantized network runs through PyTorch's int8 CPU kernels (``torch.ao.nn.quantized`` on
the ``x86`` or ``fbgemm`` engine): uint8 activations times int8 weights, int32 sums,
requantization to the next layer's uint8 grid.

The integer model is built *from* the simulated one, so that nothing is re-estimated:

* weights: the simulation's integers with its scales (:func:`~ltmpq.quantization.weight_scale`
  of the BN-folded weights, per output channel or per tensor, min-max or MSE) as ``qint8``; the
  build checks that they give back the simulated weights;
* activations: the scale of the simulation's :class:`~ltmpq.quantization.ActQuant` after each
  of L1..L15's ReLU, zero point 0, is that layer's output scale, the ReLU fused into the kernel
  (it clamps at the zero point, as ActQuant's ``quant_min`` 0 does). Max-pooling and
  flattening work on the quantized tensors and are exact;
* the input image: the simulation feeds L1 float pixels, the kernels need a quantized input.
  It gets one per-tensor uint8 scale and zero point from the calibration images' min and max
  (:func:`input_qparams`). **This rounding is extra: the simulation does not have it.** It is
  about half a pixel step of normalised CIFAR, and on the smoke models of the tests it causes
  most of the disagreement. :func:`compare_models` compares with the simulation as chapter 3
  ran it; ``round_sim_input=True`` gives the simulation the same rounded input, which leaves
  only the kernels' differences. (A config whose simulation quantizes the input itself,
  ``act_scheme="affine"``, lends the integer model that input grid.)
* biases: the engines keep them in float32 and add ``b / (s_in * s_w)`` to the int32 sum before
  requantizing. They are *not* rounded to int32 at ``s_in * s_w`` (``tests/test_integer.py``
  checks this), so they equal the simulation's float biases;
* L16 (the logits): an int8 GEMM with float32 output (fbgemm's
  ``linear_with_input_q_dq_qweight_dq_output_fp32``), like the simulation's float logits: no
  output grid, no rounding of the logits.

What still differs: float32 sums against exact integer ones, and how ``acc * s_in * s_w /
s_out`` is rounded. Now and then an activation lands one step away, and the step travels on.

**int16 saturation.** Without VNNI (AVX2, AVX-512 without VNNI) fbgemm multiplies uint8 by int8
with ``vpmaddubsw``, which adds two products into an int16 that saturates at 32767. ``255 * 127
* 2`` overflows it. The raw codes are multiplied, before the zero point is taken off, so a
bright pixel (input code near 255) next to a large weight can do it. This is why torch's
default x86 qconfig gives activations 7 bits (``reduce_range=True``). VNNI (``vpdpbusd``) sums
in int32 and is exact. ``reduce_range=True`` here gives the input and every activation 7 bits
(codes 0..127, clamped; the scales from the ``act_bits=7`` simulation), so no pair can
saturate. The integer model is then the W8A7 simulation's counterpart, not W8A8's.
:func:`integer_model` warns when the CPU lacks VNNI and ``reduce_range`` is off. Setting
``FBGEMM_ENABLE_INSTRUCTIONS=AVX2`` makes fbgemm compute as it would without VNNI (the tests
do this in a subprocess).

torch marks its eager-mode quantized tensors deprecated (pytorch issue 184982). The warning is
silenced here; the kernels are not affected.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace

import numpy as np
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
from torch import nn

from .config import QuantConfig
from .models import VGG16
from .quantization import ActQuant, bit_map, fold_batchnorm, quantize_head, quantize_model, weight_scale
from .vocab import LAYER_NAMES

#: Engines with int8 x86 kernels (torch's ``x86`` runs fbgemm, or oneDNN for some convolutions).
ENGINES = ("x86", "fbgemm")
WEIGHT_BITS = ACT_BITS = 8
REDUCED_BITS = 7  # reduce_range: input and activations on codes 0..127
_DEPRECATION = ".*quantized tensor creation functions.*deprecated.*"
# QuantConfig fields that the integer model takes over from the simulation, whatever their value ...
_FREE = ("granularity", "clipping", "calibration", "calibration_size", "calibration_seed",
         "act_scheme", "act_clipping", "act_percentile")  # fmt: skip
# ... and those with values the int8 kernels cannot run otherwise (any other field: its default)
_ALLOWED = {"act_bits": (8, "match"), "fold_bn": (True,), "weight_scheme": ("symmetric",),
            "first_last_bits": (None, 8), "logit_bits": (None,)}  # fmt: skip
_HINTS = {"act_bits": " (dataclasses.replace(qcfg, act_bits=8))",
          "fold_bn": ": BatchNorm must be folded into the convolutions",
          "logit_bits": ": the integer model's logits are float"}  # fmt: skip


def supported_engines() -> list[str]:
    """The quantized engines this torch build offers here (``torch.backends.quantized``)."""
    return list(torch.backends.quantized.supported_engines)


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES` and available here; a one-line error otherwise."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    available = supported_engines()
    if engine not in available:
        raise ValueError(
            f"quantized engine {engine!r} is not available on this machine "
            f"(torch.backends.quantized.supported_engines: {available}); integer inference needs x86/fbgemm"
        )
    return engine


def vnni_available() -> bool | None:
    """Whether fbgemm sums uint8 x int8 products in int32 (VNNI) here; None: unknown.

    Honours ``FBGEMM_ENABLE_INSTRUCTIONS`` (fbgemm's own override), else reads ``/proc/cpuinfo``.
    """
    forced = os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS", "").upper()
    if forced:
        return "_E1" in forced  # AVX512_E1[_256]: VNNI; AVX2, AVX512[_256]: none
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return None
    return "avx512_vnni" in flags


@contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Run with ``torch.backends.quantized.engine = engine`` (restored afterwards): packed weights
    belong to one engine, so they are built and run under the same one."""
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DEPRECATION)
            yield
    finally:
        torch.backends.quantized.engine = old


def check_qcfg(qcfg: QuantConfig) -> QuantConfig:
    """``qcfg`` if its simulation has an int8 counterpart (8-bit activations, BN folded, symmetric
    weights, float logits); a one-line error naming the field otherwise."""
    if not isinstance(qcfg, QuantConfig):
        raise ValueError(f"qcfg must be a QuantConfig, got {type(qcfg).__name__}")
    for f in fields(qcfg):
        if f.name in _FREE:
            continue
        value, allowed = getattr(qcfg, f.name), _ALLOWED.get(f.name, (f.default,))
        # `in` alone would take True for 1: compare types too
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ValueError(
                f"integer inference runs int8 kernels: {f.name} must be "
                f"{' or '.join(map(repr, allowed))}{_HINTS.get(f.name, '')}, got {value!r}"
            )
    return qcfg


def _check_images(x: torch.Tensor | None, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or len(x) == 0 or x.shape[1] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a non-empty (N, 3, H, W) tensor of normalised images, got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be float (normalised images, ltmpq.training.to_input), got {x.dtype}")
    return x


def input_qparams(calibration: torch.Tensor, bits: int = ACT_BITS) -> tuple[float, int]:
    """Per-tensor ``(scale, zero_point)`` of the unsigned ``bits``-bit input, from min and max.

    The range always holds 0 and the zero point is an integer, so real 0 (the convolution's
    zero padding) is exact.
    """
    calibration = _check_images(calibration, "calibration")
    qmax = 2**bits - 1
    lo, hi = min(float(calibration.min()), 0.0), max(float(calibration.max()), 0.0)
    scale = (hi - lo) / qmax if hi > lo else 1.0
    return scale, int(np.clip(round(-lo / scale), 0, qmax))


def _act_bits(reduce_range: bool) -> int:
    return REDUCED_BITS if reduce_range else ACT_BITS


def simulated_model(
    model: VGG16,
    qcfg: QuantConfig,
    calibration: torch.Tensor,
    *,
    head: nn.Module | None = None,
    reduce_range: bool = False,
) -> VGG16:
    """The fake-quantized counterpart of :func:`integer_model`: every weight 8 bits, activations
    8 bits (7 with ``reduce_range``); ``head``, a decoupled classifier, as L16."""
    check_qcfg(qcfg)
    calibration = _check_images(calibration, "calibration")
    if not isinstance(model, VGG16):
        raise ValueError(f"model must be an ltmpq.models.VGG16, got {type(model).__name__}")
    if not isinstance(reduce_range, bool):
        raise ValueError(f"reduce_range must be True or False, got {reduce_range!r}")
    changes: dict = {"act_bits": _act_bits(reduce_range)}
    if hasattr(qcfg, "first_last_bits"):  # first/last at 8 bits is then what every layer gets
        changes["first_last_bits"] = None
    sim = quantize_model(
        model, bit_map(WEIGHT_BITS, list(model.layers)), replace(qcfg, **changes), calibration
    )
    if head is not None:
        from .decoupling import as_linear  # imported here, as quantization.quantize_head does

        if as_linear(head)[2]:
            raise ValueError(
                f"head {type(head).__name__} L2-normalises the features (NCM): it has no integer form; "
                "use a linear head (baseline, cRT, tau-norm, LWS)"
            )
        sim.layers["L16"] = quantize_head(head, WEIGHT_BITS, qcfg)
    return sim


def _weight_layer(block: nn.Module) -> nn.Conv2d | nn.Linear:
    for m in block.modules():  # the block itself first, then depth first: a conv block's conv
        if isinstance(m, nn.Conv2d | nn.Linear):
            return m
    raise RuntimeError(f"no convolution or linear layer in {type(block).__name__}")


def _parts(block: nn.Module) -> tuple[ActQuant | None, nn.Conv2d | nn.Linear, ActQuant | None]:
    """(input quantizer, weight layer, output quantizer) of a simulated layer: quantize_model wraps
    a layer as ``Sequential([ActQuant,] layer, ActQuant)``."""
    mods = list(block) if isinstance(block, nn.Sequential) else [block]
    pre = mods[0] if isinstance(mods[0], ActQuant) else None
    post = mods[-1] if len(mods) > 1 and isinstance(mods[-1], ActQuant) else None
    return pre, _weight_layer(block), post


def _float_weight(folded: VGG16, name: str, head: nn.Module | None) -> torch.Tensor:
    """The float weight the simulation quantized (BN folded; L16: the head's linear map)."""
    if name == "L16" and head is not None:
        from .decoupling import as_linear

        return as_linear(head)[0]
    return _weight_layer(folded.layers[name]).weight.detach()


def _qint8(w_sim: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``w_sim`` (already on its grid) as qint8 with ``scale``; checked to give ``w_sim`` back."""
    w_sim = w_sim.detach().float()
    if scale.ndim:
        zeros = torch.zeros(len(scale), dtype=torch.long)
        qw = torch.quantize_per_channel(w_sim, scale.double(), zeros, 0, torch.qint8)
    else:
        qw = torch.quantize_per_tensor(w_sim, float(scale), 0, torch.qint8)
    # on the grid already: rounding again must change nothing (else the scales are not the simulation's)
    if not torch.allclose(qw.dequantize(), w_sim, rtol=0, atol=1e-6 * float(scale.max())):
        raise RuntimeError("the int8 weights do not reproduce the simulated weights: scales differ")
    return qw


class QuantClamp(nn.Module):
    """Clamp a quantized tensor to the codes ``0..qmax`` (``reduce_range``: 7 bits in uint8)."""

    def __init__(self, qmax: int) -> None:
        super().__init__()
        self.qmax = qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, z = x.q_scale(), x.q_zero_point()
        return torch.clamp(x, -z * s, (self.qmax - z) * s)  # a quantized kernel: exact on the grid

    def extra_repr(self) -> str:
        return f"qmax={self.qmax}"


class FloatLogitsLinear(nnq.Linear):
    """A quantized Linear (uint8 x int8, int32 sums) whose output is float32, not requantized
    (L16: the logits). Its ``scale``/``zero_point`` (an output grid) are unused."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the op quantizes its float input at (scale, zero point): exact, x is on that grid already
        return torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
            x.dequantize(), x.q_scale(), x.q_zero_point(), self._packed_params._packed_params
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, output=float32"

    def _get_name(self) -> str:
        return "FloatLogitsLinear"


def integer_layer(
    layer: nn.Conv2d | nn.Linear, scale: torch.Tensor, out_scale: float | None, qmax: int = 255
) -> nn.Module:
    """One weight layer on int8 kernels (build it under :func:`quantized_engine`).

    ``layer``'s weight must lie on the grid of ``scale`` (per output channel, or a scalar);
    its bias stays float. ``out_scale``: ReLU fused, output requantized at ``out_scale`` with
    zero point 0 (codes clamped to ``0..qmax``); None: a Linear with float32 output.
    """
    qw = _qint8(layer.weight, scale)
    bias = None if layer.bias is None else layer.bias.detach().float()
    if isinstance(layer, nn.Conv2d):
        if out_scale is None:
            raise ValueError("a convolution needs an output scale (only the logits stay float)")
        q: nn.Module = nniq.ConvReLU2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                       layer.stride, layer.padding, layer.dilation, layer.groups)  # fmt: skip
    elif out_scale is None:
        q = FloatLogitsLinear(layer.in_features, layer.out_features)
    else:
        q = nniq.LinearReLU(layer.in_features, layer.out_features)
    q.set_weight_bias(qw, bias)
    q.scale, q.zero_point = (1.0, 0) if out_scale is None else (float(out_scale), 0)
    return q if out_scale is None or qmax == 255 else nn.Sequential(q, QuantClamp(qmax))


class IntegerVGG16(nn.Module):
    """A W8A8 (W8A7 with ``reduce_range``) VGG16 on int8 kernels: float images in, float logits out."""

    def __init__(
        self,
        quant: nnq.Quantize,
        layers: dict[str, nn.Module],
        pool_after: set[str],
        engine: str,
        reduce_range: bool,
    ) -> None:
        super().__init__()
        self.quant = quant
        self.input_clamp = QuantClamp(2**REDUCED_BITS - 1) if reduce_range else nn.Identity()
        self.layers = nn.ModuleDict(layers)
        self.pool = nn.MaxPool2d(2)  # on quantized tensors: a max of integer codes, exact
        self.pool_after = set(pool_after)
        self.engine, self.reduce_range = engine, reduce_range

    @property
    def input_scale(self) -> float:
        return float(self.quant.scale)

    @property
    def input_zero_point(self) -> int:
        return int(self.quant.zero_point)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized image that L1 sees."""
        with quantized_engine(self.engine):
            return self.input_clamp(self.quant(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quantize_input(x)
        with quantized_engine(self.engine):
            for i in range(1, 14):
                name = f"L{i}"
                q = self.layers[name](q)
                if name in self.pool_after:
                    q = self.pool(q)
            q = torch.flatten(q, 1)
            q = self.layers["L15"](self.layers["L14"](q))
            return self.layers["L16"](q)


def _convert(
    sim: VGG16, folded: VGG16, qcfg: QuantConfig, calibration: torch.Tensor, head: nn.Module | None,
    engine: str, reduce_range: bool,
) -> IntegerVGG16:  # fmt: skip
    """The integer model of a simulated one (``folded``: the float weights that it quantized)."""
    bits = _act_bits(reduce_range)
    layers: dict[str, nn.Module] = {}
    qparams = input_qparams(calibration, bits)
    for name in LAYER_NAMES:
        pre, m, post = _parts(sim.layers[name])
        if pre is not None:  # the simulation quantizes the image itself (act_scheme="affine")
            if name != "L1" or pre.bits != bits:
                raise RuntimeError(f"{name}: unexpected input quantizer {pre} in the simulated model")
            qparams = (pre.scale, int(getattr(pre, "zero_point", 0)))
        if name != "L16" and (post is None or post.bits != bits or getattr(post, "zero_point", 0) != 0):
            raise RuntimeError(
                f"{name}: expected an unsigned {bits}-bit ActQuant in the simulated model, got {post}"
            )
        if name == "L16" and post is not None:
            raise RuntimeError("L16: the simulated logits are quantized; the integer model's are float")
        scale = weight_scale(_float_weight(folded, name, head), WEIGHT_BITS, qcfg.granularity, qcfg.clipping)
        try:
            layers[name] = integer_layer(m, scale, None if post is None else post.scale, 2**bits - 1)
        except RuntimeError as e:
            raise RuntimeError(f"{name}: {e}") from None
    quant = nnq.Quantize(qparams[0], qparams[1], torch.quint8)
    return IntegerVGG16(quant, layers, sim.pool_after, engine, reduce_range).eval()


def _build(
    model: VGG16, qcfg: QuantConfig, calibration: torch.Tensor, head: nn.Module | None,
    engine: str, reduce_range: bool,
) -> tuple[VGG16, IntegerVGG16]:  # fmt: skip
    check_engine(engine)
    sim = simulated_model(model, qcfg, calibration, head=head, reduce_range=reduce_range)
    if not reduce_range and vnni_available() is False:
        warnings.warn(
            "this CPU has no VNNI: fbgemm sums pairs of uint8 x int8 products in int16, which can "
            "saturate with 8-bit activations; integer_model(..., reduce_range=True) (7-bit activations) "
            "cannot saturate",
            RuntimeWarning,
            stacklevel=3,
        )
    with quantized_engine(engine):
        return sim, _convert(sim, fold_batchnorm(model), qcfg, calibration, head, engine, reduce_range)


def integer_model(
    model: VGG16,
    qcfg: QuantConfig,
    calibration: torch.Tensor,
    *,
    head: nn.Module | None = None,
    reduce_range: bool = False,
    engine: str = "x86",
) -> IntegerVGG16:
    """``quantize_model(model, 8-bit map, qcfg, calibration)`` (``qcfg.act_bits`` 8) on int8 kernels.

    ``calibration``: the normalised images that the simulation calibrates its activation
    scales on; they also give the input's grid (:func:`input_qparams`). ``head``: a linear
    decoupled classifier as L16, quantized as :func:`~ltmpq.quantization.quantize_head` does.
    ``reduce_range``: 7-bit input and activations (no int16 saturation without VNNI; the
    counterpart of the ``act_bits=7`` simulation). Takes float images, returns float logits.
    """
    return _build(model, qcfg, calibration, head, engine, reduce_range)[1]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


@torch.inference_mode()
def logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``model``'s float logits on ``images``, ``batch_size`` at a time."""
    _check_batch_size(batch_size)
    images = _check_images(images, "images")
    model.eval()
    return torch.cat([model(images[i : i + batch_size]).float() for i in range(0, len(images), batch_size)])


def _per_class(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float]:
    return [float(np.mean(pred[labels == c] == c)) if (labels == c).any() else float("nan")
            for c in range(num_classes)]  # fmt: skip


def compare(sim_logits: torch.Tensor, int_logits: torch.Tensor, labels) -> dict:
    """How the integer model's logits differ from the simulation's on the same images.

    ``agreement``: the fraction of images whose argmax agrees; ``sim_accuracy``,
    ``int_accuracy``; ``sim_per_class``, ``int_per_class``: accuracy per true class (NaN for a
    class without images) and ``per_class_difference`` (integer - simulated);
    ``max_abs_logit_difference``; ``n`` images.
    """
    sim_logits, int_logits = torch.as_tensor(sim_logits).float(), torch.as_tensor(int_logits).float()
    if sim_logits.ndim != 2 or sim_logits.shape != int_logits.shape:
        raise ValueError(
            "sim_logits and int_logits must be (N, classes) of the same shape, "
            f"got {tuple(sim_logits.shape)} and {tuple(int_logits.shape)}"
        )
    n, k = sim_logits.shape
    if n == 0:
        raise ValueError("compare needs at least one image, got 0")
    y = np.asarray(labels).reshape(-1)
    if len(y) != n or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
        got = f"{len(y)} {y.dtype} labels" + (f" in [{y.min()}, {y.max()}]" if len(y) else "")
        raise ValueError(f"labels must be {n} class indices in [0, {k}), got {got}")
    ps, pi = sim_logits.argmax(1).numpy(), int_logits.argmax(1).numpy()
    acc_s, acc_i = _per_class(ps, y, k), _per_class(pi, y, k)
    return {
        "n": n,
        "agreement": float(np.mean(ps == pi)),
        "sim_accuracy": float(np.mean(ps == y)),
        "int_accuracy": float(np.mean(pi == y)),
        "sim_per_class": acc_s,
        "int_per_class": acc_i,
        "per_class_difference": [b - a for a, b in zip(acc_s, acc_i, strict=True)],
        "max_abs_logit_difference": float((sim_logits - int_logits).abs().max()),
    }


def compare_models(
    model: VGG16,
    qcfg: QuantConfig,
    calibration: torch.Tensor,
    images: torch.Tensor,
    labels,
    *,
    head: nn.Module | None = None,
    reduce_range: bool = False,
    engine: str = "x86",
    batch_size: int = 256,
    round_sim_input: bool = False,
) -> dict:
    """:func:`compare` of the simulated and the integer model (each built once) on ``images``.

    ``round_sim_input``: the simulation sees the integer model's rounded input (its quantized
    image, dequantized) instead of the float images, so that what is left is the kernels'
    doing. The result also holds ``input_scale``, ``input_zero_point``, ``reduce_range``,
    ``engine`` and ``round_sim_input``.
    """
    images = _check_images(images, "images")
    _check_batch_size(batch_size)
    sim, intm = _build(model, qcfg, calibration, head, engine, reduce_range)
    sim_in = images
    if round_sim_input:
        with torch.inference_mode():  # the very values the kernels see
            sim_in = torch.cat([intm.quantize_input(images[i : i + batch_size]).dequantize()
                                for i in range(0, len(images), batch_size)])  # fmt: skip
    out = compare(logits(sim, sim_in, batch_size), logits(intm, images, batch_size), labels)
    setting = {"reduce_range": reduce_range, "engine": engine, "round_sim_input": round_sim_input}
    return out | {"input_scale": intm.input_scale, "input_zero_point": intm.input_zero_point} | setting
