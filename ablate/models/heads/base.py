"""The one interface every context head implements and the conv-BN-ReLU block they share."""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.atrous import AtrousConv2d


class ContextHead(nn.Module):
    """``head(x)`` maps the backbone's last feature (``in_channels`` x H x W) to ``out_channels`` x H x W.

    Subclasses take ``(in_channels, params)`` where ``params`` is their pydantic model from ``ablate.models.params``,
    and set ``self.out_channels``.
    """

    out_channels: int


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
