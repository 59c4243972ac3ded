"""ltmpq.config (configs, hashes, profiles) and ltmpq.models (VGG16)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from torch import nn

from ltmpq.config import (
    PROFILES,
    DecoupleConfig,
    DecoupledRun,
    Stage1Config,
    config_hash,
    get_profile,
    with_overrides,
)
from ltmpq.models import VGG16
from ltmpq.training import build_model
from ltmpq.vocab import LAYER_NAMES

# ------------------------------------------------------------------ configs


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "0.1", float("nan"), None])
def test_stage1_config_rejects_bad_imbalance_factor(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        Stage1Config(imbalance_factor=bad)


def test_stage1_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="precision.*'fp16'"):
        Stage1Config(0.1, precision="fp16")
    with pytest.raises(ValueError, match="epochs"):
        Stage1Config(0.1, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        Stage1Config(0.1, batch_size=0)
    with pytest.raises(ValueError, match="lt_profile"):
        Stage1Config(0.1, lt_profile="zipf")
    assert Stage1Config(1.0).imbalance_factor == 1.0  # IF = 1 (balanced) is allowed
    assert Stage1Config(0.1, precision="bf16").precision == "bf16"


def test_decouple_config_rejects_bad_fields():
    with pytest.raises(ValueError, match="tau_grid"):
        DecoupleConfig(tau_grid=())
    with pytest.raises(ValueError, match="tau_grid"):
        DecoupleConfig(tau_grid=(0.0, -0.5))
    with pytest.raises(ValueError, match="epochs"):
        DecoupleConfig(epochs=0)
    assert DecoupleConfig().tau_grid[0] == 0.0 and DecoupleConfig().tau_grid[-1] == 2.0
    assert len(DecoupleConfig().tau_grid) == 21


CHANGES = dict(imbalance_factor=0.02, seed=1, lt_profile="step", val_per_class=50, val_seed=1, n_max=300,
               test_per_class=100, width=0.5, epochs=31, batch_size=64, lr=0.1, momentum=0.8,
               weight_decay=1e-4, warmup_epochs=2, precision="bf16")  # fmt: skip


def test_config_hash_stable_and_sensitive_to_every_field():
    base = Stage1Config(imbalance_factor=0.01, seed=2)
    h = config_hash(base)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    assert h == config_hash(Stage1Config(imbalance_factor=0.01, seed=2)) == base.key
    seen = {h}
    for name, value in CHANGES.items():
        changed = config_hash(replace(base, **{name: value}))
        assert changed not in seen, name
        seen.add(changed)
    assert base.tag == "if0.01-seed2"


def test_config_hash_nested_and_typed():
    s1 = Stage1Config(0.1)
    a = DecoupledRun(s1, DecoupleConfig())
    assert config_hash(a) == config_hash(DecoupledRun(Stage1Config(0.1), DecoupleConfig()))
    assert config_hash(a) != config_hash(DecoupledRun(s1, DecoupleConfig(epochs=5)))
    assert config_hash(a) != config_hash(DecoupledRun(replace(s1, seed=3), DecoupleConfig()))
    assert config_hash(a) != config_hash(s1)
    assert a.tag == s1.tag


def test_equal_configs_have_equal_hashes():
    # Stage1Config(1) == Stage1Config(1.0), so they are the same run and must share results;
    # the hash of json.dumps(1) and json.dumps(1.0) differ unless the factor is normalised.
    assert Stage1Config(1) == Stage1Config(1.0)
    assert config_hash(Stage1Config(1)) == config_hash(Stage1Config(1.0))


def test_get_profile_and_profiles():
    with pytest.raises(ValueError, match="nope") as err:
        get_profile("nope")
    for name in ("cpu", "paper", "smoke"):
        assert repr(name) in str(err.value)
    smoke = get_profile("smoke")
    assert smoke is PROFILES["smoke"] and smoke.name == "smoke"
    cfgs = smoke.stage1_configs()
    assert [(c.imbalance_factor, c.seed) for c in cfgs] == [(0.1, 0), (0.1, 1), (0.01, 0), (0.01, 1)]
    assert all(c.width == 1 / 16 and c.epochs == 2 and c.n_max == 300 for c in cfgs)
    assert [c.seed for c in smoke.stage1_configs(imbalance_factors=[0.02], seeds=[7])] == [7]
    for prof in PROFILES.values():
        for cfg in prof.stage1_configs():  # every profile builds valid, distinct configs
            assert isinstance(cfg, Stage1Config)
        assert len({c.key for c in prof.stage1_configs()}) == len(prof.imbalance_factors) * len(prof.seeds)


def test_with_overrides():
    cfg = Stage1Config(0.1)
    assert with_overrides(cfg, epochs=3).epochs == 3
    assert cfg.epochs == 30  # frozen original untouched
    with pytest.raises(ValueError, match=r"\['nope'\]"):
        with_overrides(cfg, nope=1)
    with pytest.raises(ValueError, match="precision"):
        with_overrides(cfg, precision="int8")  # validation runs again


# ------------------------------------------------------------------ VGG16


def test_vgg16_has_16_named_weight_layers():
    model = VGG16(width=1 / 16)
    layers = model.weight_layers()
    assert tuple(layers) == LAYER_NAMES == tuple(f"L{i}" for i in range(1, 17))
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 3
    for i in range(1, 14):
        assert isinstance(layers[f"L{i}"][0], nn.Conv2d)
    for i in (14, 15, 16):
        assert isinstance(layers[f"L{i}"], nn.Linear)
    assert model.classifier is layers["L16"]
    assert model.pool_after == {"L2", "L4", "L7", "L10", "L13"}


def test_vgg16_width_scales_channels_and_shapes():
    model = VGG16(num_classes=7, width=1 / 16)
    channels = [model.layers[f"L{i}"][0].out_channels for i in range(1, 14)]
    assert channels == [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    assert model.feature_dim == 32
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model.features(x).shape == (2, 32)


def test_vgg16_parameter_count_at_width_1():
    # 13 bias-free 3x3 convs + BatchNorm (weight, bias) + 512-512-512-10 fully connected
    chans = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    conv = sum(9 * a * b + 2 * b for a, b in zip(chans, chans[1:], strict=False))
    fc = (512 * 512 + 512) * 2 + 512 * 10 + 10
    assert conv + fc == 15_249_354
    assert sum(p.numel() for p in VGG16(width=1.0).parameters()) == conv + fc


@pytest.mark.parametrize("bad", [0, -0.25, 4.5])
def test_vgg16_rejects_bad_width(bad):
    with pytest.raises(ValueError, match="width"):
        VGG16(width=bad)


def test_build_model_is_seeded():
    cfg = Stage1Config(0.1, width=1 / 16)
    a, b = build_model(cfg), build_model(cfg)
    c = build_model(replace(cfg, seed=1))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.layers["L1"][0].weight, c.layers["L1"][0].weight)
