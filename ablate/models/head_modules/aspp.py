"""The ``aspp`` head's module (see ``ablate.models.heads.aspp``). Its layout, and so its state dict's order, is
torchvision's ``ASPP``'s: ``branches`` (torchvision's ``convs``: the 1x1 conv, one conv per rate, image pooling),
then ``project`` (1x1 conv-BN-ReLU, dropout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.heads.aspp import ASPPParams
from ablate.models.layers.conv import conv_bn_relu, in_format_of, separable_conv_bn_relu


class ImagePooling(nn.Module):
    """Global average pooling -> 1x1 conv-BN-ReLU -> broadcast back to the input's size (DeepLabv3)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(F.adaptive_avg_pool2d(x, 1))
        return in_format_of(pooled.expand(-1, -1, x.shape[-2], x.shape[-1]), x)


class ASPP(nn.Module):
    def __init__(self, in_channels: int, params: ASPPParams):
        super().__init__()
        c = params.channels
        branches = [conv_bn_relu(in_channels, c, 1)]
        for rate in params.rates:
            if params.separable:
                branches.append(separable_conv_bn_relu(in_channels, c, rate))
            else:
                branches.append(conv_bn_relu(in_channels, c, 3, dilation=rate))
        if params.image_pooling:
            branches.append(ImagePooling(in_channels, c))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(conv_bn_relu(c * len(branches), c, 1), nn.Dropout(params.dropout))
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
