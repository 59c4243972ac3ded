"""The study's model families, their weight layers named ``L1..Ln`` in forward order.

- :class:`VGG16` for CIFAR (13 conv + 3 fully connected = 16 weight layers, L1..L16): chapters 1-5.
  The blog's sensitivity figure names the layers L1..L16; so do we, so a per-layer bit-width map
  reads the same in the blog and here.
- :class:`ResNet32`, the CIFAR-LT literature's backbone (31 conv + 1 fully connected = 32 weight
  layers, L1..L32): the chapter "Beyond VGG16 and cRT".

Both expose what the quantizers, sensitivities and decoupled classifiers use: ``layers`` (the weight
layers by name, a conv's BatchNorm inside its layer), ``features`` (the classifier's input),
``classifier`` (the last layer), ``feature_dim`` and :meth:`act_sites` (where each layer's output
activation is measured and quantized). :func:`build` makes either from an architecture name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ARCHS

#: Output channels of the 13 conv layers at width 1.0; "M" is a 2x2 max-pool.
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class ConvBlock(nn.Sequential):
    """3x3 conv (no bias: BatchNorm follows) + BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )


class VGG16(nn.Module):
    """VGG16 with BatchNorm for 32x32 inputs and a width multiplier.

    The two hidden fully connected layers are ``512 * width`` wide (the common CIFAR port) unless
    ``hidden`` says otherwise; ``hidden=4096, dropout=0.5`` is the classic ImageNet classifier
    (chapter 5's "classic classifier" rung).

    ``layers`` holds the 16 weight layers as ``L1..L16`` (conv blocks L1-L13, linear L14-L16).
    :meth:`features` returns the penultimate representation (after L15's ReLU) on which the
    decoupled classifiers of chapter 2 are trained; ``L16`` is the classifier.
    """

    def __init__(
        self, num_classes: int = 10, width: float = 1.0, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not 0 < width <= 4:
            raise ValueError(f"width must be in (0, 4], got {width!r}")
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1):
            raise ValueError(f"hidden must be a positive int (or None: 512 x width), got {hidden!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.width = width
        self.num_classes = num_classes
        layers: dict[str, nn.Module] = {}
        self.pool_after: set[str] = set()
        cin, k = 3, 0
        for v in VGG16_CFG:
            if v == "M":
                self.pool_after.add(f"L{k}")
                continue
            k += 1
            cout = max(1, round(int(v) * width))
            layers[f"L{k}"] = ConvBlock(cin, cout)
            cin = cout
        hidden = max(1, round(512 * width)) if hidden is None else hidden
        layers["L14"] = nn.Linear(cin, hidden)
        layers["L15"] = nn.Linear(hidden, hidden)
        layers["L16"] = nn.Linear(hidden, num_classes)
        self.layers = nn.ModuleDict(layers)
        self.pool = nn.MaxPool2d(2)
        # the classic VGG16 classifier drops out after L14's and L15's ReLU; no module without
        # dropout, so that the models trained before it existed draw the same random numbers
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.feature_dim = hidden
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def classifier(self) -> nn.Linear:
        """The last layer (L16), retrained or re-scaled by the decoupling methods."""
        return self.layers["L16"]  # type: ignore[return-value]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (input of L16)."""
        for i in range(1, 14):
            name = f"L{i}"
            x = self.layers[name](x)
            if name in self.pool_after:
                x = self.pool(x)
        x = torch.flatten(x, 1)
        x = self.drop(torch.relu(self.layers["L14"](x)))
        return self.drop(torch.relu(self.layers["L15"](x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def macs_per_image(self, size: int = 32) -> int:
        """Multiply-accumulates of one forward pass on a ``size`` x ``size`` image (convs and fully
        connected layers; BatchNorm, ReLU and pooling are not counted): what a training step costs
        per image, up to a constant (chapter 5's scale ladder)."""
        macs, side = 0, size
        for i in range(1, 14):
            conv = self.layers[f"L{i}"][0]
            macs += conv.in_channels * conv.out_channels * 9 * side * side
            if f"L{i}" in self.pool_after:
                side //= 2
        return macs + sum(self.layers[f"L{i}"].weight.numel() for i in (14, 15, 16))

    def weight_layers(self) -> dict[str, nn.Module]:
        """The 16 weight layers by name (a conv block's weight is its first module's)."""
        return dict(self.layers.items())

    def act_sites(self) -> dict[str, tuple[nn.ModuleDict, str]]:
        """Where the output activation of each layer but the last is measured and quantized: the
        (module dict, key) of the module whose output, after a ReLU, feeds the next layer. In the
        VGG each layer's own output (a conv block ends in its ReLU; L14/L15's ReLU follows, and an
        unsigned grid clamps as it does; a max-pool commutes with rounding)."""
        return {n: (self.layers, n) for n in list(self.layers)[:-1]}


class ResidualBlock(nn.Module):
    """He et al.'s basic block for CIFAR: two 3x3 convs, the identity shortcut or, where the shape
    changes, option A (a stride-2 subsample zero-padded to the new width: no weights), then a ReLU.

    The two convs are the model's weight layers ``a`` (conv, BN, ReLU) and ``b`` (conv, BN); the
    ReLU after the addition is ``posts[b]`` (layer ``b``'s output activation). The block looks
    all three up by name in the model's dicts at every call, so a quantizer that replaces one
    there replaces it here."""

    def __init__(self, layers: nn.ModuleDict, posts: nn.ModuleDict, a: str, b: str, cin: int, cout: int,
                 stride: int) -> None:  # fmt: skip
        super().__init__()
        self._dicts = (layers, posts)  # a tuple: the model registers them, not each block again
        self.a, self.b, self.stride = a, b, stride
        self.pad = cout - cin
        posts[b] = nn.ReLU()
        layers[a] = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                  nn.BatchNorm2d(cout), nn.ReLU(inplace=True))  # fmt: skip
        layers[b] = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers, posts = self._dicts
        shortcut = x
        if self.stride != 1 or self.pad:
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride],
                             (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))  # fmt: skip
        return posts[self.b](layers[self.b](layers[self.a](x)) + shortcut)


class ResNet32(nn.Module):
    """ResNet-32 for CIFAR (He et al. 2016, section 4.2; the backbone of the LDAM-DRW and logit
    adjustment code): a 3x3 stem conv, three stages of five basic blocks at 16, 32 and 64
    channels (``x width``), global average pooling and a linear classifier; 0.46 M parameters
    for 10 classes at width 1.

    Weight layers in forward order: ``L1`` the stem, ``L2``..``L31`` the blocks' convs (block
    ``j`` has ``L{2j+2}``, ``L{2j+3}``), ``L32`` the classifier. :meth:`features` returns the
    pooled 64-wide representation (the input of L32)."""

    STAGES = (16, 32, 64)
    BLOCKS_PER_STAGE = 5

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        if not 0 < width <= 4:
            raise ValueError(f"width must be in (0, 4], got {width!r}")
        self.width, self.num_classes = width, num_classes
        chans = [max(1, round(c * width)) for c in self.STAGES]
        self.layers, self.posts = nn.ModuleDict(), nn.ModuleDict()
        self.layers["L1"] = ConvBlock(3, chans[0])
        blocks, cin, k = [], chans[0], 2
        for s, cout in enumerate(chans):
            for i in range(self.BLOCKS_PER_STAGE):
                stride = 2 if s > 0 and i == 0 else 1
                blocks.append(ResidualBlock(self.layers, self.posts, f"L{k}", f"L{k + 1}", cin, cout, stride))
                cin, k = cout, k + 2
        self.blocks = blocks  # a plain list: their modules live in ``layers`` and ``posts``
        self.layers[f"L{k}"] = nn.Linear(cin, num_classes)
        self.feature_dim = cin
        self._init()

    def _init(self) -> None:
        # as the LDAM-DRW / logit-adjustment code: Kaiming-normal convs and classifier
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    @property
    def classifier(self) -> nn.Linear:
        """The last layer (L32), retrained or re-scaled by the decoupling methods."""
        return self.layers[list(self.layers)[-1]]  # type: ignore[return-value]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features after the last block (input of L32)."""
        x = self.layers["L1"](x)
        for block in self.blocks:
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def macs_per_image(self, size: int = 32) -> int:
        """Multiply-accumulates of one forward pass (convs and the classifier), as VGG16's."""
        macs, side = 0, size
        for layer in self.layers.values():
            if isinstance(layer, nn.Linear):
                macs += layer.weight.numel()
                continue
            conv = layer[0]
            side //= conv.stride[0]
            macs += conv.in_channels * conv.out_channels * 9 * side * side
        return macs

    def weight_layers(self) -> dict[str, nn.Module]:
        """The 32 weight layers by name."""
        return dict(self.layers.items())

    def act_sites(self) -> dict[str, tuple[nn.ModuleDict, str]]:
        """Where each layer's output activation is measured and quantized: the stem's and every
        block's first conv's own ReLU; for a block's second conv, the ReLU after the residual
        addition (what feeds the next block)."""
        posts = self.posts
        return {n: ((posts, n) if n in posts else (self.layers, n)) for n in list(self.layers)[:-1]}


#: Either model family (what the quantizers and sensitivities accept).
Model = VGG16 | ResNet32


def build(arch: str, num_classes: int = 10, width: float = 1.0, hidden: int | None = None,
          dropout: float = 0.0) -> Model:  # fmt: skip
    """A freshly initialised model of family ``arch`` (the caller seeds torch first)."""
    if arch == "vgg16":
        return VGG16(num_classes=num_classes, width=width, hidden=hidden, dropout=dropout)
    if arch == "resnet32":
        if hidden is not None or dropout:
            raise ValueError(f"resnet32 has no hidden layers: hidden={hidden!r}, dropout={dropout!r}")
        return ResNet32(num_classes=num_classes, width=width)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
