"""ltmpq.integer (chapter 5): the int8-kernel VGG16 against the simulated W8A8 model it is built from,
single layers against exact integer arithmetic, biases, int16 saturation without VNNI, bad inputs.

On a CPU without VNNI every simulated-vs-integer comparison runs with ``reduce_range=True``
(:data:`REDUCE`): 7-bit input and activations on both sides, as ltmpq.integer prescribes there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
from torch import nn
from torch.nn import functional as F

import ltmpq.integer as integer
from ltmpq.config import QuantConfig
from ltmpq.decoupling import NearestClassMean, ScaledLinear
from ltmpq.integer import (
    FloatLogitsLinear,
    IntegerVGG16,
    compare,
    compare_models,
    input_qparams,
    integer_layer,
    integer_model,
    logits,
    quantized_engine,
    simulated_model,
    vnni_available,
)
from ltmpq.models import VGG16
from ltmpq.quantization import ActQuant, quantize_weight, weight_module, weight_scale
from ltmpq.training import to_input
from ltmpq.vocab import LAYER_NAMES

W8A8 = QuantConfig(act_bits=8)
ROOT = Path(__file__).resolve().parents[1]
# Without VNNI (AVX2, AVX-512 without VNNI) fbgemm adds pairs of uint8 x int8 products in int16,
# which saturates with 8-bit activations: the integer model is then simply wrong, and the module's
# remedy is reduce_range=True (7-bit input and activations, the simulation built on the same grid).
# So there every comparison of simulated and integer models / layers uses it; on a VNNI CPU (or one
# we cannot tell) they check 8-bit activations. The saturation itself is tested on its own below.
REDUCE = vnni_available() is False
QMAX = 127 if REDUCE else 255  # the largest activation code in those comparisons


# ------------------------------------------------------------------ a smoke model that has learnt something


def synthetic(gen: torch.Generator, n: int, prototypes: torch.Tensor, noise: float = 40.0):
    """Normalised images of 10 classes: a random prototype per class plus pixel noise."""
    y = torch.randint(0, 10, (n,), generator=gen)
    img = prototypes[y] + noise * torch.randn(n, 32, 32, 3, generator=gen)
    return to_input(img.clamp(0, 255).round().to(torch.uint8)), y


@pytest.fixture(scope="module")
def smoke():
    """A VGG16(width=1/16) trained for 60 steps (BatchNorm running stats from training, then
    eval), 64 calibration and 256 test images: (model, calibration, images, labels)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(100)
    prototypes = 255 * torch.rand(10, 32, 32, 3, generator=gen)
    model = VGG16(width=1 / 16)
    x, y = synthetic(gen, 512, prototypes)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    for _ in range(60):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    calibration, _ = synthetic(gen, 64, prototypes)
    images, labels = synthetic(gen, 256, prototypes)
    return model, calibration, images, labels


@pytest.fixture(scope="module")
def built(smoke):
    """The simulated W8A8 model of :func:`smoke` and its integer model (W8A7 both, if REDUCE)."""
    model, calibration, _, _ = smoke
    return (
        simulated_model(model, W8A8, calibration, reduce_range=REDUCE),
        integer_model(model, W8A8, calibration, reduce_range=REDUCE),
    )


def logit_step(sim: VGG16) -> float:
    """How far the logits move when every L15 output is one step (L15's output scale) off:
    ``s_L15 * max_i ||W16_i||_1``. The logits are float; this is their tolerance unit."""
    s15 = sim.layers["L15"][-1].scale
    return s15 * float(weight_module(sim.layers["L16"]).weight.detach().abs().sum(1).max())


def walk(intm: IntegerVGG16, sim: VGG16, images: torch.Tensor):
    """Each layer of the integer model on its own quantized input, and the simulated layer on that
    input dequantized: yields (name, integer output, simulated output, integer output scale)."""
    with torch.inference_mode(), quantized_engine(intm.engine):
        q = intm.quantize_input(images)
        for name in LAYER_NAMES:
            if name == "L14":
                q = torch.flatten(q, 1)
            out = intm.layers[name](q)
            ref = sim.layers[name](q.dequantize())
            yield name, out, ref, None if name == "L16" else out.q_scale()
            if name == "L16":
                return
            q = intm.pool(out) if name in intm.pool_after else out


