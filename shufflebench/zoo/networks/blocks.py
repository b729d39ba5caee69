"""Pieces shared by the zoo: conv-BN-activation, channel shuffle, channel split, width rounding, option checks.

The memory-bound operations that ShuffleNet V2's guidelines are about (the shuffle's transpose copy, the split) are
modules of their own, so a trace names them by module path (``stage2.1.shuffle``) instead of folding them into a
parent's forward.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from ...errors import UsageError, allowed
from ..registry import Option

# Activation by name, so a block table can say "relu6" instead of a builder branching on it.
_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def conv_bn(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    act: str | None = "relu",
) -> nn.Sequential:
    """Convolution (no bias, BN follows), batch norm, then ``act`` (``"relu"``, ``"relu6"`` or ``None``).

    Padding is ``kernel_size // 2`` so a stride-1 convolution keeps the spatial size. Children are named ``conv``,
    ``bn`` and ``relu`` (whatever the activation), so reports read ``stage3.1.dw.conv``. Channels that ``groups``
    does not divide raise `UsageError` naming both numbers.
    """
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise UsageError(
            f"convolution {in_channels}->{out_channels} channels cannot use groups={groups}; "
            "both channel counts must be multiples of groups"
        )
    if act is not None and act not in _ACTIVATIONS:
        raise UsageError(f"activation {act!r} is not offered; allowed: {allowed(_ACTIVATIONS)}, None")
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        bn=nn.BatchNorm2d(out_channels),
    )
    if act is not None:
        layers["relu"] = _ACTIVATIONS[act]()
    return nn.Sequential(layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: view (N, g, C/g, H, W) -> transpose -> contiguous -> view (N, C, H, W).

    The ``contiguous`` is kept on purpose: it is the real copy the shuffle costs, and a trace shows it. With 6
    channels and 2 groups the output holds input channels 0, 3, 1, 4, 2, 5.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        if groups < 1:
            raise UsageError(f"channel shuffle: groups={groups} is too small; the minimum is 1")
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w)
        return x.transpose(1, 2).contiguous().view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ChannelSplit(nn.Module):
    """ShuffleNet V2's channel split: ``parts`` equal chunks along the channel axis (views, no copy)."""

    def __init__(self, parts: int = 2) -> None:
        super().__init__()
        if parts < 1:
            raise UsageError(f"channel split: parts={parts} is too small; the minimum is 1")
        self.parts = parts

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.chunk(self.parts, dim=1)

    def extra_repr(self) -> str:
        return f"parts={self.parts}"


class ShuffleStages(nn.Module):
    """The trunk both ShuffleNets share: conv1 (3x3, stride 2) and a 3x3 max pool, then stages ``stage2``,
    ``stage3``... of units, each from ``make_unit(stage, unit, in_channels, out_channels)`` (the first unit of a
    stage takes the previous stage's channels). ``out_channels`` is the last stage's width."""

    def __init__(self, conv1_channels: int, stage_channels: Iterable[int], stage_repeats: Iterable[int],
                 make_unit: Callable[[int, int, int, int], nn.Module]) -> None:
        super().__init__()
        self.conv1 = conv_bn(3, conv1_channels, kernel_size=3, stride=2, act="relu")
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.stage_names: tuple[str, ...] = ()
        in_channels = conv1_channels
        for index, (channels, repeats) in enumerate(zip(stage_channels, stage_repeats)):
            units = [make_unit(index, i, in_channels if i == 0 else channels, channels) for i in range(repeats)]
            name = f"stage{index + 2}"
            self.add_module(name, nn.Sequential(*units))
            self.stage_names += (name,)
            in_channels = channels
        self.out_channels = in_channels

    def stages(self, x: torch.Tensor) -> torch.Tensor:
        """conv1, max pool and every stage."""
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x


def round_to_multiple(value: float, multiple: int, *, minimum: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``multiple`` (halves round up), at least ``minimum``
    (default: ``multiple``)."""
    rounded = int(math.floor(value / multiple + 0.5)) * multiple
    return max(multiple if minimum is None else minimum, rounded)


def check_choice(model: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise `UsageError` unless ``value`` is one of ``choices`` (builders may be called without the registry)."""
    choices = tuple(choices)
    if value not in choices:
        raise UsageError(f"{model}: {name}={value} is not offered; allowed: {allowed(choices)}")


def check_minimum(model: str, name: str, value: int, minimum: int) -> None:
    """Raise `UsageError` if ``value`` is below ``minimum``."""
    if value < minimum:
        raise UsageError(f"{model}: {name}={value} is too small; the minimum is {minimum}")


def rgb_input(variant: Mapping[str, Any], batch: int) -> tuple[int, int, int, int]:
    """The NCHW input of an ImageNet classifier: (batch, 3, resolution, resolution)."""
    resolution = int(variant["resolution"])
    return (batch, 3, resolution, resolution)


def resolution_option(minimum: int, default: int = 224) -> Option:
    """The ``resolution`` option every model has: input height and width in pixels, at least ``minimum`` (below it a
    stride or pool would leave nothing)."""
    return Option("resolution", int, default, minimum=minimum, help=f"input height and width in pixels (>= {minimum})")
