"""Stronger post-training quantization than rounding to nearest, with Brevitas (the chapter
"Winning the tail back"): GPTQ (Frantar et al. 2023), GPFQ (Zhang et al. 2023), bias correction
(Nagel et al. 2019) and cross-layer equalization (Nagel et al. 2019), on weights only, per output
channel or per tensor, symmetric, min-max scales.

The model's BatchNorm-folded convolutions and linear layers become Brevitas ``QuantConv2d`` /
``QuantLinear`` with the bit-width of a bit-width map; the algorithms run on a calibration set;
:func:`quantize_weights` returns a plain copy of the model whose weights are the fake-quantized
ones (and biases the corrected ones), so that everything downstream (activation quantizers,
heads, features) is the same code as for rounding to nearest.

Two Brevitas settings matter (both tested): ``parameter_from_stats`` scaling, which fixes each
scale from the float weights before GPTQ/GPFQ update them column by column (with the default
``stats`` scaling every updated column would get its own exact scale and GPTQ would change
nothing), and ``create_weight_orig`` for GPTQ, which keeps the float weights that bias
correction compares against. With the narrow range (``[-(2**(b-1) - 1), 2**(b-1) - 1]``) the
min-max grid equals :func:`ltmpq.quantization.quantize_weight`'s exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import nn

from . import quantization
from .config import PTQ_METHODS, QuantConfig
from .models import VGG16, Model
from .quantization import Bits, add_activation_quantizers, bit_map, fold_batchnorm
from .vocab import FLOAT


def _brevitas():
    """Brevitas, imported on use (it is slow to import and only this module needs it)."""
    import warnings

    with warnings.catch_warnings():  # "fast_hadamard_transform package not found" and the like
        warnings.simplefilter("ignore")
        import brevitas.nn as qnn
        from brevitas.graph.calibrate import bias_correction_mode
        from brevitas.graph.gpfq import gpfq_mode
        from brevitas.graph.gptq import gptq_mode
        from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
    return (
        qnn,
        gptq_mode,
        gpfq_mode,
        bias_correction_mode,
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFloat,
    )


def weight_holder(model: Model, name: str) -> tuple[nn.Module, int | str]:
    """(container, key) of layer ``name``'s convolution or linear layer: the first module of a
    conv block, or the layer itself."""
    layer = model.layers[name]
    return (layer, 0) if isinstance(layer, nn.Sequential) else (model.layers, name)


def to_brevitas(model: Model, bmap: Mapping[str, Bits], granularity: str = "channel") -> Model:
    """A copy of ``model`` (BatchNorm already folded) whose weight layers are Brevitas quantized
    layers at ``bmap``'s bits (float layers stay plain), per output channel or per tensor,
    symmetric with the narrow range, min-max scales fixed from the float weights now."""
    qnn, _, _, _, per_channel, per_tensor = _brevitas()
    if granularity not in ("channel", "tensor"):
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    q = copy.deepcopy(model).eval()
    bmap = bit_map(bmap, list(q.layers))
    for name in q.layers:
        if bmap[name] == FLOAT:
            continue
        holder, key = weight_holder(q, name)
        m = holder[key]
        quant = per_channel if granularity == "channel" else per_tensor
        kw = dict(bias=m.bias is not None, weight_quant=quant, weight_bit_width=int(bmap[name]),
                  weight_narrow_range=True, weight_scaling_impl_type="parameter_from_stats",
                  return_quant_tensor=False)  # fmt: skip
        if isinstance(m, nn.Conv2d):
            new = qnn.QuantConv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                                  padding=m.padding, dilation=m.dilation, groups=m.groups, **kw)  # fmt: skip
        else:
            new = qnn.QuantLinear(m.in_features, m.out_features, **kw)
        with torch.no_grad():  # copied, not load_state_dict: the quantizer's scale is not in a float state
            new.weight.copy_(m.weight)
            if m.bias is not None:
                new.bias.copy_(m.bias)
        new.eval().quant_weight()  # the scale is fixed here, from these (float) weights
        holder[key] = new
    return q


def to_plain(q: Model) -> Model:
    """``q`` with each Brevitas layer replaced by a plain one holding its fake-quantized weight and
    its bias: what the rest of the study runs (no Brevitas at inference)."""
    qnn = _brevitas()[0]
    out = copy.deepcopy(q).eval()
    for name in out.layers:
        holder, key = weight_holder(out, name)
        m = holder[key]
        if not isinstance(m, qnn.QuantConv2d | qnn.QuantLinear):
            continue
        if isinstance(m, qnn.QuantConv2d):
            new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                            dilation=m.dilation, groups=m.groups, bias=m.bias is not None)  # fmt: skip
        else:
            new = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        with torch.no_grad():
            new.weight.copy_(m.quant_weight().value)
            if m.bias is not None:
                new.bias.copy_(m.bias)
        holder[key] = new.eval()
    return out


def equalize(model: Model, iterations: int = 20) -> Model:
    """Cross-layer equalization of a folded float VGG16 (Brevitas's ``EqualizeGraph``): each pair
    of consecutive layers rescaled per channel so that their ranges match, outputs unchanged.
    ``torch.relu`` calls become modules first, or Brevitas would not equalize across them."""
    if not isinstance(model, VGG16):
        raise ValueError(f"cross-layer equalization is implemented for the VGG16, got {type(model).__name__}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brevitas.fx import symbolic_trace
        from brevitas.graph.base import FnToModule
        from brevitas.graph.equalize import EqualizeGraph

        gm = symbolic_trace(copy.deepcopy(model).eval())
    gm = FnToModule(torch.relu, nn.ReLU).apply(gm)
    with torch.no_grad():
        gm = EqualizeGraph(iterations=iterations, threshold=0.05, merge_bias=True).apply(gm)
    out = copy.deepcopy(model).eval()
    out.load_state_dict(gm.state_dict())
    return out


def _passes(model: nn.Module, calibration: torch.Tensor, batch_size: int) -> None:
    for xb in calibration.split(batch_size):
        model(xb)


@torch.no_grad()
def quantize_weights(model: Model, bmap: Mapping[str, Bits], method: str, calibration: torch.Tensor | None,
                     *, granularity: str = "channel", bias_correction: bool = False, cle: bool = False,
                     batch_size: int = 250) -> Model:  # fmt: skip
    """A plain copy of a BatchNorm-folded ``model`` with its weights quantized at ``bmap``'s bits by
    ``method`` (:data:`PTQ_METHODS` but ``rtn``, which is :func:`ltmpq.quantization.quantize_model`'s
    own), after cross-layer equalization (``cle``) and followed by bias correction, the algorithms
    run on ``calibration`` (normalised images, NCHW; GPTQ and GPFQ are deterministic for a given
    calibration set and batching)."""
    if method not in PTQ_METHODS[1:]:
        raise ValueError(
            f"method must be one of {PTQ_METHODS[1:]} (rtn is ltmpq.quantization's), got {method!r}"
        )
    _, gptq_mode, gpfq_mode, bias_correction_mode, *_ = _brevitas()
    needs = method in ("gptq", "gpfq") or bias_correction
    if needs and (calibration is None or len(calibration) == 0):
        raise ValueError(
            f"{method}{' with bias correction' if bias_correction else ''} needs calibration images"
        )
    q = to_brevitas(equalize(model) if cle else model, bmap, granularity)
    if calibration is not None:
        calibration = calibration.contiguous()  # GPTQ's numbers depend on the memory layout: fix one
    if method in ("gptq", "gpfq"):
        if method == "gptq":
            mode = gptq_mode(q, use_quant_activations=False, create_weight_orig=True, act_order=False)
        else:
            mode = gpfq_mode(q, use_quant_activations=False, act_order=False)
        with mode as algo:
            for _ in range(algo.num_layers):  # one layer per pass, in forward order
                _passes(algo.model, calibration, batch_size)
                algo.update()
    if bias_correction:
        with bias_correction_mode(q):
            _passes(q, calibration, batch_size)
    return to_plain(q)


def quantize_model(model: Model, bmap: Mapping[str, Bits], qcfg: QuantConfig,
                   calibration: torch.Tensor | None = None) -> Model:  # fmt: skip
    """:func:`ltmpq.quantization.quantize_model` for a ``qcfg`` whose weights go through Brevitas
    (``qcfg.brevitas``): BatchNorm folded, the weights by ``qcfg.ptq`` (``rtn`` meaning Brevitas's
    own rounding) with ``qcfg``'s equalization and bias correction on ``calibration``, then the
    activation quantizers as there. A float map with float activations is the model itself."""
    if not qcfg.brevitas:
        raise ValueError("rounding to nearest without Brevitas: use ltmpq.quantization.quantize_model")
    bmap = bit_map(bmap, list(model.layers))
    if all(b == FLOAT for b in bmap.values()):  # the float reference: no weight is quantized
        return quantization.quantize_model(model, bmap, replace(qcfg, ptq="rtn", bias_correction=False,
                                                                equalize=False), calibration)  # fmt: skip
    method = "brevitas_rtn" if qcfg.ptq == "rtn" else qcfg.ptq
    q = quantize_weights(fold_batchnorm(model), bmap, method, calibration, granularity=qcfg.granularity,
                         bias_correction=qcfg.bias_correction, cle=qcfg.equalize)  # fmt: skip
    return add_activation_quantizers(q, bmap, qcfg, calibration)
