"""The FCN baseline: a single 3x3 conv-BN-ReLU, no context aggregation beyond the backbone's."""

from __future__ import annotations

import torch

from ablate.models.heads.base import ContextHead, conv_bn_relu
from ablate.models.params import NoneParams


class NoHead(ContextHead):
    def __init__(self, in_channels: int, params: NoneParams):
        super().__init__()
        self.out_channels = params.channels
        self.conv = conv_bn_relu(in_channels, params.channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
