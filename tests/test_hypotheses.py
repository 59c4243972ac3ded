"""Chapter 5's quantizer hypotheses: every new piece of ``ltmpq.quantization`` (affine weights,
activation ranges by min-max / percentile / MSE / torch's HistogramObserver, affine activations and
the quantized input, ``act_bits="match"``, ``first_last_bits``, quantized logits) against an
independent numpy / torch reference; the default quantizer against a frozen copy of chapter 3's;
config hashes against the ones recorded before the new fields; errors; and one sweep end to end.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.ao.quantization.observer import HistogramObserver
from torch.nn.utils.fusion import fuse_conv_bn_eval

import ltmpq.artifacts as artifacts
import ltmpq.runs as runs
from ltmpq import plan, results
from ltmpq.config import (
    PROFILES,
    QUANT_ABLATIONS,
    QUANT_HYPOTHESES,
    QUANT_HYPOTHESIS_DESCRIPTIONS,
    DecoupleConfig,
    MPQConfig,
    MPQRun,
    QuantConfig,
    QuantizedRun,
    Stage1Config,
    config_hash,
)
from ltmpq.decoupling import as_linear
from ltmpq.models import VGG16
from ltmpq.quantization import (
    INPUT,
    ActQuant,
    activation_bits,
    activation_qparams,
    bit_map,
    histogram_qparams,
    hypothesis_configs,
    logit_bits,
    model_size,
    quantize_head,
    quantize_logits,
    quantize_model,
    quantize_weight,
    sweep_map,
    weight_module,
)
from ltmpq.training import predict
from ltmpq.vocab import FLOAT, LAYER_NAMES, METHODS

# ------------------------------------------------------------------ fixtures


def random_vgg(seed: int = 0) -> VGG16:
    """A width-1/16 VGG16 with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = VGG16(width=1 / 16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def vgg() -> VGG16:
    return random_vgg()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """(calibration, evaluation) normalised-looking images (signed, as after ``to_input``)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(20, 3, 32, 32, generator=g), torch.randn(30, 3, 32, 32, generator=g)


def skewed(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random weights whose channels (dim 0) have different offsets and magnitudes: an affine grid
    helps (each channel is one-sided to a different degree)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    shift = np.linspace(-1.5, 1.5, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    mags = np.logspace(-2, 1, shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    return torch.from_numpy(((w + shift) * mags).astype(np.float32))


def groups(a: np.ndarray, granularity: str) -> np.ndarray:
    return a.reshape(len(a), -1) if granularity == "channel" else a.reshape(1, -1)


# ------------------------------------------------------------------ frozen chapter-3 quantizer
# A copy of ltmpq.quantization's quantize_model as it was before the hypotheses (commit cf75aae),
# in plain torch: with the new fields at their defaults the quantizer must give bitwise the same.

LEGACY_GRID = tuple(np.round(np.linspace(0.2, 1.0, 81), 3))


def _legacy_fq(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if scale.ndim == 0:
        return torch.fake_quantize_per_tensor_affine(w, float(scale), 0, lo, hi)
    zero = torch.zeros(len(scale), dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale.float(), zero, 0, lo, hi)


def legacy_weight(w: torch.Tensor, bits, granularity="channel", clipping="minmax") -> torch.Tensor:
    if bits == FLOAT:
        return w.detach().clone()
    w = w.detach().float()
    flat = w.reshape(len(w), -1) if granularity == "channel" else w.reshape(1, -1)
    peak = flat.abs().amax(1)
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    qmax = 2 ** (bits - 1) - 1
    if clipping == "minmax":
        scale = peak / qmax
    else:
        cands = torch.stack([peak * a / qmax for a in LEGACY_GRID])
        per = (lambda c: c) if granularity == "channel" else (lambda c: c[0])
        errs = torch.stack([((_legacy_fq(flat, per(c), bits) - flat) ** 2).sum(1) for c in cands])
        scale = cands.gather(0, errs.argmin(0, keepdim=True))[0]
    return _legacy_fq(w, scale if granularity == "channel" else scale[0], bits)


def legacy_act_scale(x: torch.Tensor, bits: int, max_samples: int = 200_000) -> float:
    flat = x.detach().float().flatten().clamp_min(0)
    if flat.numel() > max_samples:
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:max_samples]]
    peak = float(flat.max()) or 1.0
    qmax = 2**bits - 1
    fq = torch.fake_quantize_per_tensor_affine
    errs = [float(((fq(flat, peak * a / qmax, 0, 0, qmax) - flat) ** 2).sum()) for a in LEGACY_GRID]
    return peak * LEGACY_GRID[int(np.argmin(errs))] / qmax


class LegacyAct(nn.Module):
    def __init__(self, bits: int, scale: float) -> None:
        super().__init__()
        self.bits, self.scale = bits, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, 0, 0, 2**self.bits - 1)


def legacy_fold(model: VGG16) -> VGG16:
    q = copy.deepcopy(model).eval()
    for block in q.layers.values():
        if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()
    return q


def legacy_quantize_model(model, bmap, granularity="channel", clipping="minmax", fold_bn=True, act_bits=None,
                          calibration=None) -> VGG16:  # fmt: skip
    if act_bits is None and all(b == FLOAT for b in bmap.values()):
        return copy.deepcopy(model).eval()
    q = legacy_fold(model) if fold_bn else copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, layer in q.layers.items():
            m = layer[0] if isinstance(layer, nn.Sequential) else layer
            m.weight.copy_(legacy_weight(m.weight, bmap[name], granularity, clipping))
    if act_bits is not None:
        out: dict[str, torch.Tensor] = {}
        hooks = [q.layers[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.clamp_min(0)))
                 for n in LAYER_NAMES[:-1]]  # fmt: skip
        with torch.inference_mode():
            q.features(calibration)
        for h in hooks:
            h.remove()
        for n, a in out.items():
            q.layers[n] = nn.Sequential(q.layers[n], LegacyAct(act_bits, legacy_act_scale(a, act_bits)))
    return q


#: the new fields spelled out at their defaults: the same quantizer as leaving them out
EXPLICIT_DEFAULTS = dict(weight_scheme="symmetric", act_scheme="unsigned", act_clipping="mse",
                         act_percentile=99.99, first_last_bits=None, logit_bits=None)  # fmt: skip


@pytest.mark.parametrize(
    "granularity, clipping, fold_bn, act_bits, bits",
    [("channel", "minmax", True, None, 8), ("tensor", "mse", False, None, 3),
     ("channel", "minmax", True, 4, 4), ("tensor", "minmax", True, 8, FLOAT), ("channel", "mse", True, 6, 6)],
)  # fmt: skip
def test_default_fields_quantize_bitwise_as_chapter_3(
    vgg, images, granularity, clipping, fold_bn, act_bits, bits
):
    calib, x = images
    legacy = legacy_quantize_model(vgg, bit_map(bits), granularity, clipping, fold_bn, act_bits, calib)
    for extra in ({}, EXPLICIT_DEFAULTS):
        qcfg = QuantConfig(
            granularity=granularity, clipping=clipping, fold_bn=fold_bn, act_bits=act_bits, **extra
        )
        assert qcfg == QuantConfig(
            granularity=granularity, clipping=clipping, fold_bn=fold_bn, act_bits=act_bits
        )
        assert sweep_map(bits, qcfg) == bit_map(bits)
        q = quantize_model(vgg, sweep_map(bits, qcfg), qcfg, calib)
        got, want = q.state_dict(), legacy.state_dict()
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), k
        scales = [m.scale for m in q.modules() if isinstance(m, ActQuant)]
        assert scales == [m.scale for m in legacy.modules() if isinstance(m, LegacyAct)]
        assert all(m.zero_point == 0 for m in q.modules() if isinstance(m, ActQuant))
        with torch.no_grad():
            assert torch.equal(q(x), legacy(x))
            assert torch.equal(q.features(x), legacy.features(x))


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_default_head_quantization_is_chapter_3s(granularity):
    head = nn.Linear(32, 10)
    qcfg = QuantConfig(granularity=granularity)
    f = torch.rand(50, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = quantize_head(head, 4, qcfg)(f)
        weight, bias, _ = as_linear(head)
        want = f @ legacy_weight(weight, 4, granularity).T + bias
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert logit_bits(qcfg, bit_map(4)) is None  # float logits by default


# ------------------------------------------------------------------ hashes and errors

#: Recorded before the new fields were added (commit cf75aae): the names of every stored result.
RECORDED_HASHES = {
    "default": "37e3fa724dce",
    "per-tensor": "0509f2cec6f3",
    "BN not folded": "ed9744ca198a",
    "per-tensor, BN not folded": "fec5ca2dd87d",
    "MSE clipping": "771f721722d8",
    "+ 8-bit act., LT calib.": "5dfb5430a68a",
    "+ 8-bit act., balanced calib.": "5ba730c759a0",
    "+ 8-bit act., tail calib.": "f0e7a00c3789",
}
RECORDED_SMOKE_HASHES = {
    "default": "d91ae395c541",
    "per-tensor": "d681e5f4e720",
    "BN not folded": "7a9fefce6598",
    "per-tensor, BN not folded": "a2c84563089f",
    "MSE clipping": "f7fa496bae3b",
    "+ 8-bit act., LT calib.": "83a3373643c5",
    "+ 8-bit act., balanced calib.": "484cb97667c2",
    "+ 8-bit act., tail calib.": "2953c86b9a59",
}


def test_existing_configs_hash_as_before():
    assert config_hash(QuantConfig()) == "37e3fa724dce"
    assert config_hash(QuantConfig(**EXPLICIT_DEFAULTS)) == "37e3fa724dce"
    assert set(RECORDED_HASHES) == set(QUANT_ABLATIONS)
    for name, overrides in QUANT_ABLATIONS.items():
        assert config_hash(replace(QuantConfig(), **overrides)) == RECORDED_HASHES[name], name
    for profile in ("cpu", "cpu-v1", "paper"):
        got = {n: config_hash(q) for n, q in PROFILES[profile].quant_configs().items()}
        assert got == RECORDED_HASHES, profile
    assert {n: config_hash(q) for n, q in PROFILES["smoke"].quant_configs().items()} == RECORDED_SMOKE_HASHES
    every = QuantConfig(granularity="tensor", clipping="mse", fold_bn=False, act_bits=4, calibration="tail",
                        calibration_size=100, calibration_seed=3)  # fmt: skip
    assert config_hash(every) == "dd8bf5a2374e"
    s1, dcfg = Stage1Config(imbalance_factor=0.01), DecoupleConfig()
    assert config_hash(QuantizedRun(s1, dcfg, QuantConfig(), (8, 6, 5, 4, 3))) == "469d15e79f8b"
    assert config_hash(QuantizedRun(s1, dcfg, QuantConfig(act_bits=8), (8, 6, 5, 4, 3))) == "ec55501c0a6d"
    assert config_hash(MPQRun(s1, dcfg, QuantConfig(), MPQConfig())) == "aecb5b2d951e"


def test_hypotheses_are_valid_distinct_and_described():
    assert 8 <= len(QUANT_HYPOTHESES) <= 10
    assert list(QUANT_HYPOTHESIS_DESCRIPTIONS) == list(QUANT_HYPOTHESES)
    assert all(isinstance(d, str) and 20 < len(d) for d in QUANT_HYPOTHESIS_DESCRIPTIONS.values())
    for profile in PROFILES.values():
        cfgs = hypothesis_configs(profile.quant)
        assert list(cfgs) == list(QUANT_HYPOTHESES)
        for name, q in cfgs.items():
            assert q == replace(profile.quant, **QUANT_HYPOTHESES[name]), name
            assert q.calibration_size == profile.quant.calibration_size  # the profile's own
        hashes = {n: config_hash(q) for n, q in cfgs.items()}
        assert len(set(hashes.values())) == len(hashes)  # no two hypotheses are one run
        default = config_hash(profile.quant)
        assert default not in hashes.values()
        # per-tensor after folding is chapter 3's "per-tensor" ablation: the same run, shared
        assert cfgs["per-tensor weights, BN folded"] == profile.quant_configs()["per-tensor"]
    # the list is covered
    q = hypothesis_configs(QuantConfig())
    assert q["W=A, LT calib."].act_bits == "match" and q["W=A, LT calib."].calibration == "lt"
    assert {q[n].act_clipping for n in q if q[n].act_scheme == "affine"} >= {
        "minmax",
        "histogram",
        "percentile",
    }
    assert q["affine per-tensor weights"].weight_scheme == "affine"
    assert q["affine per-tensor weights"].granularity == "tensor"
    assert q["W=A, first/last at 8 bits"].first_last_bits == 8
    assert q["logits at 8 bits"].logit_bits == 8 and q["logits at 8 bits"].act_bits is None
    assert q["W=A + logits at same bits"].logit_bits == "match"
    with pytest.raises(ValueError, match=r"unknown quantizer hypotheses \['nope'\]"):
        hypothesis_configs(QuantConfig(), ["W=A, LT calib.", "nope"])


@pytest.mark.parametrize(
    "overrides, field, bad",
    [({"act_bits": "matched"}, "act_bits", "matched"), ({"act_bits": 1}, "act_bits", 1),
     ({"act_bits": 17}, "act_bits", 17), ({"act_bits": 8.0}, "act_bits", 8.0),
     ({"act_bits": True}, "act_bits", True),
     ({"logit_bits": "same"}, "logit_bits", "same"), ({"logit_bits": 1}, "logit_bits", 1),
     ({"logit_bits": 4.5}, "logit_bits", 4.5), ({"first_last_bits": "match"}, "first_last_bits", "match"),
     ({"first_last_bits": 1}, "first_last_bits", 1), ({"first_last_bits": True}, "first_last_bits", True),
     ({"weight_scheme": "asymmetric"}, "weight_scheme", "asymmetric"),
     ({"act_bits": 8, "act_scheme": "signed"}, "act_scheme", "signed"),
     ({"act_bits": 8, "act_clipping": "kl"}, "act_clipping", "kl"),
     ({"act_bits": 8, "act_clipping": None}, "act_clipping", None),
     ({"act_bits": 8, "act_clipping": "percentile", "act_percentile": 100.5}, "act_percentile", 100.5),
     ({"act_bits": 8, "act_clipping": "percentile", "act_percentile": 50}, "act_percentile", 50),
     ({"act_bits": 8, "act_clipping": "percentile", "act_percentile": np.nan}, "act_percentile", np.nan),
     # settings that would change nothing
     ({"act_scheme": "affine"}, "act_scheme", "affine"),
     ({"act_clipping": "histogram"}, "act_clipping", "histogram"),
     ({"act_bits": 8, "act_percentile": 99.9}, "act_percentile", 99.9)],
)  # fmt: skip
def test_bad_quant_config_values_are_errors_naming_them(overrides, field, bad):
    with pytest.raises(ValueError, match=field) as err:
        QuantConfig(**overrides)
    assert repr(bad) in str(err.value)
    assert "\n" not in str(err.value)


def test_good_new_values_are_accepted():
    q = QuantConfig(act_bits="match", logit_bits="match", act_scheme="affine", act_clipping="percentile",
                    act_percentile=np.float64(99.9), first_last_bits=np.int64(8),
                    weight_scheme="affine")  # fmt: skip
    assert type(q.act_percentile) is float and type(q.first_last_bits) is int
    assert QuantConfig(logit_bits=6, act_clipping="minmax").logit_bits == 6  # clipping of the logits alone


def test_bad_function_arguments_are_errors():
    w = torch.randn(4, 3)
    with pytest.raises(ValueError, match="weight scheme.*'asym'"):
        quantize_weight(w, 4, scheme="asym")
    with pytest.raises(ValueError, match="activation scheme.*'signed'"):
        activation_qparams(w, 4, scheme="signed")
    with pytest.raises(ValueError, match="activation clipping.*'kl'"):
        activation_qparams(w, 4, clipping="kl")
    with pytest.raises(ValueError, match="weight scheme.*'asym'"):
        model_size(random_vgg(), bit_map(4), weight_scheme="asym")


# ------------------------------------------------------------------ affine weights


def ref_affine_qparams(lo: np.ndarray, hi: np.ndarray, qmin: int, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's MinMaxObserver formula in float32 numpy: 0 in the range, zero point rounded."""
    lo = np.minimum(lo.astype(np.float32), np.float32(0))
    hi = np.maximum(hi.astype(np.float32), np.float32(0))
    span = hi - lo
    scale = np.where(span > 0, span / np.float32(qmax - qmin), np.float32(1)).astype(np.float32)
    zero = np.clip(qmin - np.round(lo / scale), qmin, qmax)
    return scale, zero


def ref_affine_quantize(
    w: np.ndarray, scale: np.ndarray, zero: np.ndarray, qmin: int, qmax: int
) -> np.ndarray:
    """Affine fake quantization per row: ``(clip(round(w / s) + z) - z) * s``."""
    s, z = scale.reshape(-1, 1), zero.reshape(-1, 1)
    return ((np.clip(np.round(w / s) + z, qmin, qmax) - z) * s).astype(np.float32)


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_affine_minmax_weights_match_a_numpy_reference(bits, granularity):
    w = skewed((12, 8, 3, 3), seed=bits)
    w[3] = w[3].abs() + 0.1  # a one-sided channel: its zero point sits at the grid's end
    q = quantize_weight(w, bits, granularity, "minmax", scheme="affine").numpy()
    assert q.shape == w.shape and q.dtype == np.float32
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    wg = groups(w.numpy(), granularity)
    scale, zero = ref_affine_qparams(wg.min(1), wg.max(1), qmin, qmax)
    qg = groups(q, granularity)
    expected = ref_affine_quantize(wg, scale, zero, qmin, qmax)
    np.testing.assert_allclose(qg, expected, rtol=0, atol=float(scale.max()) * 1e-5)
    # on the grid: (q / s + z) integers in [qmin, qmax], z an integer in range
    s, z = scale.reshape(-1, 1).astype(np.float64), zero.reshape(-1, 1)
    assert (zero == np.round(zero)).all() and (zero >= qmin).all() and (zero <= qmax).all()
    codes = qg / s + z
    np.testing.assert_allclose(codes, np.round(codes), rtol=0, atol=1e-3)
    assert np.round(codes).min() >= qmin and np.round(codes).max() <= qmax
    # min-max clips nothing: every error within half a step, the extremes included
    err = np.abs(wg.astype(np.float64) - qg)
    assert (err <= s / 2 * (1 + 1e-5) + 1e-7).all()
    rows = np.arange(len(wg))
    for col in (wg.argmin(1), wg.argmax(1)):
        assert (np.abs(qg[rows, col] - wg[rows, col]) <= s[:, 0] / 2 * (1 + 1e-5)).all()
    # zero is exactly representable (zero padding stays zero)
    w0 = w.clone()
    w0[:, 0, 0, 0] = 0
    q0 = quantize_weight(w0, bits, granularity, "minmax", scheme="affine")
    assert (q0[:, 0, 0, 0] == 0).all()


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("bits", [3, 4, 6])
def test_affine_mse_weights_minimise_the_error_over_the_grid(bits, granularity):
    w = skewed((6, 16, 3, 3), seed=10 + bits)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    wg = groups(w.numpy(), granularity).astype(np.float32)
    alphas = np.round(np.linspace(0.2, 1.0, 81), 3)
    errs = []
    for a in alphas:  # brute force: every clipping ratio of both ends
        s, z = ref_affine_qparams(wg.min(1) * np.float32(a), wg.max(1) * np.float32(a), qmin, qmax)
        errs.append(((wg.astype(np.float64) - ref_affine_quantize(wg, s, z, qmin, qmax)) ** 2).sum(1))
    best = np.min(errs, axis=0)
    q = groups(quantize_weight(w, bits, granularity, "mse", scheme="affine").numpy(), granularity)
    got = ((wg.astype(np.float64) - q) ** 2).sum(1)
    np.testing.assert_allclose(got, best, rtol=1e-4)
    assert (got <= np.asarray(errs)[-1] * (1 + 1e-5)).all()  # never worse than min-max (alpha = 1)


def test_affine_beats_symmetric_on_one_sided_weights_and_counts_its_zero_points():
    w = torch.rand(8, 64, generator=torch.Generator().manual_seed(3)) + 0.2  # all positive
    for gran in ("channel", "tensor"):
        sym = float(((quantize_weight(w, 4, gran) - w) ** 2).sum())
        aff = float(((quantize_weight(w, 4, gran, scheme="affine") - w) ** 2).sum())
        assert aff < 0.5 * sym, gran  # about half the step: a quarter of the error
        levels = [len(torch.unique(row)) for row in quantize_weight(w, 4, gran, scheme="affine")]
        assert max(levels) <= 16 and max(levels) > 8  # the negative codes are used for positive weights
    model = random_vgg()
    sym, aff = model_size(model, bit_map(4)), model_size(model, bit_map(4), weight_scheme="affine")
    channels = sum(weight_module(layer).weight.shape[0] for layer in model.layers.values())
    assert aff["scale_bits"] - sym["scale_bits"] == 4 * channels  # one 4-bit zero point per scale
    assert aff["weight_bits"] == sym["weight_bits"] and aff["average_bits"] == 4


def test_affine_weights_reach_the_whole_model(vgg, images):
    calib, x = images
    qcfg = QuantConfig(weight_scheme="affine", granularity="tensor")
    q = quantize_model(vgg, bit_map(4), qcfg)
    folded = legacy_fold(vgg)
    for name in LAYER_NAMES:
        w = weight_module(folded.layers[name]).weight
        assert torch.equal(
            weight_module(q.layers[name]).weight, quantize_weight(w, 4, "tensor", scheme="affine")
        )
    head = nn.Linear(16, 10)
    qh = quantize_head(head, 4, qcfg)
    assert torch.equal(qh.weight, quantize_weight(head.weight, 4, "tensor", scheme="affine"))


# ------------------------------------------------------------------ activation ranges


def relu_like(n: int, seed: int) -> torch.Tensor:
    """Non-negative, heavy-tailed, with zeros: what a ReLU outputs."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, generator=g) * torch.rand(n, generator=g) * 3)


def signed(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g) * 2 + 0.7


def ref_percentile(x: np.ndarray, p: float) -> float:
    """The linearly interpolated percentile from the sorted values (numpy's default method)."""
    v = np.sort(x.astype(np.float64))
    rank = p / 100 * (len(v) - 1)
    lo = int(np.floor(rank))
    hi = min(lo + 1, len(v) - 1)
    return float(v[lo] + (rank - lo) * (v[hi] - v[lo]))


@pytest.mark.parametrize("bits", [4, 8])
def test_minmax_and_percentile_activation_ranges(bits):
    qmax = 2**bits - 1
    a = relu_like(50_000, seed=bits)
    assert activation_qparams(a, bits, "unsigned", "minmax") == pytest.approx(
        (float(a.max()) / qmax, 0), rel=1e-6
    )
    p = ref_percentile(a.numpy(), 99.9)
    assert p < float(a.max())
    s, z = activation_qparams(a, bits, "unsigned", "percentile", percentile=99.9)
    assert z == 0 and s == pytest.approx(p / qmax, rel=1e-6)
    # an affine grid on a non-negative tensor is the unsigned one
    for clip in ("minmax", "percentile", "mse", "histogram"):
        assert activation_qparams(a, bits, "affine", clip, 99.9) == activation_qparams(
            a, bits, "unsigned", clip, 99.9
        )
    # a signed tensor: both ends, zero point from the minimum
    x = signed(50_000, seed=bits)
    lo, hi = float(x.min()), float(x.max())
    s, z = activation_qparams(x, bits, "affine", "minmax")
    assert s == pytest.approx((hi - lo) / qmax, rel=1e-6) and z == round(-lo / s) and 0 < z < qmax
    lo, hi = ref_percentile(x.numpy(), 0.1), ref_percentile(x.numpy(), 99.9)
    s, z = activation_qparams(x, bits, "affine", "percentile", percentile=99.9)
    assert s == pytest.approx((hi - lo) / qmax, rel=1e-5) and z == round(-lo / s)
    # a mostly-zero ReLU output: the percentile is 0, the range falls back to the largest value
    sparse = torch.zeros(100_000)
    sparse[:5] = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0])
    assert activation_qparams(sparse, bits, "unsigned", "percentile") == pytest.approx((4.0 / qmax, 0))


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_affine_mse_activation_range_is_the_best_clipping(bits):
    x = signed(20_000, seed=20 + bits)
    x[:3] = torch.tensor([15.0, -12.0, 18.0])  # outliers for the clipping to cut
    qmax = 2**bits - 1
    xn = x.numpy().astype(np.float32)
    errs, params = [], []
    for a in np.round(np.linspace(0.2, 1.0, 81), 3):
        s, z = ref_affine_qparams(
            np.array([xn.min() * np.float32(a)]), np.array([xn.max() * np.float32(a)]), 0, qmax
        )
        errs.append(
            float(((xn - ref_affine_quantize(xn[None], s, z, 0, qmax)[0]).astype(np.float64) ** 2).sum())
        )
        params.append((float(s[0]), int(z[0])))
    s, z = activation_qparams(x, bits, "affine", "mse")
    got = float(((torch.fake_quantize_per_tensor_affine(x, s, z, 0, qmax) - x).double() ** 2).sum())
    assert got == pytest.approx(min(errs), rel=1e-4)
    assert got < errs[-1]  # clipped: better than min-max
    assert s < params[-1][0]


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("kind", ["relu", "signed"])
def test_histogram_range_is_torch_histogram_observers(bits, kind):
    x = relu_like(30_000, seed=bits) if kind == "relu" else signed(30_000, seed=bits)
    obs = HistogramObserver(
        dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=2**bits - 1
    )
    obs.dst_nbins = 2**bits  # torch counts 256 levels whatever quant_max is: the grid's own levels
    obs(x)
    want_s, want_z = obs.calculate_qparams()
    got = activation_qparams(x, bits, "affine", "histogram")
    assert got == (float(want_s), int(want_z))
    assert histogram_qparams(x, bits) == got
    if kind == "relu":
        assert got[1] == 0 and activation_qparams(x, bits, "unsigned", "histogram") == got
    if bits == 8:  # at 8 bits the level count torch assumes is right: the plain observer
        plain = HistogramObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
        plain(x)
        s, z = plain.calculate_qparams()
        assert got == (float(s), int(z))


