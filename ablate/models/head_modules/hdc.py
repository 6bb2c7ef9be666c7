"""The ``hdc`` head's module: a cascade of 3x3 dilated conv-BN-ReLU layers (Wang et al.'s hybrid dilated
convolution, see ``ablate.models.heads.hdc``), each after the first with an identity shortcut unless
``residual: false``."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.hdc import HDCParams, warn_gridding
from ablate.models.layers.conv import conv_bn_relu


class ResidualConvBN(nn.Module):
    """relu(x + BN(conv_d(x))): a 3x3 dilated layer with an identity shortcut, as each HDC rate sits in a ResNet
    block (Wang et al. 2018). BN's scale starts at 0 (Goyal et al., arXiv:1706.02677), so the layer starts as the
    identity (a plain cascade of six conv-BN-ReLU layers from a random init trained to a low, seed-dependent level)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = conv_bn_relu(channels, channels, 3, dilation=dilation)[:2]
        nn.init.zeros_(self.conv[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv(x))


class HDC(nn.Module):
    def __init__(self, in_channels: int, params: HDCParams):
        super().__init__()
        warn_gridding(params.rates, "model.head.rates")
        rates, c = params.rates * params.repeats, params.channels
        convs = [conv_bn_relu(in_channels, c, 3, dilation=rates[0])]
        for rate in rates[1:]:
            convs.append(ResidualConvBN(c, rate) if params.residual else conv_bn_relu(c, c, 3, dilation=rate))
        self.layers = nn.Sequential(*convs)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
