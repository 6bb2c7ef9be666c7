"""A pyramid level: the piece the PSPNet (``ppm``) and SPPNet (``spp``) heads share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.models.layers.conv import conv_bn_relu, in_format_of


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
