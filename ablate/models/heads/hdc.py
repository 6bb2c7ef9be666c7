"""Hybrid dilated convolution (Wang et al., "Understanding Convolution for Semantic Segmentation", arXiv:1702.08502).

A cascade of 3x3 dilated conv-BN-ReLU layers whose dilations follow a rate pattern (default 1, 2, 5), repeated
``repeats`` times, so that the union of the taps covers a square region without holes ("gridding"). The paper's
rule (Sec. 3.3): the rates of a group must not share a common factor > 1, and the maximum distance between two
non-zero taps, M_2 (M_n = r_n, M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i)), must not exceed the
kernel size. A pattern that breaks it builds, with a ``GriddingWarning`` (so gridding itself can be ablated).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ablate.models.heads.base import ContextHead, conv_bn_relu
from ablate.models.params import HDCParams, gridding_problem


class GriddingWarning(UserWarning):
    """A dilation pattern that leaves holes in the receptive field (Wang et al.'s HDC rule)."""


def warn_gridding(rates: list[int], where: str) -> None:
    problem = gridding_problem(list(rates))
    if problem:
        warnings.warn(f"{where}: {problem} (HDC rule, Wang et al. 2018)", GriddingWarning, stacklevel=3)


class HDC(ContextHead):
    def __init__(self, in_channels: int, params: HDCParams):
        super().__init__()
        warn_gridding(params.rates, "model.head.rates")
        layers: list[nn.Module] = []
        cin = in_channels
        for _ in range(params.repeats):
            for rate in params.rates:
                layers.append(conv_bn_relu(cin, params.channels, 3, dilation=rate))
                cin = params.channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
