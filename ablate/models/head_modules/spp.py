"""The ``spp`` head's module (SPPNet's max-pool pyramid as a dense head, see ``ablate.models.heads.spp``)."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.spp import SPPParams
from ablate.models.layers.conv import conv_bn_relu
from ablate.models.layers.pool import PyramidLevel


class SPP(nn.Module):
    def __init__(self, in_channels: int, params: SPPParams):
        super().__init__()
        self.pools = nn.ModuleList(
            PyramidLevel(in_channels, None, b, params.pooling, upsample="nearest") for b in params.bins
        )
        self.concat_input = params.concat_input
        total = in_channels * (len(params.bins) + (1 if params.concat_input else 0))
        self.fuse = conv_bn_relu(total, params.channels, 3)
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x] if self.concat_input else []
        return self.fuse(torch.cat(pyramid + [level(x) for level in self.pools], dim=1))
