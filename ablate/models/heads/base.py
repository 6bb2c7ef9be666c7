"""What every context head is: a typed, frozen parameter model that names its ``nn.Module`` class.

A head is two classes:

- a ``HeadParams`` subclass (this package, one file per head, torch-free): a ``name`` literal, its parameters
  (defaults from its paper, each with a description ``ablate heads`` prints), and ``module``, the import path
  ``"package.module:Class"`` of its module class. The recipe schema validates it without importing torch.
- the module class (any importable torch file; the built-in ones are in ``ablate.models.head_modules``): a plain
  ``nn.Module`` whose ``__init__(in_channels, params)`` builds it from the backbone's last feature width and the
  validated params, sets ``self.out_channels``, and whose ``forward(x)`` maps ``in_channels`` x H x W to
  ``out_channels`` x H x W.

Registering is the ``@HEADS.register`` decorator on the params class (plus, for a built-in head, the file's name in
``ablate/models/heads/__init__.py``). A user's head follows the same contract.
"""

from __future__ import annotations

import importlib
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ablate.core.errors import ConfigError
from ablate.core.registry import Registry

Rates = Annotated[list[PositiveInt], Field(min_length=1)]


class HeadParams(BaseModel):
    """A head's parameters; ``module`` names the ``nn.Module`` class built from them (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "package.module:Class" of the head's nn.Module (or the class itself, where that keeps this file torch-free)
    module: ClassVar[str | type]
    # parameters that are atrous rates in feature pixels: they follow ``eval.output_stride`` (DeepLabv3's rule)
    rate_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def module_class(cls) -> type:
        """The head's module class, imported from ``module``. Raises ``ConfigError`` (one line naming the head)
        when it cannot be imported."""
        name = cls.model_fields["name"].default if "name" in cls.model_fields else cls.__name__
        target = getattr(cls, "module", None)
        if isinstance(target, type):
            return target
        where = f"model.head.name '{name}' ({cls.__module__}.{cls.__qualname__}.module)"
        if not isinstance(target, str) or target.count(":") != 1:
            raise ConfigError(f"{where}: needs the import path of its nn.Module class, 'package.module:Class' "
                              f"(got {target!r})")  # fmt: skip
        path, attr = target.split(":")
        try:
            found = importlib.import_module(path)
            for part in attr.split("."):
                found = getattr(found, part)
        except Exception as exc:  # noqa: BLE001 - any failure of the user's module is reported in one line
            raise ConfigError(f"{where}: cannot import '{target}': {type(exc).__name__}: {exc}") from None
        if not isinstance(found, type):
            raise ConfigError(f"{where}: '{target}' is not a class")
        return found


HEADS: Registry = Registry("head")