# ------------------------------------------------------------------ W=A, first/last, input


def _quantizer_outputs(q: nn.Module, x: torch.Tensor) -> dict[ActQuant, torch.Tensor]:
    seen: dict[ActQuant, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: seen.__setitem__(m, o.detach().clone()))
             for m in q.modules() if isinstance(m, ActQuant)]  # fmt: skip
    with torch.no_grad():
        q(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("bits", [4, 8])
def test_match_gives_activations_at_the_weights_bits(vgg, images, bits):
    calib, x = images
    qcfg = QuantConfig(act_bits="match")
    bmap = sweep_map(bits, qcfg)
    assert activation_bits(qcfg, bmap) == dict.fromkeys(LAYER_NAMES[:-1], bits)
    q = quantize_model(vgg, bmap, qcfg, calib)
    # a hooked layer's output (the quantizer after L5's ReLU, and after L14): at most 2**b values
    outs: dict[str, torch.Tensor] = {}
    hooks = [q.layers[n].register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o.detach().clone()))
             for n in ("L5", "L14")]  # fmt: skip
    with torch.no_grad():
        q(x)
    for h in hooks:
        h.remove()
    for n, o in outs.items():
        assert len(torch.unique(o)) <= 2**bits, n
    assert len(torch.unique(outs["L5"])) > 2 ** (bits - 1)  # not vacuous: the grid is used
    seen = _quantizer_outputs(q, x)
    assert len(seen) == 15 and {m.bits for m in seen} == {bits}
    for o in seen.values():
        assert len(torch.unique(o)) <= 2**bits and o.min() >= 0
    # the same as an int act_bits of those bits
    same = quantize_model(vgg, bmap, QuantConfig(act_bits=bits), calib)
    with torch.no_grad():
        assert torch.equal(q(x), same(x))
    # the float model stays float: no quantizer, the model itself
    assert activation_bits(qcfg, sweep_map(FLOAT, qcfg)) == {}
    f = quantize_model(vgg, sweep_map(FLOAT, qcfg), qcfg, calib)
    assert not any(isinstance(m, ActQuant) for m in f.modules())
    with torch.no_grad():
        assert torch.equal(f(x), vgg(x))


