"""Reference points that are not "efficient": AlexNet and ResNet-50.

AlexNet is torchvision's single-tower layout (Krizhevsky's "one weird trick" variant: 64, 192, 384, 256, 256 filters,
no grouped convolutions, no local response normalization), about 714M multiply-adds at 224x224; ShuffleNet V1's
Tables 6 and 8 quote 720M for AlexNet. The original two-tower net (96, 256, 384, 384, 256, two groups) differs by a
few percent. Dropout is left out (an identity at inference).

ResNet-50 is v1.5, torchvision's layout: the stride-2 of a stage's first bottleneck sits on the 3x3 conv, not on the
first 1x1 as in the paper (v1), which raises the cost from the paper's 3.8G to about 4.1G multiply-adds.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..registry import register_model
from .blocks import check_minimum, resolution_option, rgb_input

# AlexNet features: (name, out channels, kernel, stride, padding, max-pool after it).
ALEXNET_CONVS = (
    ("conv1", 64, 11, 4, 2, True),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, False),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, True),
)
ALEXNET_POOL = 6  # adaptive average pool to 6x6 before the classifier, as torchvision
ALEXNET_HIDDEN = (4096, 4096)
# conv1 11x11/4 then three 3x3/2 max pools: below 63 pixels a pool gets an input smaller than its window.
ALEXNET_MIN_RESOLUTION = 63


class AlexNet(nn.Module):
    """AlexNet from the ``ALEXNET_CONVS`` table; the classifier is ``classifier.fc6``, ``fc7``, ``fc8``."""

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__()
        features: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = 3
        for index, (name, out_channels, kernel, stride, padding, pool) in enumerate(ALEXNET_CONVS, start=1):
            features[name] = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)
            features[f"relu{index}"] = nn.ReLU()
            if pool:
                features[f"pool{index}"] = nn.MaxPool2d(3, stride=2)
            in_channels = out_channels
        self.features = nn.Sequential(features)
        self.avgpool = nn.AdaptiveAvgPool2d(ALEXNET_POOL)
        classifier: OrderedDict[str, nn.Module] = OrderedDict()
        in_features = in_channels * ALEXNET_POOL * ALEXNET_POOL
        for index, hidden in enumerate(ALEXNET_HIDDEN, start=6):
            classifier[f"fc{index}"] = nn.Linear(in_features, hidden)
            classifier[f"relu{index}"] = nn.ReLU()
            in_features = hidden
        classifier[f"fc{len(ALEXNET_HIDDEN) + 6}"] = nn.Linear(in_features, num_classes)
        self.classifier = nn.Sequential(classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "alexnet",
    family="classic",
    summary="AlexNet, torchvision's single-tower variant (ShuffleNet V1's 720M comparison point)",
    options=(
        resolution_option(ALEXNET_MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
)
def alexnet(*, resolution: int = 224) -> nn.Module:
    """AlexNet (single tower); ``resolution`` (pixels) only sets the input shape, the 6x6 pool is adaptive."""
    check_minimum("alexnet", "resolution", resolution, ALEXNET_MIN_RESOLUTION)
    return AlexNet()


# ResNet-50: bottleneck width and number of blocks of layer1..layer4.
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
RESNET_EXPANSION = 4
RESNET_STEM = 64
RESNET_MIN_RESOLUTION = 32


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (torchvision names): conv1 1x1, conv2 3x3 (carries the stride), conv3 1x1 (x4),
    BN after each, ReLU after bn1, bn2 and the add; ``downsample`` (1x1 conv + BN) when the shape changes."""

    def __init__(self, in_channels: int, width: int, *, stride: int) -> None:
        super().__init__()
        out_channels = width * RESNET_EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNet(nn.Module):
    """ResNet with bottleneck blocks from a ``(width, blocks)`` stage table; torchvision's module names."""

    def __init__(self, *, stages: tuple[tuple[int, int], ...], num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, RESNET_STEM, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(RESNET_STEM)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer_names: tuple[str, ...] = ()
        in_channels = RESNET_STEM
        for index, (width, blocks) in enumerate(stages, start=1):
            first_stride = 1 if index == 1 else 2
            layer = nn.Sequential(
                *(
                    Bottleneck(in_channels if i == 0 else width * RESNET_EXPANSION, width,
                               stride=first_stride if i == 0 else 1)
                    for i in range(blocks)
                )
            )
            self.add_module(f"layer{index}", layer)
            self.layer_names += (f"layer{index}",)
            in_channels = width * RESNET_EXPANSION
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "resnet50",
    family="classic",
    summary="ResNet-50 v1.5 (torchvision layout: stride on the 3x3 conv)",
    options=(
        resolution_option(RESNET_MIN_RESOLUTION),
    ),
    input_shape=rgb_input,
)
def resnet50(*, resolution: int = 224) -> nn.Module:
    """ResNet-50 v1.5; ``resolution`` (pixels) only sets the input shape."""
    check_minimum("resnet50", "resolution", resolution, RESNET_MIN_RESOLUTION)
    return ResNet(stages=RESNET50_STAGES)
