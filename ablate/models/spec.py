"""The ``model:`` section of a recipe (torch-free): backbone, output stride, last-stage options, head, decoder."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator

from ablate.core.errors import ConfigError
from ablate.core.schema import Strict
from ablate.models.heads import HeadConfig
from ablate.models.heads.none import NoneParams
from ablate.models.weights import source_of

# beyond 32 only with cascaded blocks (DeepLabv3 Table 1 runs block7 at output strides 8 to 256)
OutputStride = Literal[8, 16, 32, 64, 128, 256]


class DecoderConfig(Strict):
    """DeepLabv3+ decoder: low-level 1x1 -> ``low_level_channels``, concat, 2 x [3x3, ``channels``]."""

    enabled: bool = False
    low_level_channels: PositiveInt = 48
    channels: PositiveInt = 256


class ModelConfig(Strict):
    backbone: str = "test_resnet"
    pretrained: bool = False
    # the backbone's weights: a local file, or a source installed as a package, e.g. efficientnet_lite0
    # (ablate/models/weights.py; data.mean/std then follow the weights); no downloads at run time
    weights: str | None = None
    # extra keyword arguments of timm.create_model, e.g. {layers: [1, 1, 1, 3]}: test_resnet with three blocks in
    # its last stage, so that DeepLabv3's multi-grid (r1, r2, r3) has a block per unit rate
    backbone_args: dict[str, Any] = Field(default_factory=dict)
    output_stride: OutputStride = 16
    head: HeadConfig = Field(default_factory=NoneParams)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    # last stage of the backbone (see ablate/models/backbone.py)
    multi_grid: list[PositiveInt] | None = None  # DeepLabv3 unit rates: dilation = unit x (32 / output_stride)
    hdc_rates: list[PositiveInt] | None = None  # HDC: the dilations themselves, cycled; not with multi_grid
    deformable_blocks: int = Field(default=0, ge=0)  # deformable 3x3 convs in the last N blocks (Dai et al.)
    deformable_modulated: bool = False  # DCNv2 modulation of those deformable convs
    # DeepLabv3's block5, block6, ...: new copies of the last stage after it (ablate/models/cascade.py)
    cascade_blocks: int = Field(default=0, ge=0, le=3)
    # PSPNet's auxiliary loss: an FCN head (3x3 conv-BN-ReLU, dropout, 1x1) on the stage before the last, its
    # cross-entropy added with this weight during training (PSPNet: 0.4); 0 = no auxiliary head
    aux_loss: float = Field(default=0.0, ge=0)

    late_keys: ClassVar[tuple[str, ...]] = ("cascade_blocks",)

    @field_validator("weights")
    @classmethod
    def _known_source(cls, weights: str | None) -> str | None:
        try:
            source_of(weights)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("model.weights: ")) from None
        return weights