def test_first_last_bits_keep_l1_and_l16_at_8(vgg, images):
    calib, x = images
    qcfg = QuantConfig(act_bits="match", first_last_bits=8)
    bmap = sweep_map(4, qcfg)
    assert bmap == {**dict.fromkeys(LAYER_NAMES, 4), "L1": 8, "L16": 8}
    assert sweep_map(FLOAT, qcfg) == bit_map(FLOAT)
    acts = activation_bits(qcfg, bmap)
    assert acts == {**dict.fromkeys(LAYER_NAMES[:-1], 4), "L15": 8}  # L16's input at 8 as well
    q = quantize_model(vgg, bmap, qcfg, calib)
    folded = legacy_fold(vgg)
    for name in LAYER_NAMES:  # each layer against the frozen chapter-3 quantizer at its bits
        w = weight_module(folded.layers[name]).weight
        b = 8 if name in ("L1", "L16") else 4
        assert torch.equal(weight_module(q.layers[name]).weight, legacy_weight(w, b)), name
        levels = max(len(torch.unique(row)) for row in weight_module(q.layers[name]).weight)
        assert (levels > 16) if b == 8 else (levels <= 16), name
    assert q.layers["L15"][-1].bits == 8 and q.layers["L14"][-1].bits == 4
    assert model_size(vgg, bmap)["average_bits"] > 4
    # with int activation bits: the inputs of L1 (affine only) and L16 at 8, the rest at act_bits
    fixed = QuantConfig(act_bits=4, act_scheme="affine", act_clipping="minmax", first_last_bits=8)
    assert activation_bits(fixed, sweep_map(6, fixed)) == {
        INPUT: 8,
        **dict.fromkeys(LAYER_NAMES[:-1], 4),
        "L15": 8,
    }
    assert activation_bits(QuantConfig(act_bits=4, act_scheme="affine"), bit_map(FLOAT))[INPUT] == 4
    # quantized like the rest: no override
    assert sweep_map(4, QuantConfig(act_bits="match")) == bit_map(4)


