"""Context module (Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", arXiv:1511.07122) as a
head: a front end from the backbone feature to C = ``channels``, then the identity-initialised module of
``ablate.models.head_modules.context`` (basic: C channels; large: 2C..32C), C -> C.

The paper appends the module to a trained front end, and the identity init means it starts where the front end
is. The front end here is the FCN baseline's own 3x3 conv-BN-ReLU (``front_end: fcn``, the ``none`` head), so at
init this head computes exactly what the ``none`` head computes, and training can only add context. The earlier
front end, a bare 1x1 conv (``front_end: project``), is kept to show why it fell below the baseline (Yu & Koltun
Table 3 reduced: front end 49.84, + context 25.37): its output is signed, the module's first ReLU drops every
negative value, so at init the model is the FCN with half of its features cut off, and the identity-initialised
3x3 convs, with no normalisation, train slowly out of it. With the paper's C = 21 the fcn front end is still a
21-channel bottleneck, and the plain module trained end to end barely moves from it (reduced Table 3 on the bars,
seed 0: none(1024) 63.0, none(21) 54.4, + basic 56.5 mIoU); ``bn: true`` trains it out (+ basic 74.3)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams, Rates


@HEADS.register
class ContextParams(HeadParams):
    """Context module (Yu & Koltun 2016): a 1x1 projection to C channels, then 3x3 dilated convs and a 1x1."""

    name: Literal["context"] = "context"
    module: ClassVar[str] = "ablate.models.head_modules.context:ContextHead"
    variant: Literal["basic", "large"] = Field("basic", description="basic: C channels; large: widths 2C..32C")
    dilations: Rates = Field(
        [1, 1, 2, 4, 8, 16, 1], description="dilation of each 3x3 layer (Dilation10: 1,1,2,4,8,16,32,64,1)"
    )
    channels: PositiveInt = Field(64, description="C: the module's input/output channels (the paper's classes)")
    init_noise: float = Field(
        0.01, ge=0.0, lt=1.0, description="large: noise std relative to C/c_out added to the identity init"
    )
    front_end: Literal["fcn", "project"] = Field(
        "fcn", description="fcn: the FCN head's 3x3 conv-BN-ReLU (at init the model is the none head's); project: "
        "a 1x1 conv (signed: the module's first ReLU drops half of it)"
    )
    bn: bool = Field(False, description="BN after each 3x3 conv of the module, before its ReLU (not in the paper)")
