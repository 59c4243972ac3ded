"""ltmpq.models: VGG16's sixteen named weight layers, its width, parameter and MAC counts, and the
classic classifier (4096-wide L14/L15 with dropout) of the scale ladder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ltmpq.config import Stage1Config
from ltmpq.models import VGG16
from ltmpq.training import build_model
from ltmpq.vocab import LAYER_NAMES


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


# ------------------------------------------------------------------ the classic classifier


def test_classic_classifier_shapes_and_parameters():
    m = VGG16(width=0.25, hidden=4096, dropout=0.5)
    assert m.feature_dim == 4096
    assert m.layers["L14"].weight.shape == (4096, 128)  # 512 x 0.25 conv channels in
    assert m.layers["L15"].weight.shape == (4096, 4096)
    assert m.classifier.weight.shape == (10, 4096)
    fc = (128 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10)
    conv = sum(p.numel() for p in VGG16(width=0.25).parameters()) - (2 * (128 * 128 + 128) + 128 * 10 + 10)
    assert sum(p.numel() for p in m.parameters()) == conv + fc


def test_dropout_acts_in_training_only_and_is_absent_by_default():
    torch.manual_seed(0)  # the weights and the input, whatever ran before
    m = VGG16(width=1 / 16, hidden=64, dropout=0.5).eval()
    x = torch.randn(4, 3, 32, 32)
    m.drop.train()
    ones = m.drop(torch.ones(20_000))
    assert 0.47 < (ones == 0).float().mean().item() < 0.53  # half the units dropped ...
    assert set(ones.unique().tolist()) == {0.0, 2.0}  # ... the others scaled by 1 / (1 - p)
    with torch.no_grad():
        assert not torch.equal(m.features(x), m.features(x))  # another draw each time
        m.eval()
        assert torch.equal(m.features(x), m.features(x))
    assert isinstance(VGG16(width=1 / 16).drop, torch.nn.Identity)


def test_without_dropout_a_model_draws_no_random_numbers_in_training():
    # so the models trained before the classic classifier existed stay reproducible
    x = torch.randn(2, 3, 32, 32)

    def draw_after_features(model) -> torch.Tensor:
        model.train()
        torch.manual_seed(5)
        model.features(x)
        return torch.rand(1)

    torch.manual_seed(5)
    untouched = torch.rand(1)
    assert torch.equal(draw_after_features(build_model(Stage1Config(0.1, width=1 / 16))), untouched)
    classic = build_model(Stage1Config(0.1, width=1 / 16, hidden=32, dropout=0.5))
    assert not torch.equal(draw_after_features(classic), untouched)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"hidden": 0}, "hidden"), ({"hidden": 4.5}, "hidden"), ({"hidden": True}, "hidden"),
     ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout")],
)  # fmt: skip
def test_model_and_config_reject_bad_classifier_shapes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGG16(width=0.25, **kwargs)
    with pytest.raises(ValueError, match=match):
        Stage1Config(0.01, **kwargs)


def test_macs_per_image_counts_the_classic_classifiers_layers():
    # width 1 by hand: tests/test_paper.py; here what the 4096-wide layers add
    classic = VGG16(width=0.25, hidden=4096)
    assert classic.macs_per_image() - VGG16(width=0.25).macs_per_image() == (
        128 * 4096 + 4096 * 4096 + 4096 * 10 - (128 * 128 * 2 + 128 * 10)
    )


# ResNet-32 (the chapter "Beyond VGG16 and cRT")


def test_resnet32_matches_the_published_architecture():
    """He et al.'s CIFAR ResNet-32 as the LDAM-DRW / logit-adjustment code builds it: 0.46 M
    parameters (464,154 with 10 classes), 31 convolutions and one linear layer named L1..L32,
    option-A shortcuts (no weights), 64 pooled features, 10 logits."""
    from ltmpq.models import ResNet32

    m = ResNet32()
    assert sum(p.numel() for p in m.parameters()) == 464_154
    assert list(m.layers) == [f"L{i}" for i in range(1, 33)]
    convs = [n for n, layer in m.layers.items() if isinstance(layer, nn.Sequential)]
    assert len(convs) == 31 and isinstance(m.layers["L32"], nn.Linear)
    assert m.classifier is m.layers["L32"] and m.feature_dim == 64
    widths = [m.layers[f"L{i}"][0].out_channels for i in (1, 2, 11, 12, 21, 22, 31)]
    assert widths == [16, 16, 16, 32, 32, 64, 64]  # stages of 5 blocks: L2-11, L12-21, L22-31
    assert [m.layers[f"L{i}"][0].stride[0] for i in (2, 12, 22)] == [1, 2, 2]
    x = torch.randn(3, 3, 32, 32)
    assert m.features(x).shape == (3, 64) and m(x).shape == (3, 10)


def test_resnet32_residual_blocks_add_their_input():
    """With a block's second conv zeroed (weights and BN shift) the block passes its input through
    the shortcut (then the ReLU): the addition is there and reads the model's ``layers``."""
    from ltmpq.models import ResNet32

    torch.manual_seed(0)
    m = ResNet32().eval()
    with torch.no_grad():
        m.layers["L3"][0].weight.zero_()
        m.layers["L3"][1].bias.zero_()
    block = m.blocks[0]
    x = torch.relu(torch.randn(2, 16, 32, 32))
    assert torch.equal(block(x), x)
    # a stride-2 block's shortcut: subsampled, zero-padded from 16 to 32 channels (8 on each side)
    down = m.blocks[5]
    with torch.no_grad():
        m.layers[down.b][0].weight.zero_()
        m.layers[down.b][1].bias.zero_()
    y = down(x)
    assert y.shape == (2, 32, 16, 16)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2]) and not y[:, :8].any() and not y[:, 24:].any()


def test_resnet32_macs_and_activation_sites():
    from ltmpq.models import ResNet32

    m = ResNet32()
    # stem 16*3*9*1024 + stage 1: 10 convs 16*16*9*1024 + stage 2: 32*16*9*256 + 9 x 32*32*9*256
    # + stage 3: 64*32*9*64 + 9 x 64*64*9*64 + classifier 640
    expect = (16 * 3 + 10 * 16 * 16) * 9 * 1024 + (32 * 16 + 9 * 32 * 32) * 9 * 256
    expect += (64 * 32 + 9 * 64 * 64) * 9 * 64 + 640
    assert m.macs_per_image() == expect
    sites = m.act_sites()
    assert list(sites) == [f"L{i}" for i in range(1, 32)]
    holder, key = sites["L3"]  # a block's second conv: the ReLU after the addition
    assert holder is m.posts and isinstance(holder[key], nn.ReLU)
    assert sites["L2"][0] is m.layers


@pytest.mark.parametrize(
    ("arch", "kwargs", "match"),
    [("resnet", {}, "arch must be one of"), ("resnet32", {"hidden": 64}, "no hidden layers")],
)
def test_build_names_bad_architectures(arch, kwargs, match):
    from ltmpq.models import build

    with pytest.raises(ValueError, match=match):
        build(arch, **kwargs)


def test_build_model_follows_the_config_arch():
    from ltmpq.models import ResNet32

    cfg = Stage1Config(imbalance_factor=0.01, arch="resnet32", width=1.0)
    assert isinstance(build_model(cfg), ResNet32)
    with pytest.raises(ValueError, match="arch must be one of"):
        Stage1Config(imbalance_factor=0.01, arch="resnet20")
    with pytest.raises(ValueError, match="shape the VGG16's classifier"):
        Stage1Config(imbalance_factor=0.01, arch="resnet32", dropout=0.5)
