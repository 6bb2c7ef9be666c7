"""Deformable convolution (Dai et al., "Deformable Convolutional Networks", arXiv:1703.06211; modulated v2: Zhu et
al., "Deformable ConvNets v2", arXiv:1811.11168) as a head: ``layers`` deformable 3x3 conv-BN-ReLU layers whose
offsets start at zero (the regular grid), see ``ablate.models.layers.deform``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, PositiveInt

from ablate.models.heads.base import HEADS, HeadParams


@HEADS.register
class DeformableParams(HeadParams):
    """Deformable convolution (Dai et al. 2017; v2 modulation: Zhu et al. 2019) as a head of 3x3 layers."""

    name: Literal["deformable"] = "deformable"
    module: ClassVar[str] = "ablate.models.head_modules.deformable:DeformableHead"
    layers: PositiveInt = Field(2, description="number of deformable 3x3 conv-BN-ReLU layers")
    modulated: bool = Field(False, description="v2: learned per-sample modulation mask (sigmoid)")
    dilation: PositiveInt = Field(1, description="dilation of the regular grid the offsets start from")
    channels: PositiveInt = Field(256, description="channels of every layer")
