"""Atrous spatial pyramid pooling (Chen et al., DeepLab v2 arXiv:1606.00915; v3 arXiv:1706.05587).

Branches run in parallel on the same feature: a 1x1 conv, one 3x3 conv per atrous rate, and (v3) image-level
pooling (global average -> 1x1 conv -> broadcast back). Their outputs are concatenated and projected by a 1x1 conv.
Any number of rates is allowed, so "how many branches, which rates" is one list in the recipe. ``separable``
swaps each 3x3 branch for a depthwise-separable one (DeepLabv3+, arXiv:1802.02611 Sec. 3.2: depthwise 3x3 atrous
conv -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU). Every conv is followed by BN and ReLU, as in v3. With the same
rates, the layout (and so the state dict order) matches torchvision's ``ASPP`` module.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams, Rates


@HEADS.register
class ASPPParams(HeadParams):
    """Atrous spatial pyramid pooling (DeepLab v2/v3): a 1x1 branch, one 3x3 branch per rate, image pooling."""

    name: Literal["aspp"] = "aspp"
    module: ClassVar[str] = "ablate.models.head_modules.aspp:ASPP"
    rates: Rates = Field([6, 12, 18], description="atrous rate of each 3x3 branch (any number of branches)")
    image_pooling: bool = Field(True, description="image-level branch: global average pool -> 1x1 conv -> broadcast")
    separable: bool = Field(False, description="depthwise-separable 3x3 branches (DeepLabv3+) instead of full convs")
    channels: PositiveInt = Field(256, description="channels of every branch and of the projection")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after the 1x1 projection")

    rate_fields: ClassVar[tuple[str, ...]] = ("rates",)
