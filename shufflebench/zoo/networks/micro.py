"""The micro-networks behind ShuffleNet V2's four guidelines (Ma et al., ECCV 2018, section 2, Tables 1-4).

Each is a stack of 10 identical blocks with no stem and no classifier: the input has the first convolution's input
channels, the output is the last block's feature map, and the spatial size never changes (default 56x56; the paper
does not give the size of these benchmarks). Options shared by all four:

- ``scale`` S in {1, 2, 4}: multiplies the channel counts (the paper's x1, x2, x4 columns; FLOPs grow by S^2);
- ``base`` in {gpu, arm}: which of the paper's columns the x1 channel counts come from.

Figures from the paper (x1 column): G1 (c1, c2) GPU (128,128) (90,180) (52,312) (36,432), ARM (32,32) (22,44)
(13,78) (9,108); G2 c per g=1,2,4,8: GPU 128 180 256 360, ARM 64 90 128 180; G3 c: GPU 128, ARM 64; G4 c: 32 on both.
Everything else below is our choice, stated where it is made:

- every convolution is followed by BN and ReLU (G4: ReLU only when ``relu`` is true), as in the networks the
  guidelines are about; the paper does not say whether its benchmarks had them;
- the paper's own channel counts are not exactly FLOP-equal: G1 1:12 is 5.1% below 1:1 on GPU and ARM, G1 ARM 1:2 is
  5.5% below; we keep the paper's numbers rather than "fix" them;
- G2 ARM g=8 lists c=180, which 8 does not divide: we round to the nearest multiple of g (184, +3.3% FLOPs).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..registry import Option, register_model
from .blocks import check_choice, check_minimum, conv_bn, resolution_option, round_to_multiple

MICRO_BLOCKS = 10
MICRO_RESOLUTION = 56
MICRO_MIN_RESOLUTION = 1  # nothing strides; any size runs
BASES = ("gpu", "arm")
SCALES = (1, 2, 4)

# ShuffleNet V2 Table 1: (c1, c2) of the x1 network for each ratio c2/c1.
G1_CHANNELS = {
    "gpu": {1: (128, 128), 2: (90, 180), 6: (52, 312), 12: (36, 432)},
    "arm": {1: (32, 32), 2: (22, 44), 6: (13, 78), 12: (9, 108)},
}
# Table 2: channels c of the x1 network for each group count g.
G2_CHANNELS = {"gpu": {1: 128, 2: 180, 4: 256, 8: 360}, "arm": {1: 64, 2: 90, 4: 128, 8: 180}}
# Table 3: channels c of the x1 network; structure -> (fragments, arrangement).
G3_CHANNELS = {"gpu": 128, "arm": 64}
G3_STRUCTURES = {"1": (1, "series"), "2s": (2, "series"), "4s": (4, "series"), "2p": (2, "parallel"),
                 "4p": (4, "parallel")}  # fmt: skip
# Table 4: bottleneck channels c of the x1 network (the same on GPU and ARM).
G4_CHANNELS = {"gpu": 32, "arm": 32}
G4_EXPANSION = 4


def _common_options() -> tuple[Option, ...]:
    return (
        Option("scale", int, 1, choices=SCALES, help="channel multiplier S (the paper's x1, x2, x4)"),
        Option("base", str, "gpu", choices=BASES, help="which column of the paper's table gives the x1 channels"),
        resolution_option(MICRO_MIN_RESOLUTION, default=MICRO_RESOLUTION),
    )


def _check_common(model: str, scale: int, base: str, resolution: int) -> None:
    check_choice(model, "scale", scale, SCALES)
    check_choice(model, "base", base, BASES)
    check_minimum(model, "resolution", resolution, MICRO_MIN_RESOLUTION)


def _input_shape(
    in_channels: Callable[[Mapping[str, Any]], int],
) -> Callable[[Mapping[str, Any], int], tuple[int, int, int, int]]:
    """An ``input_shape`` function: (batch, first conv's input channels for the variant, resolution, resolution)."""

    def shape(variant: Mapping[str, Any], batch: int) -> tuple[int, int, int, int]:
        resolution = int(variant["resolution"])
        return (batch, in_channels(variant), resolution, resolution)

    return shape


class MicroNet(nn.Module):
    """A stack of blocks under ``blocks``; the output is the last feature map (no pooling, no classifier)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


# --- G1: equal channel width minimizes memory access cost -------------------------------------------------------


class PairBlock(nn.Module):
    """G1 block: ``conv1`` 1x1 c1 -> c2, ``conv2`` 1x1 c2 -> c1 (each with BN and ReLU)."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(c1, c2, kernel_size=1)
        self.conv2 = conv_bn(c2, c1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def g1_channels(ratio: int, scale: int, base: str) -> tuple[int, int]:
    """(c1, c2) of G1: the paper's Table 1 x1 channels for ``base``, times ``scale``."""
    c1, c2 = G1_CHANNELS[base][ratio]
    return c1 * scale, c2 * scale


@register_model(
    "g1",
    family="micro",
    summary="ShuffleNet V2 G1 benchmark: 10 blocks of 1x1 convs c1->c2->c1, FLOPs fixed, ratio c2/c1 varies",
    options=(Option("ratio", int, 1, choices=tuple(G1_CHANNELS["gpu"]), help="R = c2/c1"), *_common_options()),
    input_shape=_input_shape(lambda v: g1_channels(v["ratio"], v["scale"], v["base"])[0]),
)
def g1(*, ratio: int = 1, scale: int = 1, base: str = "gpu", resolution: int = MICRO_RESOLUTION) -> nn.Module:
    """G1 micro-network: 10 `PairBlock`s with the paper's (c1, c2) (Table 1) times ``scale``."""
    check_choice("g1", "ratio", ratio, G1_CHANNELS[BASES[0]])
    _check_common("g1", scale, base, resolution)
    c1, c2 = g1_channels(ratio, scale, base)
    return MicroNet([PairBlock(c1, c2) for _ in range(MICRO_BLOCKS)])


# --- G2: excessive group convolution increases MAC --------------------------------------------------------------


def g2_channels(groups: int, scale: int, base: str) -> int:
    """Channels c of G2: Table 2's x1 value for ``base`` times ``scale``, rounded to the nearest multiple of
    ``groups`` (halves up). Only ARM g=8 x1 moves (180 -> 184)."""
    return round_to_multiple(G2_CHANNELS[base][groups] * scale, groups)


@register_model(
    "g2",
    family="micro",
    summary="ShuffleNet V2 G2 benchmark: 10 layers of 1x1 group conv, FLOPs fixed, groups vary",
    options=(Option("groups", int, 1, choices=tuple(G2_CHANNELS["gpu"]), help="groups g"), *_common_options()),
    input_shape=_input_shape(lambda v: g2_channels(v["groups"], v["scale"], v["base"])),
)
def g2(*, groups: int = 1, scale: int = 1, base: str = "gpu", resolution: int = MICRO_RESOLUTION) -> nn.Module:
    """G2 micro-network: 10 layers ``blocks.i`` of 1x1 convolution c -> c with ``groups`` groups, BN, ReLU.

    No channel shuffle between layers (our choice): the benchmark measures the group convolution alone, and a
    shuffle would add its own memory traffic.
    """
    check_choice("g2", "groups", groups, G2_CHANNELS[BASES[0]])
    _check_common("g2", scale, base, resolution)
    c = g2_channels(groups, scale, base)
    return MicroNet([conv_bn(c, c, kernel_size=1, groups=groups) for _ in range(MICRO_BLOCKS)])


# --- G3: network fragmentation reduces the degree of parallelism ------------------------------------------------


class FragmentBlock(nn.Module):
    """G3 block: ``fragments`` 1x1 convs (BN, ReLU) of ``width`` -> ``width``, chained (series) or all applied to
    the block input and summed (parallel)."""

    def __init__(self, width: int, *, fragments: int, arrangement: str) -> None:
        super().__init__()
        self.parallel = arrangement == "parallel"
        self.fragments = nn.ModuleList(conv_bn(width, width, kernel_size=1) for _ in range(fragments))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.parallel:
            out = self.fragments[0](x)
            for fragment in self.fragments[1:]:
                out = out + fragment(x)
            return out
        for fragment in self.fragments:
            x = fragment(x)
        return x


def g3_width(structure: str, scale: int, base: str) -> int:
    """Width of every fragment of G3: ``round(c / sqrt(k))`` for k fragments, c = Table 3's x1 value times
    ``scale``, so every structure has the FLOPs of the 1-fragment block (within 1.2%)."""
    fragments, _ = G3_STRUCTURES[structure]
    return round(G3_CHANNELS[base] * scale / math.sqrt(fragments))


@register_model(
    "g3",
    family="micro",
    summary="ShuffleNet V2 G3 benchmark: 1x1 conv fragments in series or parallel, 10 blocks, FLOPs fixed",
    options=(
        Option(
            "structure", str, "1", choices=tuple(G3_STRUCTURES),
            help="1 fragment, 2 or 4 in series (2s, 4s), 2 or 4 in parallel (2p, 4p)",
        ),
        *_common_options(),
    ),
    input_shape=_input_shape(lambda v: g3_width(v["structure"], v["scale"], v["base"])),
)
def g3(*, structure: str = "1", scale: int = 1, base: str = "gpu", resolution: int = MICRO_RESOLUTION) -> nn.Module:
    """G3 micro-network: 10 `FragmentBlock`s.

    The paper draws these blocks only in its appendix figure and gives one c per column; our reading: the 1-fragment
    block is one 1x1 conv c -> c; a k-fragment block uses k square 1x1 convs of width round(c / sqrt(k)) so FLOPs stay
    equal and every conv keeps equal input and output widths (G1 does not interfere). Series chains them; parallel
    applies each to the block input and merges by element-wise sum (so 2s and 2p have identical convolutions and
    differ only in arrangement, plus one add per extra branch).
    """
    check_choice("g3", "structure", structure, G3_STRUCTURES)
    _check_common("g3", scale, base, resolution)
    fragments, arrangement = G3_STRUCTURES[structure]
    width = g3_width(structure, scale, base)
    return MicroNet(
        [FragmentBlock(width, fragments=fragments, arrangement=arrangement) for _ in range(MICRO_BLOCKS)]
    )


# --- G4: element-wise operations are non-negligible -------------------------------------------------------------


class BottleneckG4(nn.Module):
    """G4 block: ResNet bottleneck ``conv1`` 1x1 4c -> c, ``conv2`` 3x3 c -> c, ``conv3`` 1x1 c -> 4c, BN after each;
    ReLU after conv1, conv2 and the add when ``relu``; identity shortcut when ``shortcut``."""

    def __init__(self, c: int, *, relu: bool, shortcut: bool) -> None:
        super().__init__()
        act = "relu" if relu else None
        self.conv1 = conv_bn(G4_EXPANSION * c, c, kernel_size=1, act=act)
        self.conv2 = conv_bn(c, c, kernel_size=3, act=act)
        self.conv3 = conv_bn(c, G4_EXPANSION * c, kernel_size=1, act=None)
        self.shortcut = shortcut
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        if self.shortcut:
            y = y + x
        return self.relu(y) if self.relu is not None else y


def g4_channels(scale: int, base: str) -> int:
    """Bottleneck channels c of G4: Table 4's x1 value (32) times ``scale``; the block input/output is 4c."""
    return G4_CHANNELS[base] * scale


@register_model(
    "g4",
    family="micro",
    summary="ShuffleNet V2 G4 benchmark: 10 ResNet bottlenecks with ReLU and/or shortcut removed",
    options=(
        Option("relu", bool, True, help="keep the ReLUs"),
        Option("shortcut", bool, True, help="keep the identity shortcut"),
        *_common_options(),
    ),
    input_shape=_input_shape(lambda v: G4_EXPANSION * g4_channels(v["scale"], v["base"])),
)
def g4(
    *, relu: bool = True, shortcut: bool = True, scale: int = 1, base: str = "gpu", resolution: int = MICRO_RESOLUTION
) -> nn.Module:
    """G4 micro-network: 10 `BottleneckG4` blocks.

    Our reading of the paper's c: the bottleneck (3x3) width, with block input and output 4c as in ResNet (the
    paper's "c=32" as block width would leave an 8-channel bottleneck). Removing ReLU or the shortcut leaves the
    convolutions, hence FLOPs, unchanged.
    """
    _check_common("g4", scale, base, resolution)
    c = g4_channels(scale, base)
    return MicroNet([BottleneckG4(c, relu=relu, shortcut=shortcut) for _ in range(MICRO_BLOCKS)])
