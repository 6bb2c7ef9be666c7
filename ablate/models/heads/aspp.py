"""Atrous spatial pyramid pooling (Chen et al., DeepLab v2 arXiv:1606.00915; v3 arXiv:1706.05587).

Branches run in parallel on the same feature: a 1x1 conv, one 3x3 conv per atrous rate, and (v3) image-level
pooling (global average -> 1x1 conv -> broadcast back). Their outputs are concatenated and projected by a 1x1 conv.
Any number of rates is allowed, so "how many branches, which rates" is one list in the recipe. ``separable``
swaps each 3x3 branch for a depthwise-separable one (DeepLabv3+, arXiv:1802.02611 Sec. 3.2: depthwise 3x3 atrous
conv -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU). Every conv is followed by BN and ReLU, as in v3. With the same
rates, the layout (and so the state dict order) matches torchvision's ``ASPP`` module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.heads.base import ContextHead, conv_bn_relu, in_format_of
from ablate.models.params import ASPPParams


class ImagePooling(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(F.adaptive_avg_pool2d(x, 1))
        return in_format_of(pooled.expand(-1, -1, x.shape[-2], x.shape[-1]), x)


def separable_conv_bn_relu(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """Depthwise 3x3 atrous conv -> BN -> ReLU -> pointwise 1x1 conv -> BN -> ReLU."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, dilation=dilation, groups=cin), conv_bn_relu(cin, cout, 1))


class ASPP(ContextHead):
    def __init__(self, in_channels: int, params: ASPPParams):
        super().__init__()
        c = params.channels
        branch = separable_conv_bn_relu if params.separable else (lambda i, o, r: conv_bn_relu(i, o, 3, dilation=r))
        branches: list[nn.Module] = [conv_bn_relu(in_channels, c, 1)]
        branches += [branch(in_channels, c, rate) for rate in params.rates]
        if params.image_pooling:
            branches.append(ImagePooling(in_channels, c))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(conv_bn_relu(c * len(branches), c, 1), nn.Dropout(params.dropout))
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
