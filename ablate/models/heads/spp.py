"""Spatial pyramid pooling (He et al., SPPNet, arXiv:1406.4729) used as a dense segmentation head.

SPPNet max-pools the last conv feature into a pyramid of ``bins`` x ``bins`` grids (default 1, 2, 4 as in the
paper's {4x4, 2x2, 1x1} pyramid) and keeps every pooled channel: there is no dimension reduction. For a dense head
each level is upsampled (nearest: the pooled cells are piecewise constant, as in the paper) back to the feature's
size and concatenated, together with the feature itself, and a 3x3 conv-BN-ReLU fuses them. Compared with PSPNet's
``ppm`` it differs in max vs average pooling, no 1x1 reduction, and the levels.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams, Rates


@HEADS.register
class SPPParams(HeadParams):
    """Spatial pyramid pooling (He et al., SPPNet) as a dense head: max-pool pyramid, no reduction, fusing conv."""

    name: Literal["spp"] = "spp"
    module: ClassVar[str] = "ablate.models.head_modules.spp:SPP"
    bins: Rates = Field([1, 2, 4], description="pyramid levels: each max-pools the feature to bins x bins")
    pooling: Literal["max", "avg"] = Field("max", description="pooling of each level (SPPNet uses max)")
    concat_input: bool = Field(True, description="concatenate the upsampled pyramid with the input feature")
    channels: PositiveInt = Field(256, description="output channels of the 3x3 fusing conv")
