"""Conv-BN-ReLU blocks the heads and the decoder are made of."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.layers.atrous import AtrousConv2d


def in_format_of(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y`` in ``x``'s memory format. A broadcast or upsampled branch otherwise comes out NCHW; concatenated with
    channels_last branches, it turns the whole concatenation (and so every branch's output gradient) NCHW, and each
    branch conv's backward pass then mixes layouts."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    if dilation > 1:
        conv: nn.Conv2d = AtrousConv2d(cin, cout, kernel, dilation, groups=groups, bias=False)
    else:
        padding = (kernel - 1) // 2
        conv = nn.Conv2d(cin, cout, kernel, padding=padding, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def separable_conv_bn_relu(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """Depthwise 3x3 atrous conv -> BN -> ReLU -> pointwise 1x1 conv -> BN -> ReLU (DeepLabv3+ Sec. 3.2)."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, dilation=dilation, groups=cin), conv_bn_relu(cin, cout, 1))


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
