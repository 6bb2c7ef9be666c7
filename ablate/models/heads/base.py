"""What every context head is: a typed, frozen parameter model that builds its module.

A head file (one per head, next to this one) holds a ``HeadParams`` subclass with a ``name`` literal, its
parameters (defaults from its paper, each with a description ``ablate heads`` prints) and ``build``. The file imports
no torch: ``build`` receives ``ablate.models.layers`` (the torch building blocks) as its ``blocks`` argument, so the
recipe schema validates head parameters without torch. Registering is the ``@HEADS.register`` decorator plus the
file's name in ``ablate/models/heads/__init__.py``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ablate.core.registry import Registry

Rates = Annotated[list[PositiveInt], Field(min_length=1)]


class HeadParams(BaseModel):
    """``build(in_channels, blocks)`` maps the backbone's last feature (``in_channels`` x H x W) to a module whose
    output is ``out_channels`` x H x W, and returns ``(module, out_channels)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # parameters that are atrous rates in feature pixels: they follow ``eval.output_stride`` (DeepLabv3's rule)
    rate_fields: ClassVar[tuple[str, ...]] = ()

    def build(self, in_channels: int, blocks: ModuleType) -> tuple[Any, int]:  # pragma: no cover - abstract
        raise NotImplementedError


HEADS: Registry = Registry("head")