# ------------------------------------------------------------------ (a) the whole network


@pytest.mark.parametrize("round_sim_input", [True, False], ids=["same-input", "float-input"])
def test_integer_predictions_agree_with_simulation(smoke, built, round_sim_input):
    model, calibration, images, labels = smoke
    r = compare_models(
        model, W8A8, calibration, images, labels, reduce_range=REDUCE, round_sim_input=round_sim_input
    )
    sim = built[0]
    preds = logits(sim, images).argmax(1)
    assert len(preds.unique()) >= 5  # the model tells images apart: agreement is not one class
    assert r["n"] == 256 and r["agreement"] >= 0.99
    assert abs(r["int_accuracy"] - r["sim_accuracy"]) <= 0.01
    # measured on this model: 0.78 units (same input) and 1.36 (float input: the input rounding travels on);
    # with REDUCE (7 bits: the unit, s_L15, about twice as large) 0.38 and 1.50, float-input agreement 0.992
    tol = (1.0 if round_sim_input else 2.0) * logit_step(sim)
    assert 0 < r["max_abs_logit_difference"] <= tol


@pytest.mark.parametrize(
    "qcfg",
    [QuantConfig(act_bits=8, granularity="tensor"), QuantConfig(act_bits=8, clipping="mse")],
    ids=["per-tensor", "mse"],
)
def test_other_weight_quantizers_agree(smoke, qcfg):
    model, calibration, images, labels = smoke
    r = compare_models(model, qcfg, calibration, images, labels, reduce_range=REDUCE, round_sim_input=True)
    assert r["agreement"] >= 0.99
    sim = simulated_model(model, qcfg, calibration, reduce_range=REDUCE)
    assert r["max_abs_logit_difference"] <= logit_step(sim)


def test_each_layer_within_one_step_of_the_simulation(smoke, built):
    """The simulated layer on the integer layer's own input: every uint8 code within one step,
    almost all equal; the float logits equal to float32 rounding."""
    images = smoke[2]
    sim, intm = built
    seen = []
    for name, out, ref, scale in walk(intm, sim, images[:64]):
        seen.append(name)
        if scale is None:  # L16
            assert out.dtype == torch.float32
            torch.testing.assert_close(out, ref, atol=1e-4 * float(ref.abs().max()), rtol=0)
            continue
        codes, ref_codes = out.int_repr().int(), torch.round(ref / scale).int()
        off = (codes - ref_codes).abs()
        assert int(off.max()) <= 1, name
        assert float((off == 0).float().mean()) >= 0.99, name
    assert seen == list(LAYER_NAMES)


def test_head_as_last_layer(smoke):
    """A decoupled LWS head replaces L16 as its folded linear map, quantized as quantize_head does."""
    model, calibration, images, labels = smoke
    torch.manual_seed(1)
    head = ScaledLinear(model.classifier)
    with torch.no_grad():
        head.scales.copy_(torch.linspace(0.5, 2.0, 10))
    r = compare_models(
        model, W8A8, calibration, images, labels, head=head, reduce_range=REDUCE, round_sim_input=True
    )
    assert r["agreement"] >= 0.99
    intm = integer_model(model, W8A8, calibration, head=head, reduce_range=REDUCE)
    w = (model.classifier.weight * head.scales[:, None]).detach()
    torch.testing.assert_close(
        intm.layers["L16"].weight().dequantize(), quantize_weight(w, 8), rtol=0, atol=0
    )


@pytest.mark.skipif(
    "act_scheme" not in {f.name for f in fields(QuantConfig)}, reason="no affine activations in this tree"
)
def test_simulation_that_quantizes_its_input_lends_its_grid(smoke):
    """act_scheme="affine": the simulation rounds the image itself; the integer model takes that grid,
    so the float-input comparison has no extra rounding."""
    model, calibration, images, labels = smoke
    qcfg = QuantConfig(act_bits=8, act_scheme="affine")
    sim = simulated_model(model, qcfg, calibration, reduce_range=REDUCE)
    pre = sim.layers["L1"][0]
    assert isinstance(pre, ActQuant) and pre.bits == (7 if REDUCE else 8)
    intm = integer_model(model, qcfg, calibration, reduce_range=REDUCE)
    assert (intm.input_scale, intm.input_zero_point) == (pre.scale, pre.zero_point)
    r = compare_models(model, qcfg, calibration, images, labels, reduce_range=REDUCE)
    assert r["agreement"] >= 0.99 and r["max_abs_logit_difference"] <= logit_step(sim)


