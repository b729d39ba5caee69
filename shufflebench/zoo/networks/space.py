"""A generated space of ShuffleNet- and MobileNet-like networks, one architecture per seed (``searchspace``).

The latency model is judged on networks it has never seen (benchmarks/predict.py), and calibrated with a few whole
networks of its own; both come from here, with disjoint seeds (`CALIBRATION_SEED_BASE` and above are the
calibration's). A seed draws everything but the resolution, which is the usual ``resolution`` option:

* ``family=mobilenet``: a 3x3/2 stem, then seven stages as MobileNet V2's table (first strides 1, 2, 2, 2, 1, 2, 1),
  each of 1-4 blocks with its own expansion (1, 3, 4 or 6; expansion 1 without a shortcut is MobileNet V1's
  depthwise-separable block), depthwise kernel (3, 5 or 7) and width (the V2 channels times a width multiplier and a
  per-stage jitter, multiples of 8), ReLU or ReLU6; a last 1x1 convolution, global pooling and the classifier;
* ``family=shufflenet``: a 3x3/2 stem and a 3x3/2 max pool, then three stages of 2-8 units of one type, ShuffleNet V1
  (grouped 1x1 convolutions with 1, 2, 3, 4 or 8 groups, shuffle, depthwise, residual add or pooled concat) or
  ShuffleNet V2 (channel split, concat, shuffle), with a depthwise kernel of 3 or 5 per stage and a width multiplier;
  V2 adds its 1x1 conv5 before pooling.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from ..registry import Option, register_model
from .blocks import ChannelShuffle, ChannelSplit, ShuffleStages, check_minimum, conv_bn, resolution_option
from .blocks import rgb_input, round_to_multiple

FAMILIES = ("mobilenet", "shufflenet")
CALIBRATION_SEED_BASE = 1_000_000  # seeds from here on are the calibration's own networks
MIN_RESOLUTION = 32

# MobileNet V2's stage table: (channels, first stride) of the seven stages.
MOBILE_STAGES = ((16, 1), (24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1))
MOBILE_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.25)
SHUFFLE_WIDTHS = (0.5, 0.75, 1.0, 1.5)
SHUFFLE_V1_STAGE2 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}  # ShuffleNet V1 Table 1, 1x
SHUFFLE_V2_STAGE2 = 116


class MobileBlock(nn.Module):
    """Inverted residual (expansion > 1) or depthwise-separable block (expansion 1), kernel ``kernel``."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expansion: int, kernel: int,
                 act: str) -> None:
        super().__init__()
        hidden = in_channels * expansion
        separable = expansion == 1
        self.expand = conv_bn(in_channels, hidden, kernel_size=1, act=act) if not separable else None
        self.dw = conv_bn(hidden, hidden, kernel_size=kernel, stride=stride, groups=hidden, act=act)
        self.project = conv_bn(hidden, out_channels, kernel_size=1, act=act if separable else None)
        self.use_shortcut = not separable and stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        return x + y if self.use_shortcut else y


