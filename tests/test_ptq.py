"""ltmpq.ptq: Brevitas's quantizers and algorithms on our models, against our own quantizer and
against what each algorithm is documented to do (GPTQ and GPFQ reduce the layer's output error on
the calibration images, bias correction removes its mean, equalization leaves the function)."""

from __future__ import annotations

import pytest
import torch
from fakes import random_vgg
from torch import nn

from ltmpq.config import QuantConfig
from ltmpq.quantization import fold_batchnorm, quantize_model, weight_module

pytest.importorskip("brevitas")
from ltmpq import ptq  # noqa: E402


@pytest.fixture(scope="module")
def folded():
    return fold_batchnorm(random_vgg(3))


@pytest.fixture(scope="module")
def calib():
    return torch.randn(48, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_brevitas_min_max_equals_ours(folded, calib, granularity):
    """Brevitas's symmetric min-max quantizer (narrow range, scales from the weights) gives our
    quantizer's weights exactly, per channel and per tensor, on a mixed map with float layers."""
    bmap = {n: (3 if i % 3 == 0 else "float" if i % 3 == 1 else 6) for i, n in enumerate(folded.layers)}
    qcfg = QuantConfig(granularity=granularity)
    ours = quantize_model(folded, bmap, qcfg.__class__(granularity=granularity, fold_bn=False))
    theirs = ptq.to_plain(ptq.to_brevitas(folded, bmap, granularity))
    for name in folded.layers:
        a, b = weight_module(ours.layers[name]).weight, weight_module(theirs.layers[name]).weight
        assert torch.equal(a, b), name
    with torch.no_grad():
        assert torch.allclose(ours(calib), theirs(calib), atol=1e-5)


def _layer_error(model, name: str, x: torch.Tensor, folded) -> float:
    """Squared error of layer ``name``'s output against the float layer, on the float input."""
    conv_q = weight_module(model.layers[name])
    conv_f = weight_module(folded.layers[name])
    with torch.no_grad():
        return float(((conv_q(x) - conv_f(x)) ** 2).sum())


@pytest.mark.parametrize("method", ["gptq", "gpfq"])
def test_gptq_and_gpfq_lower_the_first_layers_output_error_and_stay_on_the_grid(folded, calib, method):
    """GPTQ and GPFQ choose the quantized weights that reproduce the layer's float output on the
    calibration images; at 3 bits the first layer (whose input is the images themselves) errs less
    than rounding to nearest there, each channel keeps at most 2**3 - 1 levels (narrow range), and a
    second run gives the same weights."""
    rtn = ptq.to_plain(ptq.to_brevitas(folded, 3))
    strong = ptq.quantize_weights(folded, 3, method, calib, batch_size=16)
    assert _layer_error(strong, "L1", calib, folded) < _layer_error(rtn, "L1", calib, folded)
    w = (
        weight_module(strong.layers["L1"])
        .weight.detach()
        .reshape(len(weight_module(strong.layers["L1"]).weight), -1)
    )
    assert max(len(torch.unique(row)) for row in w) <= 7
    again = ptq.quantize_weights(folded, 3, method, calib, batch_size=16)
    for name in folded.layers:
        assert torch.equal(
            weight_module(again.layers[name]).weight, weight_module(strong.layers[name]).weight
        )


def test_bias_correction_removes_the_mean_output_error(folded, calib):
    """Bias correction adds to each output channel's bias the mean difference between the float and
    the quantized layer's outputs on the calibration images: afterwards the first layer's mean
    error per channel is (close to) zero, and the weights are those of rounding to nearest."""
    rtn = ptq.to_plain(ptq.to_brevitas(folded, 3))
    corrected = ptq.quantize_weights(folded, 3, "brevitas_rtn", calib, bias_correction=True, batch_size=16)
    f, r, c = (weight_module(m.layers["L1"]) for m in (folded, rtn, corrected))
    assert torch.equal(r.weight, c.weight)
    with torch.no_grad():
        before = (f(calib) - r(calib)).mean((0, 2, 3)).abs()
        after = (f(calib) - c(calib)).mean((0, 2, 3)).abs()
    assert float(after.max()) < 1e-4 < float(before.max())


def test_equalization_keeps_the_function_and_changes_the_weights(folded, calib):
    eq = ptq.equalize(folded)
    with torch.no_grad():
        assert torch.allclose(eq(calib), folded(calib), atol=1e-4)
    assert not torch.equal(weight_module(eq.layers["L2"]).weight, weight_module(folded.layers["L2"]).weight)
    from ltmpq.models import ResNet32

    with pytest.raises(ValueError, match="implemented for the VGG16"):
        ptq.equalize(ResNet32(width=0.25))


def test_resnet_layers_quantize_through_brevitas_too(calib):
    """ResNet-32's 32 layers: Brevitas min-max equals ours, GPTQ runs through the residual blocks."""
    from ltmpq.models import ResNet32

    torch.manual_seed(0)
    model = fold_batchnorm(ResNet32(width=0.25).eval())
    ours = quantize_model(model, 4, QuantConfig(fold_bn=False))
    theirs = ptq.to_plain(ptq.to_brevitas(model, 4))
    with torch.no_grad():
        assert torch.allclose(ours(calib), theirs(calib), atol=1e-5)
    gptq = ptq.quantize_weights(model, 4, "gptq", calib, batch_size=16)
    assert all(isinstance(weight_module(layer), nn.Conv2d | nn.Linear) for layer in gptq.layers.values())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "rtn"}, "rtn is ltmpq.quantization's"),
        ({"method": "adaround"}, "method must be one of"),
        ({"method": "gptq", "calibration": None}, "gptq needs calibration images"),
        (
            {"method": "brevitas_rtn", "calibration": None, "bias_correction": True},
            "with bias correction needs",
        ),
    ],
)
def test_bad_requests_name_what_is_allowed(folded, calib, kwargs, match):
    args = {"calibration": calib} | kwargs
    with pytest.raises(ValueError, match=match):
        ptq.quantize_weights(folded, 4, args.pop("method"), args.pop("calibration"), **args)


def test_ptq_quantize_model_adds_activation_quantizers_and_keeps_the_float_reference(folded, calib):
    from ltmpq.quantization import ActQuant

    model = random_vgg(3)
    qcfg = QuantConfig(ptq="gptq", act_bits=8)
    q = ptq.quantize_model(model, 4, qcfg, calib)
    assert sum(isinstance(m, ActQuant) for m in q.modules()) == len(model.layers) - 1
    with torch.no_grad():
        assert torch.equal(
            ptq.quantize_model(model, "float", QuantConfig(ptq="gptq"), calib)(calib), model(calib)
        )
    with pytest.raises(ValueError, match="use ltmpq.ptq.quantize_model"):
        quantize_model(model, 4, QuantConfig(ptq="gptq"), calib)
    with pytest.raises(ValueError, match="rounding to nearest without Brevitas"):
        ptq.quantize_model(model, 4, QuantConfig(), calib)


def test_strong_methods_need_calibration_images():
    from ltmpq.quantization import needs_calibration

    assert needs_calibration(QuantConfig(ptq="gptq")) and needs_calibration(QuantConfig(bias_correction=True))
    assert not needs_calibration(QuantConfig(ptq="brevitas_rtn")) and not needs_calibration(QuantConfig())
