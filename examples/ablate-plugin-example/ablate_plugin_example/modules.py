"""The ``strip`` head as a plain ``nn.Module`` (Hou et al., "Strip Pooling", CVPR 2020, arXiv:2003.13328, Fig. 2).

The feature is reduced by a 1x1 conv; every row is averaged to an H x 1 strip and every column to a 1 x W strip, each
strip filtered by a 1-D conv along its length; both are expanded back to H x W and summed, and a 1x1 conv and a
sigmoid turn the sum into a gate on the reduced feature: a pixel sees its whole row and its whole column.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int | tuple[int, int] = 1) -> nn.Sequential:
    pad = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class StripPooling(nn.Module):
    def __init__(self, in_channels: int, params) -> None:
        super().__init__()
        c, k = params.channels, params.kernel
        self.reduce = conv_bn_relu(in_channels, c)
        self.rows = nn.Sequential(
            nn.AdaptiveAvgPool2d((None, 1)), nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0), bias=False), nn.BatchNorm2d(c)
        )
        self.columns = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, None)), nn.Conv2d(c, c, (1, k), padding=(0, k // 2), bias=False), nn.BatchNorm2d(c)
        )
        self.gate = nn.Conv2d(c, c, 1)
        self.project = nn.Sequential(conv_bn_relu(c, c, 3), nn.Dropout2d(params.dropout))
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        strips = torch.relu(self.rows(y) + self.columns(y))  # H x 1 + 1 x W broadcasts to H x W
        return self.project(y * torch.sigmoid(self.gate(strips)))