class ShuffleUnit(nn.Module):
    """A ShuffleNet V1 unit (``groups`` > 0) or V2 unit (``groups`` = 0) with a ``kernel`` x ``kernel`` depthwise."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, groups: int, kernel: int) -> None:
        super().__init__()
        self.v1 = groups > 0
        if self.v1:
            mid = out_channels // 4
            pw1_groups = groups if in_channels % groups == 0 and mid % groups == 0 else 1
            branch_out = out_channels - in_channels if stride == 2 else out_channels
            # A one-group shuffle is the identity: no transpose is built for it.
            shuffle = ChannelShuffle(pw1_groups) if pw1_groups > 1 else nn.Identity()
            self.split: ChannelSplit | None = None
            self.branch = nn.Sequential(conv_bn(in_channels, mid, kernel_size=1, groups=pw1_groups), shuffle,
                                        conv_bn(mid, mid, kernel_size=kernel, stride=stride, groups=mid, act=None),
                                        conv_bn(mid, branch_out, kernel_size=1, groups=groups, act=None))
            self.shortcut: nn.Module | None = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        else:
            half = out_channels // 2
            branch_in = in_channels if stride == 2 else in_channels // 2
            self.split = ChannelSplit(2) if stride == 1 else None
            self.shortcut = nn.Sequential(
                conv_bn(in_channels, in_channels, kernel_size=kernel, stride=2, groups=in_channels, act=None),
                conv_bn(in_channels, half, kernel_size=1)) if stride == 2 else None
            self.branch = nn.Sequential(conv_bn(branch_in, half, kernel_size=1),
                                        conv_bn(half, half, kernel_size=kernel, stride=stride, groups=half, act=None),
                                        conv_bn(half, half, kernel_size=1))
        self.shuffle = ChannelShuffle(2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.v1:
            y = self.branch(x)
            if self.shortcut is None:
                return self.relu(x + y)
            return self.relu(torch.cat((self.shortcut(x), y), dim=1))
        if self.shortcut is None:
            assert self.split is not None  # a stride-1 V2 unit splits its input
            kept, x = self.split(x)
            return self.shuffle(torch.cat((kept, self.branch(x)), dim=1))
        return self.shuffle(torch.cat((self.shortcut(x), self.branch(x)), dim=1))


class GeneratedNet(nn.Module):
    """A trunk (stem and stages), an optional 1x1 ``head`` convolution, global pooling and the classifier."""

    def __init__(self, trunk: nn.Module, channels: int, head: int, *, act: str, num_classes: int = 1000) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = conv_bn(channels, head, kernel_size=1, act=act) if head else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head or channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk(x)
        if self.head is not None:
            x = self.head(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class _Stages(ShuffleStages):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


def mobilenet_architecture(rng: random.Random) -> dict[str, Any]:
    """Draw a MobileNet-like architecture: stem, stage table ``(expansion, channels, repeats, stride, kernel)``,
    last channels, activation."""
    width = rng.choice(MOBILE_WIDTHS)
    stages = []
    for index, (channels, stride) in enumerate(MOBILE_STAGES):
        scaled = round_to_multiple(channels * width * rng.choice((0.75, 1.0, 1.25)), 8)
        expansion = 1 if index == 0 else rng.choice((1, 3, 4, 6, 6))
        repeats = 1 if index in (0, 6) else rng.randint(1, 4)
        stages.append((expansion, scaled, repeats, stride, rng.choice((3, 3, 5, 7))))
    return {"stem": rng.choice((16, 24, 32)), "stages": stages, "last": rng.choice((640, 960, 1280)),
            "act": rng.choice(("relu", "relu6"))}


def shufflenet_architecture(rng: random.Random) -> dict[str, Any]:
    """Draw a ShuffleNet-like architecture: unit type (``groups`` 0 for V2), stage channels and repeats, kernels."""
    groups = rng.choice((0, 0, 1, 2, 3, 4, 8))
    width = rng.choice(SHUFFLE_WIDTHS)
    if groups:
        stage2 = round_to_multiple(SHUFFLE_V1_STAGE2[groups] * width, 4 * groups)
    else:
        stage2 = round_to_multiple(SHUFFLE_V2_STAGE2 * width, 2)
    return {"groups": groups, "stem": round_to_multiple(rng.choice((16, 24)), max(groups, 1)),
            "channels": (stage2, 2 * stage2, 4 * stage2), "repeats": tuple(rng.randint(2, r) for r in (5, 8, 5)),
            "kernels": tuple(rng.choice((3, 3, 5)) for _ in range(3)),
            "head": 0 if groups else rng.choice((512, 1024))}


def architecture(family: str, seed: int) -> dict[str, Any]:
    """The architecture ``seed`` draws in ``family`` (the same on every machine and Python version)."""
    rng = random.Random(f"shufflebench-space/{family}/{seed}")
    return mobilenet_architecture(rng) if family == "mobilenet" else shufflenet_architecture(rng)


def build(family: str, seed: int) -> nn.Module:
    """The network of ``architecture(family, seed)``."""
    arch = architecture(family, seed)
    if family == "mobilenet":
        layers: list[nn.Module] = [conv_bn(3, arch["stem"], kernel_size=3, stride=2, act=arch["act"])]
        channels = arch["stem"]
        for expansion, out_channels, repeats, stride, kernel in arch["stages"]:
            for i in range(repeats):
                layers.append(MobileBlock(channels, out_channels, stride=stride if i == 0 else 1,
                                          expansion=expansion, kernel=kernel, act=arch["act"]))
                channels = out_channels
        return GeneratedNet(nn.Sequential(*layers), channels, arch["last"], act=arch["act"])
    groups, kernels = arch["groups"], arch["kernels"]

    def unit(stage: int, index: int, in_channels: int, out_channels: int) -> nn.Module:
        return ShuffleUnit(in_channels, out_channels, stride=2 if index == 0 else 1, groups=groups,
                           kernel=kernels[stage])

    trunk = _Stages(arch["stem"], arch["channels"], arch["repeats"], unit)
    return GeneratedNet(trunk, trunk.out_channels, arch["head"], act="relu")


@register_model(
    "searchspace",
    family="generated",
    summary="a generated ShuffleNet- or MobileNet-like network, one per seed (the latency model's test space)",
    options=(
        Option("family", str, "mobilenet", choices=FAMILIES, help="which kind of blocks"),
        Option("seed", int, 0, minimum=0, help="which architecture of the space"),
        resolution_option(MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
    aliases=("space",),
)
def searchspace(*, family: str = "mobilenet", seed: int = 0, resolution: int = 224) -> nn.Module:
    """The generated network ``seed`` of ``family``; ``resolution`` (pixels) only sets the input shape."""
    check_minimum("searchspace", "resolution", resolution, MIN_RESOLUTION)
    return build(family, seed)
