"""The one interface every context head implements, and the conv-BN-ReLU block they share."""

from __future__ import annotations

from torch import nn


class ContextHead(nn.Module):
    """``head(x)`` maps the backbone's last feature (``in_channels`` x H x W) to ``out_channels`` x H x W.

    Subclasses take ``(in_channels, params)`` where ``params`` is their pydantic model from ``ablate.models.params``,
    and set ``self.out_channels``.
    """

    out_channels: int


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
