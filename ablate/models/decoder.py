"""DeepLabv3+ decoder (Chen et al. 2018, arXiv:1802.02611).

The low-level (stride 4) feature is reduced by a 1x1 conv to ``low_level_channels`` (48 in the paper), the head's
output is upsampled to its size, both are concatenated and refined by two 3x3 convs of ``channels`` (256).
"""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.layers.conv import conv_bn_relu
from ablate.models.layers.restride import upsample


class Decoder(nn.Module):
    def __init__(self, low_in: int, high_in: int, low_level_channels: int = 48, channels: int = 256):
        super().__init__()
        self.reduce = conv_bn_relu(low_in, low_level_channels, 1)
        self.fuse = nn.Sequential(
            conv_bn_relu(high_in + low_level_channels, channels, 3),
            conv_bn_relu(channels, channels, 3),
        )
        self.out_channels = channels

    def forward(self, high: torch.Tensor, low: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
        """``shift``: the high-level map's anchor at an evaluation output stride other than training's
        (``ablate.models.layers.restride.upsample``)."""
        high = upsample(high, low.shape[-2:], shift)
        return self.fuse(torch.cat([high, self.reduce(low)], dim=1))
