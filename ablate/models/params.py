"""Typed, torch-free parameters of every context head (one pydantic model per head).

The config layer validates recipes against these without importing torch; the head modules in
``ablate.models.heads`` take them as their constructor argument.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoneParams(_Params):
    """The plain FCN baseline: one 3x3 conv, no context aggregation."""

    name: Literal["none"] = "none"
    channels: PositiveInt = 256


class ASPPParams(_Params):
    """Atrous spatial pyramid pooling (DeepLab v2/v3): a 1x1 branch, one 3x3 branch per rate, image pooling."""

    name: Literal["aspp"] = "aspp"
    rates: list[PositiveInt] = Field(default=[6, 12, 18], min_length=1)
    image_pooling: bool = True
    channels: PositiveInt = 256
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)


HeadParams = Annotated[NoneParams | ASPPParams, Field(discriminator="name")]

HEAD_PARAMS: dict[str, type[_Params]] = {"none": NoneParams, "aspp": ASPPParams}