# ------------------------------------------------------------------ (b) single layers: the oracle


def grid_layer(kind: str, granularity: str, seed: int = 0):
    """A conv or linear layer with weights on their 8-bit grid (output channels two orders of
    magnitude apart), a float bias, and the grid's scale."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Conv2d(5, 6, 3, padding=1) if kind == "conv" else nn.Linear(40, 6)
    with torch.no_grad():
        spread = torch.logspace(-1, 1, 6).view(-1, *[1] * (layer.weight.ndim - 1))
        w = torch.randn(layer.weight.shape, generator=g) * spread
        scale = weight_scale(w, 8, granularity)
        layer.weight.copy_(quantize_weight(w, 8, granularity))
        layer.bias.copy_(torch.randn(6, generator=g) * 0.3 * float(layer.weight.abs().max()))
    return layer, scale


def exact_output(layer: nn.Module, codes: torch.Tensor, s_in: float, z_in: int, scale: torch.Tensor):
    """Integer arithmetic in float64 (exact: the sums stay far below 2**53): int32 accumulation of
    (code - zero point) x weight integer, then ``acc * s_in * s_w + bias`` (no rounding yet)."""
    w, bias = layer.weight.detach().double(), layer.bias.detach().double()
    s_w = (scale.double() if scale.ndim else scale.double().expand(len(w))).view(-1, *[1] * (w.ndim - 1))
    q_w = torch.round(w / s_w)
    x = codes.double() - z_in
    if isinstance(layer, nn.Conv2d):
        acc = F.conv2d(x, q_w, padding=layer.padding)
        return acc * s_in * s_w.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    return (x @ q_w.T) * s_in * s_w.view(1, -1) + bias


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_single_layer_matches_fake_quant_within_one_step(kind, granularity):
    """Input and output codes 0..QMAX (7 bits, the output clamped there, if REDUCE)."""
    layer, scale = grid_layer(kind, granularity)
    g = torch.Generator().manual_seed(1)
    shape = (8, 5, 9, 9) if kind == "conv" else (64, 40)
    codes = torch.randint(0, QMAX + 1, shape, generator=g)
    # a zero point: zero padding must be real 0, not code 0 (97 of 255, 48 of 127)
    s_in, z_in = 0.02, round(97 * QMAX / 255)
    x = (codes.float() - z_in) * s_in  # the simulation's float input, on the grid
    with torch.no_grad():
        pre = layer(x)
    s_out = float(pre.clamp_min(0).amax()) / (300 * QMAX / 255)  # the largest outputs clip at QMAX
    with quantized_engine("x86"):
        q = integer_layer(layer, scale, s_out, QMAX)
        out = q(torch.quantize_per_tensor(x, s_in, z_in, torch.quint8)).int_repr().int()
    fake = torch.round(torch.fake_quantize_per_tensor_affine(pre.relu(), s_out, 0, 0, QMAX) / s_out).int()
    exact = torch.round(exact_output(layer, codes, s_in, z_in, scale) / s_out).clamp(0, QMAX).int()
    for ref in (fake, exact):
        off = (out - ref).abs()
        assert int(off.max()) <= 1
        assert float((off == 0).float().mean()) >= 0.99
    assert int((out == QMAX).sum()) > 0 and int((out == 0).sum()) > 0  # clipping and ReLU both exercised
    assert int(out.max()) == QMAX


def test_float_logits_layer_is_exact_up_to_float32():
    layer, scale = grid_layer("linear", "channel")
    codes = torch.randint(0, QMAX + 1, (32, 40), generator=torch.Generator().manual_seed(2))
    s_in, z_in = 0.05, 0
    with quantized_engine("x86"):
        q = integer_layer(layer, scale, None)
        out = q(torch.quantize_per_tensor((codes.float() - z_in) * s_in, s_in, z_in, torch.quint8))
    assert isinstance(q, FloatLogitsLinear) and out.dtype == torch.float32 and not out.is_quantized
    exact = exact_output(layer, codes, s_in, z_in, scale)
    torch.testing.assert_close(out.double(), exact, rtol=0, atol=1e-5 * float(exact.abs().max()))


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_biases_are_added_in_float_not_rounded_to_int32(kind):
    """With s_in * s_w = 1 an int32 bias would round 0.3, 0.5, 0.7, 1.3 to whole steps; at output
    scale 0.1 the codes show which: 10 * (9 + b) for the float bias."""
    bias = torch.tensor([0.3, 0.5, 0.7, 1.3])
    layer = nn.Conv2d(9, 4, 1) if kind == "conv" else nn.Linear(9, 4)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.copy_(bias)
    x = torch.ones(1, 9, 2, 2) if kind == "conv" else torch.ones(1, 9)
    with quantized_engine("x86"):
        q = integer_layer(layer, torch.ones(4), 0.1)
        codes = q(torch.quantize_per_tensor(x, 1.0, 0, torch.quint8)).int_repr()
    codes = codes[0, :, 0, 0] if kind == "conv" else codes[0]
    assert codes.tolist() == [93, 95, 97, 103]


# ------------------------------------------------------------------ (d) really quantized


def test_integer_model_is_made_of_int8_modules_with_the_simulations_scales(smoke, built):
    model, calibration, images, _ = smoke
    sim, intm = built
    assert isinstance(intm.quant, nnq.Quantize)
    assert not [m for m in intm.modules() if type(m) in (nn.Conv2d, nn.Linear, nn.BatchNorm2d)]
    folded = integer.fold_batchnorm(model)
    assert intm.reduce_range is REDUCE
    assert isinstance(intm.input_clamp, integer.QuantClamp if REDUCE else nn.Identity)
    for name in LAYER_NAMES:
        q = intm.layers[name]
        if REDUCE and name != "L16":  # the kernel, then its output clamped to 7 bits
            assert isinstance(q, nn.Sequential) and len(q) == 2, name
            assert isinstance(q[1], integer.QuantClamp) and q[1].qmax == QMAX, name
            q = q[0]
        kind = (
            nniq.ConvReLU2d
            if int(name[1:]) <= 13
            else FloatLogitsLinear
            if name == "L16"
            else nniq.LinearReLU
        )
        assert type(q) is kind and isinstance(q, nnq.Conv2d | nnq.Linear)
        qw = q.weight()
        assert qw.dtype == torch.qint8 and qw.qscheme() == torch.per_channel_affine
        scale = weight_scale(weight_module(folded.layers[name]).weight, 8)
        assert torch.equal(qw.q_per_channel_scales().float(), scale)
        assert torch.equal(qw.q_per_channel_zero_points(), torch.zeros(len(scale), dtype=torch.long))
        w_sim = weight_module(sim.layers[name]).weight.detach()
        assert torch.equal(qw.dequantize(), w_sim)  # the simulation's weights, bit for bit
        if name != "L16":
            assert (q.scale, q.zero_point) == (sim.layers[name][-1].scale, 0)
    with torch.inference_mode(), quantized_engine(intm.engine):
        first = intm.layers["L1"](intm.quantize_input(images[:2]))
    assert first.dtype == torch.quint8 and first.q_scale() == sim.layers["L1"][-1].scale
    s, z = input_qparams(calibration, 7 if REDUCE else 8)
    assert (intm.input_scale, intm.input_zero_point) == (pytest.approx(s), z)
    assert torch.backends.quantized.engine == "x86"  # restored after every call


def test_input_grid_holds_the_calibration_range_and_zero():
    x = torch.linspace(-1.5, 2.5, 3 * 8 * 8).view(1, 3, 8, 8)
    s, z = input_qparams(x)
    assert s == pytest.approx(4.0 / 255) and z == round(1.5 / s)
    assert input_qparams(x.abs() + 1)[1] == 0  # a positive range is widened down to 0
    s7, z7 = input_qparams(x, bits=7)
    assert s7 == pytest.approx(4.0 / 127) and z7 == round(1.5 / s7)


# ------------------------------------------------------------------ reduce_range and int16 saturation


def test_reduce_range_keeps_every_code_below_128_and_matches_the_7bit_simulation(smoke):
    model, calibration, images, labels = smoke
    bright = images.clone()
    bright[:8] = images.max()  # brighter than anything calibrated: the input clamp must hold
    sim7 = simulated_model(model, W8A8, calibration, reduce_range=True)
    intm = integer_model(model, W8A8, calibration, reduce_range=True)
    with torch.inference_mode():
        assert int(intm.quantize_input(bright).int_repr().max()) <= 127
    for name, out, _, scale in walk(intm, sim7, bright):
        if scale is not None:
            assert int(out.int_repr().max()) <= 127, name
            assert scale == sim7.layers[name][-1].scale and sim7.layers[name][-1].bits == 7
    r = compare_models(model, W8A8, calibration, images, labels, reduce_range=True, round_sim_input=True)
    assert r["agreement"] >= 0.99 and r["max_abs_logit_difference"] <= logit_step(sim7)
    assert r["input_scale"] == pytest.approx(input_qparams(calibration, 7)[0])


SATURATION_SCRIPT = """
import json, sys, warnings
import torch
from ltmpq.config import QuantConfig
from ltmpq.integer import integer_model, logits
from ltmpq.models import VGG16
torch.set_num_threads(1)
d = torch.load(sys.argv[1])
model = VGG16(width=1 / 16)
model.load_state_dict(d["state"])
model.eval()
out, warned = {}, {}
for rr in (False, True):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = integer_model(model, QuantConfig(act_bits=8), d["calibration"], reduce_range=rr, engine="fbgemm")
    warned[str(rr)] = any("VNNI" in str(x.message) for x in w)
    out[str(rr)] = logits(m, d["images"]).tolist()
