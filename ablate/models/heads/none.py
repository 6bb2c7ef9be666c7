"""The FCN baseline: a single 3x3 conv-BN-ReLU, no context aggregation beyond the backbone's."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams


@HEADS.register
class NoneParams(HeadParams):
    """The plain FCN baseline: one 3x3 conv, no context aggregation."""

    name: Literal["none"] = "none"
    module: ClassVar[str] = "ablate.models.head_modules.none:FCNHead"
    channels: PositiveInt = Field(256, description="output channels of the 3x3 conv")
