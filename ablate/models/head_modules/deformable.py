"""The ``deformable`` head's module: deformable 3x3 conv-BN-ReLU layers whose offsets start at zero (see
``ablate.models.heads.deformable`` and ``ablate.models.layers.deform``)."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.deformable import DeformableParams
from ablate.models.layers.deform import DeformConv


class DeformableHead(nn.Module):
    def __init__(self, in_channels: int, params: DeformableParams):
        super().__init__()
        parts: list[nn.Module] = []
        cin, d, c = in_channels, params.dilation, params.channels
        for _ in range(params.layers):
            parts += [DeformConv(cin, c, 3, 1, d, d, modulated=params.modulated), nn.BatchNorm2d(c)]
            parts.append(nn.ReLU(inplace=True))
            cin = c
        self.layers = nn.Sequential(*parts)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
