"""Spatial pyramid pooling (He et al., SPPNet, arXiv:1406.4729) used as a dense segmentation head.

SPPNet max-pools the last conv feature into a pyramid of ``bins`` x ``bins`` grids (default 1, 2, 4 as in the
paper's {4x4, 2x2, 1x1} pyramid) and keeps every pooled channel: there is no dimension reduction. For a dense head
each level is upsampled (nearest: the pooled cells are piecewise constant, as in the paper) back to the feature's
size and concatenated, together with the feature itself, and a 3x3 conv-BN-ReLU fuses them. Compared with PSPNet's
``ppm`` it differs in max vs average pooling, no 1x1 reduction, and the levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.heads.base import ContextHead, conv_bn_relu
from ablate.models.params import SPPParams


class SPP(ContextHead):
    def __init__(self, in_channels: int, params: SPPParams):
        super().__init__()
        pool = nn.AdaptiveMaxPool2d if params.pooling == "max" else nn.AdaptiveAvgPool2d
        self.pools = nn.ModuleList(pool(b) for b in params.bins)
        self.concat_input = params.concat_input
        total = in_channels * (len(params.bins) + (1 if params.concat_input else 0))
        self.fuse = conv_bn_relu(total, params.channels, 3)
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        parts = [x] if self.concat_input else []
        parts += [F.interpolate(pool(x), size=size, mode="nearest") for pool in self.pools]
        return self.fuse(torch.cat(parts, dim=1))
