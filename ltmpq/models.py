"""VGG16 for CIFAR (13 conv + 3 fully connected = 16 weight layers named L1..L16).

Used by chapters 1-4. The blog's sensitivity figure names the layers L1..L16; so do we, so a
per-layer bit-width map reads the same in the blog and here.
"""

from __future__ import annotations

import torch
from torch import nn

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
