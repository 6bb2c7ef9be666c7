"""The FCN baseline: a single 3x3 conv-BN-ReLU, no context aggregation beyond the backbone's."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams


@HEADS.register
class NoneParams(HeadParams):
    """The plain FCN baseline: one 3x3 conv, no context aggregation."""

    name: Literal["none"] = "none"
    channels: PositiveInt = Field(256, description="output channels of the 3x3 conv")

    def build(self, in_channels: int, blocks: ModuleType) -> tuple[Any, int]:
        return blocks.named(conv=blocks.conv_bn_relu(in_channels, self.channels, 3)), self.channels
