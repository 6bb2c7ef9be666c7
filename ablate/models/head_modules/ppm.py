"""The ``ppm`` head's module (PSPNet's pyramid pooling, see ``ablate.models.heads.ppm``)."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.ppm import PPMParams
from ablate.models.layers.conv import conv_bn_relu
from ablate.models.layers.pool import PyramidLevel


class PPM(nn.Module):
    def __init__(self, in_channels: int, params: PPMParams):
        super().__init__()
        bins = params.bins
        reduced = max(1, in_channels // len(bins)) if params.reduction else None
        self.levels = nn.ModuleList(PyramidLevel(in_channels, reduced, b, params.pooling) for b in bins)
        self.concat_input = params.concat_input
        total = (reduced or in_channels) * len(bins) + (in_channels if params.concat_input else 0)
        self.bottleneck = nn.Sequential(conv_bn_relu(total, params.channels, 3), nn.Dropout(params.dropout))
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x] if self.concat_input else []
        return self.bottleneck(torch.cat(pyramid + [level(x) for level in self.levels], dim=1))
