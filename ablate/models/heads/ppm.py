"""Pyramid pooling module (Zhao et al., PSPNet, arXiv:1612.01105, Sec. 3.2 and Table 1).

The feature is pooled to ``bins`` x ``bins`` for every pyramid level (default 1, 2, 3, 6; average or max pooling),
each level optionally reduced by a 1x1 conv (+BN+ReLU) to ``in/len(bins)`` channels ("DR"), upsampled bilinearly
back to the feature's size and concatenated with the feature itself; a 3x3 conv-BN-ReLU bottleneck (then dropout,
as in the reference code) fuses them. Table 1's axes are ``bins`` (B1 vs B1236), ``pooling`` (AVE vs MAX) and
``reduction`` (DR). A feature smaller than a bin is pooled with overlapping windows (adaptive pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.heads.base import ContextHead, conv_bn_relu, in_format_of
from ablate.models.params import PPMParams


class PyramidLevel(nn.Module):
    def __init__(self, cin: int, cout: int | None, bins: int, pooling: str):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(bins) if pooling == "avg" else nn.AdaptiveMaxPool2d(bins)
        self.reduce = conv_bn_relu(cin, cout, 1) if cout is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(self.pool(x))
        return in_format_of(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False), x)


class PPM(ContextHead):
    def __init__(self, in_channels: int, params: PPMParams):
        super().__init__()
        reduced = max(1, in_channels // len(params.bins)) if params.reduction else None
        self.levels = nn.ModuleList(PyramidLevel(in_channels, reduced, b, params.pooling) for b in params.bins)
        self.concat_input = params.concat_input
        total = (reduced or in_channels) * len(params.bins) + (in_channels if params.concat_input else 0)
        self.bottleneck = nn.Sequential(conv_bn_relu(total, params.channels, 3), nn.Dropout(params.dropout))
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x] if self.concat_input else []
        parts += [level(x) for level in self.levels]
        return self.bottleneck(torch.cat(parts, dim=1))