@pytest.mark.parametrize("clipping", ["minmax", "histogram", "percentile"])
def test_affine_activations_quantize_the_input_image(vgg, images, clipping):
    calib, x = images
    qcfg = QuantConfig(act_bits="match", act_scheme="affine", act_clipping=clipping)
    bmap = sweep_map(4, qcfg)
    assert set(activation_bits(qcfg, bmap)) == {INPUT, *LAYER_NAMES[:-1]}
    q = quantize_model(vgg, bmap, qcfg, calib)
    first = q.layers["L1"]
    assert isinstance(first[0], ActQuant) and isinstance(first[-1], ActQuant)
    aq = first[0]
    want = activation_qparams(calib, 4, "affine", clipping)
    assert (aq.scale, aq.zero_point) == want and 0 < aq.zero_point < 15  # the image is signed
    if clipping == "minmax":  # the reference: the calibration images' extremes
        lo, hi = float(calib.min()), float(calib.max())
        assert aq.scale == pytest.approx((hi - lo) / 15, rel=1e-6) and aq.zero_point == round(-lo / aq.scale)
    seen = _quantizer_outputs(q, x)
    k = seen[aq] / aq.scale + aq.zero_point
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-3)
    assert 0 <= k.round().min() and k.round().max() <= 15
    # after a ReLU the affine quantizers are the unsigned ones
    unsigned = quantize_model(vgg, bmap, replace(qcfg, act_scheme="unsigned"), calib)
    assert [q.layers[n][-1].scale for n in LAYER_NAMES[:-1]] == [
        unsigned.layers[n][-1].scale for n in LAYER_NAMES[:-1]
    ]
    assert all(q.layers[n][-1].zero_point == 0 for n in LAYER_NAMES[:-1])
    assert weight_module(first) is first[1][0]  # the weight is still found inside the wrapping


