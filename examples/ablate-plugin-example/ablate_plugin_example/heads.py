"""The ``strip`` head's parameters: torch-free, so ``ablate heads`` and recipe validation read them without torch."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams


@HEADS.register
class StripParams(HeadParams):
    """Strip pooling (Hou et al., CVPR 2020): each row and each column pooled to a strip, mixed, gating the feature."""

    name: Literal["strip"] = "strip"
    channels: PositiveInt = Field(64, description="channels of the strips and of the head's output")
    kernel: PositiveInt = Field(3, description="length of the 1-D conv along each strip")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout before the output")

    module: ClassVar[str] = "ablate_plugin_example.modules:StripPooling"
