"""The ``context`` head's module: Yu & Koltun's context module ("Multi-Scale Context Aggregation by Dilated
Convolutions", arXiv:1511.07122) after a front end (see ``ablate.models.heads.context``).

Paper, Table 1: seven 3x3 convs with dilations 1, 1, 2, 4, 8, 16, 1, each truncated by a ReLU, then a 1x1 conv
(no truncation); receptive field 67x67. The *basic* module keeps C channels throughout and is initialised to the
identity, k(t, a)_b = 1[t = 0] 1[a = b] (random init "failed to yield an improvement"). The *large* module widens
the layers to 2C, 2C, 4C, 8C, 16C, 32C, 32C (then C) and uses the generalised identity init: between layers of
c_i and c_{i+1} channels, k(t, a)_b = C / c_{i+1} if t = 0 and floor(a C / c_i) = floor(b C / c_{i+1}), else
noise eps ~ N(0, sigma^2) with sigma << C / c_{i+1} (here sigma = ``init_noise`` x C / c_{i+1}). Biases start at 0.
At identity init the module returns its (non-negative) input; inside the large module, channel b of a layer of
width c carries input channel floor(b C / c) scaled by C / c (the block identity).

Fitting our interface: in the paper C is the number of classes and the module refines the front end's class
scores. Here the head first maps the backbone feature to C = ``channels`` (``front_end``: the FCN head's 3x3
conv-BN-ReLU, or a 1x1 conv), the module maps C -> C, and the segmenter's classifier reads those C channels.
``dilations`` gives the 3x3 layers (Dilation10: 1, 1, 2, 4, 8, 16, 32, 64, 1; Dilation7 drops the 16). The paper
pads the input once by a 33-pixel buffer and uses unpadded convs; we zero-pad each conv ("same"), which keeps H x W
for any input.
"""

from __future__ import annotations

import torch
from torch import nn

from ablate.models.heads.context import ContextParams
from ablate.models.layers.conv import conv_bn_relu


def large_widths(n: int) -> list[int]:
    """Width multipliers of the large module's n 3x3 layers: 2, 2, 4, 8, 16, 32, ..., capped at 32; the last
    layer keeps the width of the one before it (Table 1: 2C 2C 4C 8C 16C 32C 32C for n = 7)."""
    widths = [min(32, 2 ** max(1, i - 1)) for i in range(1, n + 1)]
    if n > 1:
        widths[-1] = widths[-2]
    return widths


@torch.no_grad()
def identity_init_(conv: nn.Conv2d, classes: int, noise: float = 0.0) -> None:
    """The (generalised) identity init of Yu & Koltun Sec. 3 for a conv of c_in -> c_out channels and C classes."""
    c_out, c_in, kh, kw = conv.weight.shape
    value = classes / c_out
    groups_in = torch.arange(c_in) * classes // c_in
    groups_out = torch.arange(c_out) * classes // c_out
    connect = (groups_out[:, None] == groups_in[None, :]).to(conv.weight.dtype)
    weight = torch.zeros_like(conv.weight)
    if noise > 0:
        weight.normal_(0.0, noise * value)
    weight[:, :, kh // 2, kw // 2] = torch.where(connect > 0, value, weight[:, :, kh // 2, kw // 2])
    conv.weight.copy_(weight)
    if conv.bias is not None:
        conv.bias.zero_()


class ContextModule(nn.Module):
    """The C -> C module of Table 1 (``variant`` basic or large), identity-initialised; with ``bn``, BN after each
    3x3 conv (then it is the identity only up to BN's normalisation, and the large module at zero noise computes
    what the basic one does)."""

    def __init__(self, classes: int, dilations: list[int], variant: str = "basic", init_noise: float = 0.0,
                 bn: bool = False):
        super().__init__()
        widths = (
            [classes] * len(dilations) if variant == "basic" else [m * classes for m in large_widths(len(dilations))]
        )
        noise = init_noise if variant == "large" else 0.0
        layers: list[nn.Module] = []
        cin = classes
        for d, cout in zip(dilations, widths, strict=True):
            conv = nn.Conv2d(cin, cout, 3, padding=d, dilation=d)
            identity_init_(conv, classes, noise)
            if bn:
                # BN's scale starts at the block identity's C / c_out: BN would undo the conv's scaling, and the last
                # 1x1 would then sum c / C unit copies (32x the input in the large module: every seed diverged)
                norm = nn.BatchNorm2d(cout)
                nn.init.constant_(norm.weight, classes / cout)
                layers += [conv, norm, nn.ReLU(inplace=True)]
            else:
                layers += [conv, nn.ReLU(inplace=True)]
            cin = cout
        last = nn.Conv2d(cin, classes, 1)
        identity_init_(last, classes, noise)
        layers.append(last)
        self.layers = nn.Sequential(*layers)
        self.widths = widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ContextHead(nn.Module):
    """The front end (``project``), then the context module (``context``)."""

    def __init__(self, in_channels: int, params: ContextParams):
        super().__init__()
        c = params.channels
        # built before the front end (the random init's order), registered after it (the state dict's order)
        context = ContextModule(c, list(params.dilations), params.variant, params.init_noise, params.bn)
        self.project = conv_bn_relu(in_channels, c, 3) if params.front_end == "fcn" else nn.Conv2d(in_channels, c, 1)
        self.context = context
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.context(self.project(x))
