"""ShuffleNet V1 (Zhang et al., CVPR 2018), built from the paper's Table 1.

Layout (Table 1): conv1 3x3/2 with 24 channels (1x), 3x3/2 max pool, stages 2-4 of 1+3, 1+7, 1+3 units, global pool, FC.
A unit (Fig. 2b/c) is pw1 (1x1 group conv, BN, ReLU) -> channel shuffle -> dw (3x3 depthwise, BN, no ReLU) -> pw2
(1x1 group conv, BN), then ReLU(x + branch) or, for the stride-2 first unit of a stage, ReLU(concat(avgpool 3x3/2 of
x, branch)), so that unit's branch produces ``out - in`` channels. The bottleneck is 1/4 of the unit's output
channels; stage 2's first pw1 is not grouped (24 input channels), and no shuffle follows it (a dense conv has no
groups to mix).
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Option, register_model
from .blocks import ChannelShuffle, ShuffleStages, check_choice, check_minimum, conv_bn, resolution_option, rgb_input
from .blocks import round_to_multiple

# Table 1: stage-2 output channels of ShuffleNet 1x for each group count; stages 3 and 4 double it.
STAGE2_CHANNELS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
STAGE_REPEATS = (4, 8, 4)  # 1+3, 1+7, 1+3 units
# conv1 channels for each width s (before rounding to a multiple of g). Table 1 gives 24 for 1x; 0.5x, 1.5x and 2x
# are the authors' released models (megvii ShuffleNet-Series: 12, 24, 48). Keeping 24 at 1.5x, not 36, is what
# reproduces the paper's 292M for 1.5x (g=3). 0.25x was never released: 6 (= 24 x 0.25) is ours.
CONV1_CHANNELS = {0.25: 6, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}
WIDTHS = tuple(CONV1_CHANNELS)
BOTTLENECK_RATIO = 4
MIN_RESOLUTION = 32  # five stride-2 steps


class ShuffleUnitV1(nn.Module):
    """One ShuffleNet V1 unit; ``stride=2`` gives the avg-pool shortcut and concatenation (Fig. 2c)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, groups: int, stride: int, grouped_pw1: bool = True
    ) -> None:
        super().__init__()
        mid = out_channels // BOTTLENECK_RATIO
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        pw1_groups = groups if grouped_pw1 else 1
        self.pw1 = conv_bn(in_channels, mid, kernel_size=1, groups=pw1_groups, act="relu")
        self.shuffle = ChannelShuffle(pw1_groups) if pw1_groups > 1 else None
        self.dw = conv_bn(mid, mid, kernel_size=3, stride=stride, groups=mid, act=None)
        self.pw2 = conv_bn(mid, branch_out, kernel_size=1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw1(x)
        if self.shuffle is not None:
            y = self.shuffle(y)
        y = self.pw2(self.dw(y))
        if self.shortcut is None:
            return self.relu(x + y)
        return self.relu(torch.cat((self.shortcut(x), y), dim=1))


class ShuffleNetV1(ShuffleStages):
    """ShuffleNet V1 from a stage table: ``stage_channels`` (stages 2-4) and ``stage_repeats``."""

    def __init__(
        self,
        *,
        groups: int,
        conv1_channels: int,
        stage_channels: tuple[int, ...],
        stage_repeats: tuple[int, ...] = STAGE_REPEATS,
        num_classes: int = 1000,
    ) -> None:
        def unit(stage: int, index: int, in_channels: int, out_channels: int) -> nn.Module:
            # The paper: no group convolution on stage 2's first pointwise layer (its input has few channels).
            return ShuffleUnitV1(in_channels, out_channels, groups=groups, stride=2 if index == 0 else 1,
                                 grouped_pw1=not (stage == 0 and index == 0))

        super().__init__(conv1_channels, stage_channels, stage_repeats, unit)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.stages(x)), 1))


def shufflenet_v1_channels(groups: int, width: float) -> tuple[int, tuple[int, int, int]]:
    """(conv1 channels, stage 2-4 output channels) of ShuffleNet V1 ``width``x with ``groups`` groups.

    Scaling rule (ours; the paper only says "scale the number of filters by s"): the stage-2 width
    ``Table1[g] * width`` is rounded to the nearest multiple of ``4 * g`` (halves up), so the bottleneck (1/4) is a
    multiple of g; stages 3 and 4 double it exactly. conv1 is ``CONV1_CHANNELS[width]`` rounded to the nearest
    multiple of g (halves up), at least g, so the stride-2 units' ``out - in`` is a multiple of g. For g=3 and g=8
    this gives exactly the authors' released channel tables (megvii ShuffleNet-Series). Only g=2 and g=4 at 0.5x and
    1.5x land on a half (e.g. 0.5x g=4: 136 -> 144, not 128).
    """
    stage2 = round_to_multiple(STAGE2_CHANNELS[groups] * width, BOTTLENECK_RATIO * groups)
    conv1 = round_to_multiple(CONV1_CHANNELS[width], groups)
    return conv1, (stage2, 2 * stage2, 4 * stage2)


@register_model(
    "shufflenet_v1",
    family="shufflenet",
    summary="ShuffleNet V1 (Zhang et al. 2018, Table 1): pointwise group convs + channel shuffle",
    options=(
        Option("groups", int, 3, choices=tuple(STAGE2_CHANNELS), help="groups g of the pointwise convolutions"),
        Option("width", float, 1.0, choices=WIDTHS, help="channel scale s (ShuffleNet s x)"),
        resolution_option(MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
    aliases=("v1",),
)
def shufflenet_v1(*, groups: int = 3, width: float = 1.0, resolution: int = 224) -> nn.Module:
    """ShuffleNet V1 ``width``x with ``groups`` groups; ``resolution`` (pixels) only sets the input shape, since
    global pooling is adaptive. See `shufflenet_v1_channels` for how scaled widths are rounded."""
    check_choice("shufflenet_v1", "groups", groups, STAGE2_CHANNELS)
    check_choice("shufflenet_v1", "width", width, WIDTHS)
    check_minimum("shufflenet_v1", "resolution", resolution, MIN_RESOLUTION)
    conv1, stages = shufflenet_v1_channels(groups, width)
    return ShuffleNetV1(groups=groups, conv1_channels=conv1, stage_channels=stages)
