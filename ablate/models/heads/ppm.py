"""Pyramid pooling module (Zhao et al., PSPNet, arXiv:1612.01105, Sec. 3.2 and Table 1).

The feature is pooled to ``bins`` x ``bins`` for every pyramid level (default 1, 2, 3, 6; average or max pooling),
each level optionally reduced by a 1x1 conv (+BN+ReLU) to ``in/len(bins)`` channels ("DR"), upsampled bilinearly
back to the feature's size and concatenated with the feature itself; a 3x3 conv-BN-ReLU bottleneck (then dropout,
as in the reference code) fuses them. Table 1's axes are ``bins`` (B1 vs B1236), ``pooling`` (AVE vs MAX) and
``reduction`` (DR). A feature smaller than a bin is pooled with overlapping windows (adaptive pooling).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams, Rates


@HEADS.register
class PPMParams(HeadParams):
    """Pyramid pooling module (PSPNet): pool to bins x bins, reduce, upsample, concat with the input, 3x3 conv."""

    name: Literal["ppm"] = "ppm"
    module: ClassVar[str] = "ablate.models.head_modules.ppm:PPM"
    bins: Rates = Field([1, 2, 3, 6], description="pyramid levels: each pools the feature to bins x bins")
    pooling: Literal["avg", "max"] = Field("avg", description="pooling of each level (PSPNet Table 1: AVE vs MAX)")
    reduction: bool = Field(True, description="1x1 conv to in/len(bins) channels after pooling (Table 1: DR)")
    concat_input: bool = Field(True, description="concatenate the pyramid with the input feature")
    channels: PositiveInt = Field(512, description="output channels of the 3x3 bottleneck conv")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after the bottleneck")
