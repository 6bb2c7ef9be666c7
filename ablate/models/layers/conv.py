"""Conv-BN-ReLU blocks the heads and the decoder are made of: plain ``nn.Conv2d`` (a dilated one included; the CPU's
faster atrous conv is swapped in by ``ablate.train.cpu_speed`` on CPU only, with the same parameters)."""

from __future__ import annotations

import torch
from torch import nn


def in_format_of(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y`` in ``x``'s memory format. A broadcast or upsampled branch otherwise comes out NCHW; concatenated with
    channels_last branches, it turns the whole concatenation (and so every branch's output gradient) NCHW, and each
    branch conv's backward pass then mixes layouts."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return y.contiguous(memory_format=torch.channels_last) if channels_last else y


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    """A 'same' ``kernel`` x ``kernel`` conv (no bias; dilated by ``dilation``) -> BN -> ReLU."""
    conv = nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=groups,
                     bias=False)  # fmt: skip
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def separable_conv_bn_relu(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """Depthwise 3x3 atrous conv -> BN -> ReLU -> pointwise 1x1 conv -> BN -> ReLU (DeepLabv3+ Sec. 3.2)."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, dilation=dilation, groups=cin), conv_bn_relu(cin, cout, 1))
