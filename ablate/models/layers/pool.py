"""Parallel branches and pooling: the pieces of ASPP's image pooling and of the PSPNet / SPPNet pyramids."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.layers.conv import conv_bn_relu, in_format_of


class Concat(nn.ModuleList):
    """Runs every branch on the same input and concatenates their outputs along the channels (with the input
    itself first when ``with_input``)."""

    def __init__(self, branches: list[nn.Module], with_input: bool = False):
        super().__init__(branches)
        self.with_input = with_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x] if self.with_input else []
        return torch.cat(parts + [branch(x) for branch in self], dim=1)


def named(**modules: nn.Module) -> nn.Sequential:
    """A sequence whose parts keep their names in the state dict (``branches.0...``, ``project...``)."""
    return nn.Sequential(OrderedDict(modules))


class ImagePooling(nn.Module):
    """Global average pooling -> 1x1 conv-BN-ReLU -> broadcast back to the input's size (DeepLabv3)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(F.adaptive_avg_pool2d(x, 1))
        return in_format_of(pooled.expand(-1, -1, x.shape[-2], x.shape[-1]), x)


class PyramidLevel(nn.Module):
    """Pool the feature to ``bins`` x ``bins`` (average or max; overlapping windows when the feature is smaller),
    optionally reduce it by a 1x1 conv-BN-ReLU to ``cout`` channels, and upsample it back (``bilinear`` as PSPNet,
    or ``nearest``: the piecewise-constant cells of SPPNet)."""

    def __init__(self, cin: int, cout: int | None, bins: int, pooling: str, upsample: str = "bilinear"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(bins) if pooling == "avg" else nn.AdaptiveMaxPool2d(bins)
        self.reduce = conv_bn_relu(cin, cout, 1) if cout is not None else nn.Identity()
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(self.pool(x))
        align = {"align_corners": False} if self.upsample == "bilinear" else {}
        return in_format_of(F.interpolate(y, size=x.shape[-2:], mode=self.upsample, **align), x)
