"""Deformable convolution (Dai et al., "Deformable Convolutional Networks", arXiv:1703.06211; modulated v2: Zhu et
al., "Deformable ConvNets v2", arXiv:1811.11168), via ``torchvision.ops.deform_conv2d`` (no compiled extras).

``DeformConv`` is a drop-in for a k x k ``nn.Conv2d``: a plain conv with the same kernel, stride, padding and
dilation predicts 2 k^2 offsets per output pixel (v2: plus k^2 modulation scalars through a sigmoid); it is
initialised to zero (Dai et al. Sec. 2.1; Zhu et al. Sec. 3), so at init the sampling grid is the regular one and
a v1 layer equals the plain conv with the same weights (a v2 layer starts at half of it: sigmoid(0) = 0.5, as in the
paper). The weight keeps the name ``weight``, so a state dict of the plain conv loads into it unchanged. The
``deformable`` head stacks such 3x3 layers; the backbone uses ``DeformConv`` for the 3x3 convs of its last blocks
(``model.deformable_blocks``).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import deform_conv2d


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


class DeformConv(nn.Module):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride=1,
        padding=1,
        dilation=1,
        groups: int = 1,
        bias: bool = False,
        modulated: bool = False,
    ):
        super().__init__()
        self.kernel, self.stride, self.padding, self.dilation = (
            _pair(kernel),
            _pair(stride),
            _pair(padding),
            _pair(dilation),
        )
        self.groups, self.modulated = groups, modulated
        self.in_channels, self.out_channels = cin, cout
        self.weight = nn.Parameter(torch.empty(cout, cin // groups, *self.kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        taps = self.kernel[0] * self.kernel[1]
        self.offset = nn.Conv2d(
            cin, (3 if modulated else 2) * taps, self.kernel, self.stride, self.padding, self.dilation, bias=True
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, modulated: bool = False) -> DeformConv:
        """A deformable conv that takes over ``conv``'s weight (and bias) parameters."""
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size[0],
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            modulated,
        ).to(conv.weight.device, conv.weight.dtype)
        new.weight = conv.weight
        if conv.bias is not None:
            new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.offset(x)
        taps = self.kernel[0] * self.kernel[1]
        offset, mask = (out[:, : 2 * taps], out[:, 2 * taps :].sigmoid()) if self.modulated else (out, None)
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask=mask)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, modulated={self.modulated}"
        )
