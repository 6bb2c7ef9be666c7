"""Context module (Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", arXiv:1511.07122) as a
head: a 1x1 projection of the backbone feature to C = ``channels`` (the paper's C is the number of classes: the
front end's class scores), then the identity-initialised module of ``ablate.models.layers.context`` (basic: C
channels; large: 2C..32C), C -> C."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams, Rates


@HEADS.register
class ContextParams(HeadParams):
    """Context module (Yu & Koltun 2016): a 1x1 projection to C channels, then 3x3 dilated convs and a 1x1."""

    name: Literal["context"] = "context"
    variant: Literal["basic", "large"] = Field("basic", description="basic: C channels; large: widths 2C..32C")
    dilations: Rates = Field(
        [1, 1, 2, 4, 8, 16, 1], description="dilation of each 3x3 layer (Dilation10: 1,1,2,4,8,16,32,64,1)"
    )
    channels: PositiveInt = Field(64, description="C: the module's input/output channels (the paper's classes)")
    init_noise: float = Field(
        0.01, ge=0.0, lt=1.0, description="large: noise std relative to C/c_out added to the identity init"
    )

    def build(self, in_channels: int, blocks: ModuleType) -> tuple[Any, int]:
        c = self.channels
        module = blocks.ContextModule(c, list(self.dilations), self.variant, self.init_noise)
        return blocks.named(project=blocks.Conv2d(in_channels, c, 1), context=module), c