# ------------------------------------------------------------------ logits


@pytest.mark.parametrize("clipping", ["minmax", "mse"])
@pytest.mark.parametrize("bits", [3, 8])
def test_logits_are_on_a_grid_of_the_stated_bits(bits, clipping):
    g = torch.Generator().manual_seed(bits)
    head = nn.Linear(32, 10)
    calib_f, f = torch.rand(200, 32, generator=g), torch.rand(300, 32, generator=g)
    qcfg = QuantConfig(logit_bits=bits, act_clipping=clipping)
    qh = quantize_logits(head, calib_f, bits, qcfg)
    aq = qh[-1]
    with torch.no_grad():
        out, calib_logits, float_out = qh(f), head(calib_f), head(f)
    k = out / aq.scale + aq.zero_point
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-3)
    assert k.round().min() >= 0 and k.round().max() <= 2**bits - 1
    assert len(torch.unique(out)) <= 2**bits
    if clipping == "minmax":  # the reference: the calibration logits' range, 0 included
        lo, hi = min(float(calib_logits.min()), 0.0), max(float(calib_logits.max()), 0.0)
        assert aq.scale == pytest.approx((hi - lo) / (2**bits - 1), rel=1e-6)
        assert aq.zero_point == round(-lo / aq.scale)
        inside = (float_out >= lo) & (float_out <= hi)
        assert ((out - float_out).abs()[inside] <= aq.scale / 2 * (1 + 1e-5)).all()
    assert logit_bits(qcfg, bit_map(4)) == bits
    match = QuantConfig(logit_bits="match")
    assert logit_bits(match, bit_map(4)) == 4 and logit_bits(match, bit_map(FLOAT)) is None
    assert logit_bits(replace(match, first_last_bits=8), sweep_map(4, replace(match, first_last_bits=8))) == 8


