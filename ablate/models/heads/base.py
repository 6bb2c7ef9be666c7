"""The one interface every context head implements, the conv-BN-ReLU block they share, and the atrous conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContextHead(nn.Module):
    """``head(x)`` maps the backbone's last feature (``in_channels`` x H x W) to ``out_channels`` x H x W.

    Subclasses take ``(in_channels, params)`` where ``params`` is their pydantic model from ``ablate.models.params``,
    and set ``self.out_channels``.
    """

    out_channels: int


class AtrousConv2d(nn.Conv2d):
    """A stride-1 'same' dilated conv that skips the kernel taps which can only ever read zero padding.

    Tap ``i`` of a k x k kernel with dilation d reads the input at offset ``(i - k // 2) * d``; once that offset
    reaches the feature map's size, the tap multiplies padding zeros at every output position (DeepLabv3, Sec. 3.3:
    a 3x3 atrous conv with a rate near the feature size "degenerates to a 1x1 filter"). The forward pass then runs
    the conv with the centre taps only: the output is the same, the weight gradient of the skipped taps is zero in
    both cases, and the skipped work is never done (e.g. ASPP rate 18 on a 16 x 16 feature map: 9x less). The
    parameters are those of ``nn.Conv2d`` (same state dict).
    """

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, groups: int = 1, bias: bool = True):
        super().__init__(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, groups=groups,
                         bias=bias)  # fmt: skip
        if kernel % 2 != 1:
            raise ValueError(f"AtrousConv2d needs an odd kernel, got {kernel}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        rh = min(kh // 2, (x.shape[-2] - 1) // dh)  # taps each side that can touch the input
        rw = min(kw // 2, (x.shape[-1] - 1) // dw)
        if rh == kh // 2 and rw == kw // 2:
            return super().forward(x)
        weight = self.weight[:, :, kh // 2 - rh : kh // 2 + rh + 1, kw // 2 - rw : kw // 2 + rw + 1]
        return F.conv2d(x, weight, self.bias, 1, (rh * dh, rw * dw), self.dilation, self.groups)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    if dilation > 1:
        conv: nn.Conv2d = AtrousConv2d(cin, cout, kernel, dilation, groups=groups, bias=False)
    else:
        padding = (kernel - 1) // 2
        conv = nn.Conv2d(cin, cout, kernel, padding=padding, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
