"""ShuffleNet V2 (Ma et al., ECCV 2018), built from the paper's Table 5 (the layout of torchvision's shufflenetv2).

A stride-1 unit (Fig. 3c) splits the channels in half, passes one half through, runs the other through branch2
(pw1 1x1 + BN + ReLU, dw 3x3 + BN, pw2 1x1 + BN + ReLU), concatenates and shuffles with 2 groups. A stride-2 unit
(Fig. 3d) feeds the whole input to branch1 (dw 3x3/2 + BN, pw 1x1 + BN + ReLU) and branch2 (dw with stride 2),
doubling the channels. conv5 (1x1) mixes features before global pooling and the FC.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import Option, register_model
from .blocks import ChannelShuffle, ChannelSplit, ShuffleStages, check_choice, check_minimum, conv_bn
from .blocks import resolution_option, rgb_input

# Table 5: output channels of stages 2, 3, 4 and conv5 for each width; conv1 has 24 at every width.
STAGE_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
STAGE_REPEATS = (4, 8, 4)
CONV1_CHANNELS = 24
MIN_RESOLUTION = 32


class ShuffleUnitV2(nn.Module):
    """One ShuffleNet V2 unit: channel split (stride 1) or two branches (stride 2), concat, shuffle with 2 groups."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.split: ChannelSplit | None
        if stride == 1:
            self.split = ChannelSplit(2)
            self.branch1 = None
            branch2_in = in_channels // 2
        else:
            self.split = None
            self.branch1 = nn.Sequential()
            self.branch1.add_module("dw", conv_bn(in_channels, in_channels, kernel_size=3, stride=2,
                                                  groups=in_channels, act=None))
            self.branch1.add_module("pw", conv_bn(in_channels, half, kernel_size=1, act="relu"))
            branch2_in = in_channels
        self.branch2 = nn.Sequential()
        self.branch2.add_module("pw1", conv_bn(branch2_in, half, kernel_size=1, act="relu"))
        self.branch2.add_module("dw", conv_bn(half, half, kernel_size=3, stride=stride, groups=half, act=None))
        self.branch2.add_module("pw2", conv_bn(half, half, kernel_size=1, act="relu"))
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split is not None:
            kept, x2 = self.split(x)
            out = torch.cat((kept, self.branch2(x2)), dim=1)
        else:
            assert self.branch1 is not None  # a downsampling unit has both branches
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out)


class ShuffleNetV2(ShuffleStages):
    """ShuffleNet V2 from a stage table: ``stage_channels`` = (stage2, stage3, stage4, conv5)."""

    def __init__(
        self,
        *,
        stage_channels: tuple[int, ...],
        stage_repeats: tuple[int, ...] = STAGE_REPEATS,
        conv1_channels: int = CONV1_CHANNELS,
        num_classes: int = 1000,
    ) -> None:
        *stages, conv5 = stage_channels

        def unit(stage: int, index: int, in_channels: int, out_channels: int) -> nn.Module:
            return ShuffleUnitV2(in_channels, out_channels, stride=2 if index == 0 else 1)

        super().__init__(conv1_channels, stages, stage_repeats, unit)
        self.conv5 = conv_bn(self.out_channels, conv5, kernel_size=1, act="relu")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(conv5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.conv5(self.stages(x))), 1))


@register_model(
    "shufflenet_v2",
    family="shufflenet",
    summary="ShuffleNet V2 (Ma et al. 2018, Table 5): channel split, concat, shuffle",
    options=(
        Option("width", float, 1.0, choices=tuple(STAGE_CHANNELS), help="channel scale (ShuffleNet V2 s x)"),
        resolution_option(MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
    aliases=("v2",),
)
def shufflenet_v2(*, width: float = 1.0, resolution: int = 224) -> nn.Module:
    """ShuffleNet V2 ``width``x with Table 5's channels; ``resolution`` (pixels) only sets the input shape."""
    check_choice("shufflenet_v2", "width", width, STAGE_CHANNELS)
    check_minimum("shufflenet_v2", "resolution", resolution, MIN_RESOLUTION)
    return ShuffleNetV2(stage_channels=STAGE_CHANNELS[width])