json.dump({"logits": out, "warned": warned}, open(sys.argv[2], "w"))
"""


@pytest.mark.skipif(vnni_available() is not True, reason="needs a VNNI CPU to compare with")
def test_without_vnni_8bit_activations_saturate_and_reduce_range_does_not(smoke, tmp_path):
    """fbgemm forced to AVX2 (no VNNI) in a subprocess: W8A8 logits move far (int16 saturation),
    W8A7 (reduce_range) ones are those of this VNNI machine; a warning names the risk."""
    model, calibration, images, _ = smoke
    torch.save({"state": model.state_dict(), "calibration": calibration, "images": images[:128]},
               tmp_path / "in.pt")  # fmt: skip
    script = tmp_path / "saturate.py"
    script.write_text(textwrap.dedent(SATURATION_SCRIPT))
    env = os.environ | {"FBGEMM_ENABLE_INSTRUCTIONS": "AVX2", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "in.pt"), str(tmp_path / "out.json")],
                   env=env, cwd=ROOT, check=True, timeout=120, capture_output=True)  # fmt: skip
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["warned"] == {"False": True, "True": False}
    avx2 = {rr: torch.tensor(v) for rr, v in res["logits"].items()}
    here = {
        str(rr): logits(
            integer_model(model, W8A8, calibration, reduce_range=rr, engine="fbgemm"), images[:128]
        )
        for rr in (False, True)
    }
    step = logit_step(simulated_model(model, W8A8, calibration))
    torch.testing.assert_close(
        avx2["True"], here["True"], rtol=0, atol=1e-5 * float(here["True"].abs().max())
    )
    assert float((avx2["False"] - here["False"]).abs().max()) > 10 * step  # saturated sums
    assert float((avx2["False"].argmax(1) == here["False"].argmax(1)).float().mean()) < 0.95


# ------------------------------------------------------------------ compare


def test_compare_counts_agreement_and_per_class_accuracy():
    sim = torch.tensor([[2.0, 1, 0], [0, 2, 1], [0, 1, 2], [2, 1, 0]])
    intg = torch.tensor([[2.0, 1, 0], [0, 2, 3.5], [0, 1, 2], [0, 3, 0]])
    labels = np.array([0, 1, 2, 0])
    r = compare(sim, intg, labels)
    assert r["n"] == 4 and r["agreement"] == 0.5
    assert (r["sim_accuracy"], r["int_accuracy"]) == (1.0, 0.5)
    assert r["sim_per_class"] == [1.0, 1.0, 1.0]
    assert r["int_per_class"] == [0.5, 0.0, 1.0]
    assert r["per_class_difference"] == [-0.5, -1.0, 0.0]
    assert r["max_abs_logit_difference"] == 2.5
    absent = compare(sim[:2], intg[:2], [0, 0])
    assert np.isnan(absent["sim_per_class"][2]) and np.isnan(absent["per_class_difference"][1])


# ------------------------------------------------------------------ (c) bad inputs


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return VGG16(width=1 / 16).eval(), torch.randn(4, 3, 32, 32)


BAD_CONFIGS = [
    (QuantConfig(), "act_bits must be 8 or 'match'.*replace.*got None"),
    (QuantConfig(act_bits=4), "act_bits must be 8 or 'match'.*got 4"),
    (QuantConfig(act_bits=8, fold_bn=False), "fold_bn must be True: BatchNorm must be folded.*got False"),
]
if "logit_bits" in {f.name for f in fields(QuantConfig)}:
    BAD_CONFIGS += [
        (QuantConfig(act_bits=8, logit_bits=8), "logit_bits must be None.*float, got 8"),
        (QuantConfig(act_bits=8, weight_scheme="affine"), "weight_scheme must be 'symmetric'"),
        (QuantConfig(act_bits=8, first_last_bits=6), "first_last_bits must be None or 8, got 6"),
    ]


@pytest.mark.parametrize("qcfg,message", BAD_CONFIGS)
def test_configs_without_an_int8_counterpart_are_refused(tiny, qcfg, message):
    model, cal = tiny
    with pytest.raises(ValueError, match=message):
        integer_model(model, qcfg, cal)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"calibration": None}, r"calibration must be a non-empty \(N, 3, H, W\) tensor.*got NoneType"),
        (
            {"calibration": torch.zeros(0, 3, 32, 32)},
            r"calibration must be a non-empty.*got \(0, 3, 32, 32\)",
        ),
        ({"calibration": torch.zeros(4, 32, 32)}, r"calibration must be.*got \(4, 32, 32\)"),
        (
            {"calibration": torch.zeros(4, 3, 32, 32, dtype=torch.uint8)},
            "calibration must be float.*torch.uint8",
        ),
        ({"engine": "qnnpack"}, r"engine must be one of \('x86', 'fbgemm'\), got 'qnnpack'"),
        ({"reduce_range": "yes"}, "reduce_range must be True or False, got 'yes'"),
        ({"head": NearestClassMean(torch.eye(10, 32), torch.arange(10))}, "NCM.*no integer form"),
        ({"qcfg": {"act_bits": 8}}, "qcfg must be a QuantConfig, got dict"),
        ({"model": nn.Linear(3, 3)}, "model must be an ltmpq.models.VGG16, got Linear"),
    ],
    ids=["no-calibration", "empty", "not-4d", "uint8", "engine", "reduce-range", "ncm", "qcfg", "model"],
)
def test_bad_arguments_raise_one_line_errors(tiny, kwargs, message):
    model, cal = tiny
    args = {"model": model, "qcfg": W8A8, "calibration": cal} | kwargs
    with pytest.raises(ValueError, match=message) as err:
        integer_model(args.pop("model"), args.pop("qcfg"), args.pop("calibration"), **args)
    assert "\n" not in str(err.value)


def test_unavailable_engine_is_named_with_what_is_available(tiny, monkeypatch):
    model, cal = tiny
    monkeypatch.setattr(integer, "supported_engines", lambda: ["qnnpack", "none"])
    with pytest.raises(ValueError, match=r"engine 'x86' is not available.*\['qnnpack', 'none'\]"):
        integer_model(model, W8A8, cal)


@pytest.mark.parametrize(
    "args,message",
    [
        ((torch.zeros(4, 10), torch.zeros(4, 9), [0] * 4), r"same shape, got \(4, 10\) and \(4, 9\)"),
        ((torch.zeros(4, 10), torch.zeros(4, 10), [0] * 3), r"4 class indices in \[0, 10\), got 3"),
        ((torch.zeros(2, 10), torch.zeros(2, 10), [0, 10]), r"in \[0, 10\), got 2 int64 labels in \[0, 10\]"),
        ((torch.zeros(2, 10), torch.zeros(2, 10), [0.0, 1.0]), "got 2 float64 labels"),
        ((torch.zeros(0, 10), torch.zeros(0, 10), []), "at least one image, got 0"),
    ],
    ids=["shapes", "count", "range", "float-labels", "empty"],
)
def test_compare_rejects_mismatched_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        compare(*args)


def test_logits_and_compare_models_check_batch_size(tiny):
    model, cal = tiny
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        logits(model, cal, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        compare_models(model, W8A8, cal, cal, [0] * 4, batch_size=0)
