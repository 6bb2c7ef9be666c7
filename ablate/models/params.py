"""Typed, torch-free parameters of every context head (one pydantic model per head).

The config layer validates recipes against these without importing torch; the head modules in
``ablate.models.heads`` take them as their constructor argument. Defaults follow each paper; every field has a
description, which ``ablate heads`` prints.
"""

from __future__ import annotations

import math
import typing
from functools import reduce
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from pydantic.fields import FieldInfo

Rates = Annotated[list[PositiveInt], Field(min_length=1)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoneParams(_Params):
    """The plain FCN baseline: one 3x3 conv, no context aggregation."""

    name: Literal["none"] = "none"
    channels: PositiveInt = Field(256, description="output channels of the 3x3 conv")


class ASPPParams(_Params):
    """Atrous spatial pyramid pooling (DeepLab v2/v3): a 1x1 branch, one 3x3 branch per rate, image pooling."""

    name: Literal["aspp"] = "aspp"
    rates: Rates = Field([6, 12, 18], description="atrous rate of each 3x3 branch (any number of branches)")
    image_pooling: bool = Field(True, description="image-level branch: global average pool -> 1x1 conv -> broadcast")
    separable: bool = Field(False, description="depthwise-separable 3x3 branches (DeepLabv3+) instead of full convs")
    channels: PositiveInt = Field(256, description="channels of every branch and of the projection")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after the 1x1 projection")


class PPMParams(_Params):
    """Pyramid pooling module (PSPNet): pool to bins x bins, reduce, upsample, concat with the input, 3x3 conv."""

    name: Literal["ppm"] = "ppm"
    bins: Rates = Field([1, 2, 3, 6], description="pyramid levels: each pools the feature to bins x bins")
    pooling: Literal["avg", "max"] = Field("avg", description="pooling of each level (PSPNet Table 1: AVE vs MAX)")
    reduction: bool = Field(True, description="1x1 conv to in/len(bins) channels after pooling (Table 1: DR)")
    concat_input: bool = Field(True, description="concatenate the pyramid with the input feature")
    channels: PositiveInt = Field(512, description="output channels of the 3x3 bottleneck conv")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after the bottleneck")


class SPPParams(_Params):
    """Spatial pyramid pooling (He et al., SPPNet) as a dense head: max-pool pyramid, no reduction, fusing conv."""

    name: Literal["spp"] = "spp"
    bins: Rates = Field([1, 2, 4], description="pyramid levels: each max-pools the feature to bins x bins")
    pooling: Literal["max", "avg"] = Field("max", description="pooling of each level (SPPNet uses max)")
    concat_input: bool = Field(True, description="concatenate the upsampled pyramid with the input feature")
    channels: PositiveInt = Field(256, description="output channels of the 3x3 fusing conv")


class ContextParams(_Params):
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


class HDCParams(_Params):
    """Hybrid dilated convolution (Wang et al. 2018): a cascade of 3x3 dilated convs following a rate pattern."""

    name: Literal["hdc"] = "hdc"
    rates: Rates = Field([1, 2, 5], description="dilation pattern of one group (warned about if it grids)")
    repeats: PositiveInt = Field(2, description="how many times the pattern is cascaded")
    channels: PositiveInt = Field(256, description="channels of every conv")


class DeformableParams(_Params):
    """Deformable convolution (Dai et al. 2017; v2 modulation: Zhu et al. 2019) as a head of 3x3 layers."""

    name: Literal["deformable"] = "deformable"
    layers: PositiveInt = Field(2, description="number of deformable 3x3 conv-BN-ReLU layers")
    modulated: bool = Field(False, description="v2: learned per-sample modulation mask (sigmoid)")
    dilation: PositiveInt = Field(1, description="dilation of the regular grid the offsets start from")
    channels: PositiveInt = Field(256, description="channels of every layer")


HeadParams = Annotated[
    NoneParams | ASPPParams | PPMParams | SPPParams | ContextParams | HDCParams | DeformableParams,
    Field(discriminator="name"),
]

HEAD_PARAMS: dict[str, type[_Params]] = {
    "none": NoneParams,
    "aspp": ASPPParams,
    "ppm": PPMParams,
    "spp": SPPParams,
    "context": ContextParams,
    "hdc": HDCParams,
    "deformable": DeformableParams,
}


# ---------------------------------------------------------------------------------------------------- helpers
def type_name(annotation: Any) -> str:
    """A short readable type: ``int``, ``list[int]``, ``'avg' | 'max'``, ``float``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *meta = typing.get_args(annotation)
        positive = any(getattr(m, "gt", None) == 0 for m in meta)
        return type_name(inner) + (" > 0" if positive else "")
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is list:
        return f"list[{type_name(typing.get_args(annotation)[0])}]"
    if annotation is PositiveInt or (isinstance(annotation, type) and issubclass(annotation, int)):
        return "bool" if annotation is bool else "int"
    return getattr(annotation, "__name__", str(annotation))


def field_type(field: FieldInfo) -> str:
    """A field's type with its bounds, e.g. ``int (> 0)``, ``list[int > 0] (length >= 1)``."""
    kind = type_name(field.annotation)
    bounds = [
        f"{op} {getattr(m, attr)}"
        for m in field.metadata
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="))
        if getattr(m, attr, None) is not None
    ]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def describe_fields(params: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of every parameter of a head but ``name``."""
    return [
        (key, field_type(field), str(field.default), field.description or "")
        for key, field in params.model_fields.items()
        if key != "name"
    ]


def gridding_problem(rates: list[int], kernel: int = 3) -> str | None:
    """Why a cascade of ``kernel`` x ``kernel`` convs with these dilations leaves holes, or None if it does not.

    Wang et al. 2018 (HDC), Sec. 3.3: the rates of a group must not share a common factor > 1, and with
    M_n = r_n, M_i = max(M_{i+1} - 2 r_i, M_{i+1} - 2 (M_{i+1} - r_i), r_i), the maximum distance between two
    non-zero taps M_2 must not exceed the kernel size.
    """
    if len(rates) == 1 and rates[0] == 1:
        return None
    common = reduce(math.gcd, rates)
    if common > 1:
        return f"rates {list(rates)} share the common factor {common}, so the cascade sees only every {common}th pixel"
    m = rates[-1]
    for r in reversed(rates[1:-1]):
        m = max(m - 2 * r, m - 2 * (m - r), r)
    if len(rates) > 1 and m > kernel:
        return f"rates {list(rates)} give M_2 = {m} > kernel size {kernel}: the cascade's receptive field has holes"
    return None
