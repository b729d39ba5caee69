"""MobileNet V1 (Howard et al. 2017, Table 1) and MobileNet V2 (Sandler et al., CVPR 2018, Table 2).

V1: conv1 3x3/2 (32 channels), 13 depthwise-separable blocks (dw 3x3 + BN + ReLU, pw 1x1 + BN + ReLU), global pool,
FC; every channel count times the width multiplier alpha. The paper's Table 1 prints stride 2 for the last dw layer at
7x7; that is a known misprint, and like every released implementation we use stride 1 there.

V2: the layout of torchvision's mobilenetv2: conv1 3x3/2 (32), inverted residual blocks from the ``[t, c, n, s]``
table (expand 1x1 + BN + ReLU6 when t > 1, dw 3x3 + BN + ReLU6, project 1x1 + BN, identity shortcut when shape allows),
conv_last 1x1 to 1280, global pool, FC. Channels are ``make_divisible(c * width, 8)``; the last conv is scaled only
when width > 1. No dropout before the FC: this zoo is for inference, where it is an identity.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Option, register_model
from .blocks import check_choice, check_minimum, conv_bn, resolution_option, rgb_input

MIN_RESOLUTION = 32  # five stride-2 steps

# MobileNet V1 Table 1: (output channels, stride) of each depthwise-separable block after conv1.
MBV1_CONV1 = 32
MBV1_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip
MBV1_ALPHAS = (0.25, 0.5, 0.75, 1.0)

# MobileNet V2 Table 2: expansion t, output channels c, repeats n, first stride s.
MBV2_CONV1 = 32
MBV2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MBV2_LAST = 1280
MBV2_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


class DepthwiseSeparable(nn.Module):
    """MobileNet V1 block: ``dw`` (3x3 depthwise, BN, ReLU) then ``pw`` (1x1, BN, ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.dw = conv_bn(in_channels, in_channels, kernel_size=3, stride=stride, groups=in_channels, act="relu")
        self.pw = conv_bn(in_channels, out_channels, kernel_size=1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(nn.Module):
    """MobileNet V1 from a block table of (output channels, stride), channels already scaled."""

    def __init__(self, *, conv1_channels: int, blocks: tuple[tuple[int, int], ...], num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = conv_bn(3, conv1_channels, kernel_size=3, stride=2, act="relu")
        layers = []
        in_channels = conv1_channels
        for out_channels, stride in blocks:
            layers.append(DepthwiseSeparable(in_channels, out_channels, stride=stride))
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "mobilenet_v1",
    family="mobilenet",
    summary="MobileNet V1 (Howard et al. 2017): depthwise-separable convolutions",
    options=(
        Option("width", float, 1.0, choices=MBV1_ALPHAS, help="width multiplier alpha"),
        resolution_option(MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
    aliases=("mbv1",),
)
def mobilenet_v1(*, width: float = 1.0, resolution: int = 224) -> nn.Module:
    """MobileNet V1 with width multiplier ``width`` (alpha); every channel count is ``round(c * alpha)``, exact for
    the offered alphas. ``resolution`` (pixels) only sets the input shape."""
    check_choice("mobilenet_v1", "width", width, MBV1_ALPHAS)
    check_minimum("mobilenet_v1", "resolution", resolution, MIN_RESOLUTION)
    blocks = tuple((round(c * width), s) for c, s in MBV1_BLOCKS)
    return MobileNetV1(conv1_channels=round(MBV1_CONV1 * width), blocks=blocks)


def make_divisible(value: float, divisor: int = 8) -> int:
    """The MobileNet V2 rounding: nearest multiple of ``divisor`` (at least ``divisor``), bumped up one step if
    rounding down lost more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class InvertedResidual(nn.Module):
    """MobileNet V2 block: ``expand`` (1x1, absent when t = 1), ``dw`` (3x3), ``project`` (1x1, linear), and an
    identity shortcut when stride is 1 and channels match."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expansion))
        self.expand = conv_bn(in_channels, hidden, kernel_size=1, act="relu6") if expansion != 1 else None
        self.dw = conv_bn(hidden, hidden, kernel_size=3, stride=stride, groups=hidden, act="relu6")
        self.project = conv_bn(hidden, out_channels, kernel_size=1, act=None)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        return x + y if self.use_shortcut else y


class MobileNetV2(nn.Module):
    """MobileNet V2 from a ``[t, c, n, s]`` table, channels already scaled."""

    def __init__(
        self,
        *,
        conv1_channels: int,
        blocks: tuple[tuple[int, int, int, int], ...],
        last_channels: int,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.conv1 = conv_bn(3, conv1_channels, kernel_size=3, stride=2, act="relu6")
        layers = []
        in_channels = conv1_channels
        for expansion, out_channels, repeats, stride in blocks:
            for i in range(repeats):
                layers.append(
                    InvertedResidual(in_channels, out_channels, stride=stride if i == 0 else 1, expansion=expansion)
                )
                in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.conv_last = conv_bn(in_channels, last_channels, kernel_size=1, act="relu6")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_last(self.blocks(self.conv1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "mobilenet_v2",
    family="mobilenet",
    summary="MobileNet V2 (Sandler et al. 2018): inverted residuals, linear bottlenecks",
    options=(
        Option("width", float, 1.0, choices=MBV2_WIDTHS, help="width multiplier"),
        resolution_option(MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
    aliases=("mbv2",),
)
def mobilenet_v2(*, width: float = 1.0, resolution: int = 224) -> nn.Module:
    """MobileNet V2 with width multiplier ``width``; ``resolution`` (pixels) only sets the input shape."""
    check_choice("mobilenet_v2", "width", width, MBV2_WIDTHS)
    check_minimum("mobilenet_v2", "resolution", resolution, MIN_RESOLUTION)
    blocks = tuple((t, make_divisible(c * width), n, s) for t, c, n, s in MBV2_BLOCKS)
    return MobileNetV2(
        conv1_channels=make_divisible(MBV2_CONV1 * width),
        blocks=blocks,
        last_channels=make_divisible(MBV2_LAST * max(1.0, width)),
    )
