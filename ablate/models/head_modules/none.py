"""The ``none`` head's module: the FCN baseline, one 3x3 conv-BN-ReLU."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.none import NoneParams
from ablate.models.layers.conv import conv_bn_relu


class FCNHead(nn.Module):
    def __init__(self, in_channels: int, params: NoneParams):
        super().__init__()
        self.conv = conv_bn_relu(in_channels, params.channels, 3)
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