# ------------------------------------------------------------------ the sweep end to end


def test_sweep_runs_two_hypotheses_end_to_end(tiny_cfg, patched_data, monkeypatch):
    dcfg = DecoupleConfig(epochs=1, batch_size=32, tau_grid=(0.0, 1.0))
    names = ["naive: per-tensor affine W=A + logits", "W=A, first/last at 8 bits"]
    hyps = hypothesis_configs(QuantConfig(calibration_size=10), names)
    calls: list[tuple] = []  # what the backbone and the heads were quantized with
    real_model, real_logits = runs.quantize_model, runs.quantize_logits

    def spy_model(model, bmap, q, calibration=None):
        qmodel = real_model(model, bmap, q, calibration)
        calls.append(("model", dict(bmap), qmodel, calibration))
        return qmodel

    def spy_logits(head, features, bits, q):
        calls.append(("logits", bits, features))
        return real_logits(head, features, bits, q)

    monkeypatch.setattr(runs, "quantize_model", spy_model)
    monkeypatch.setattr(runs, "quantize_logits", spy_logits)
    s1 = runs.stage1(tiny_cfg, "smoke", compute=True, progress=False)
    dec = runs.decoupled(tiny_cfg, dcfg, "smoke", compute=True, progress=False)
    data = artifacts.dataset()  # the patched tiny data set
    x_test = torch.from_numpy(data.test_x[artifacts.splits_for(tiny_cfg, data).test])
    heads = artifacts.classifiers(tiny_cfg, dcfg, progress=False)
    for name, qcfg in hyps.items():
        calls.clear()
        out = runs.quantized(tiny_cfg, dcfg, qcfg, (8, 4), "smoke", compute=True, progress=False)
        assert set(out["entries"]) == {"float", "8", "4"}
        assert sum(out["calibration_counts"]) == 10 and out["quant"]["act_bits"] == "match"
        run = QuantizedRun(tiny_cfg, dcfg, qcfg, (8, 4))
        assert results.load(plan.result_path("smoke", "quantized", run), run) is not None
        models = [c for c in calls if c[0] == "model"]
        assert [m[1] for m in models] == [sweep_map(b, qcfg) for b in (FLOAT, 8, 4)]
        for key, (_, bmap, qmodel, _calib) in zip(("float", "8", "4"), models, strict=True):
            entry = out["entries"][key]
            assert entry["bit_map"] == bmap
            assert entry["size"] == model_size(artifacts.stage1_model(tiny_cfg, data, progress=False), bmap,
                                               qcfg.granularity, qcfg.weight_scheme)  # fmt: skip
            if key == "float":  # the float model stays float: stage 1's and stage 2's predictions
                got = results.decode_predictions(entry["methods"]["baseline"]["test"]["predictions"])
                assert got.tolist() == s1["test"]["predictions"]
                for m in METHODS[1:]:
                    got = results.decode_predictions(entry["methods"][m]["test"]["predictions"]).tolist()
                    assert got == dec["methods"][m]["test"]["predictions"], m
                continue
            b = int(key)
            quantizers = [m for m in qmodel.modules() if isinstance(m, ActQuant)]
            if qcfg.first_last_bits:
                assert bmap["L1"] == bmap["L16"] == 8 and bmap["L2"] == b
                assert {m.bits for m in quantizers} == ({b, 8} if b != 8 else {8})
            else:
                assert len(quantizers) == 16 and {m.bits for m in quantizers} == {b}  # the input too
            logits = [c for c in calls if c[0] == "logits"]
            f, _ = predict(qmodel, x_test)
            for m, head in heads.items():
                qhead = quantize_head(head, bmap["L16"], qcfg)
                if qcfg.logit_bits is not None:
                    feats = next(c[2] for c in logits if c[1] == b)
                    qhead = real_logits(qhead, feats, b, qcfg)
                with torch.no_grad():
                    want = qhead(f).argmax(1).tolist()
                got = results.decode_predictions(entry["methods"][m]["test"]["predictions"]).tolist()
                assert got == want, (name, key, m)
        n_logit_calls = sum(c[0] == "logits" for c in calls)
        assert n_logit_calls == (2 * len(METHODS) if qcfg.logit_bits is not None else 0)  # not at float
