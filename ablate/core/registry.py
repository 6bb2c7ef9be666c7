"""Name -> class maps for the extension points (heads, data sets, executors): each entry registers itself once, with
the name its config's discriminator field (``name`` or ``kind``) holds. Listings, validation and tests read them.

A registry stays open until validation: the pydantic field it gives (``union()``) validates a value as the
discriminated union of the entries registered at that moment, so a plugin imported after ablate's own modules
(``ablate.core.plugins``) registers exactly like a built-in entry, with the same errors, dumps and JSON schema."""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic_core import PydanticKnownError, core_schema

from ablate.core.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=type[BaseModel])


def origin(cls: type) -> str:
    """Where a class is defined, for messages: ``module.Class (file)``."""
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return f"{cls.__module__}.{cls.__qualname__}" + (f" ({file})" if file else "")


class RegistryError(ConfigError):
    """A name registered twice (two plugins, or a plugin and a built-in entry)."""


class Registry(Generic[T]):
    """``register`` is a class decorator; the class's ``key`` field (a ``Literal``) is its name."""

    instances: ClassVar[list[Registry]] = []  # every registry (a plugin that fails to import is undone in each)

    def __init__(self, what: str, key: str = "name"):
        self.what, self.key = what, key
        self._entries: dict[str, T] = {}
        self._adapter: tuple[tuple[T, ...], TypeAdapter] | None = None  # the union of the entries, when last built
        Registry.instances.append(self)

    def register(self, cls: T) -> T:
        field = cls.model_fields.get(self.key)
        if field is None or typing.get_origin(field.annotation) is not Literal:
            raise TypeError(f"{cls.__name__}: a registered {self.what} needs a Literal '{self.key}' field")
        (name,) = typing.get_args(field.annotation)
        if name in self._entries:
            raise RegistryError(
                f"{self.what} '{name}' is registered twice: by {origin(self._entries[name])} and by {origin(cls)}; "
                "rename one"
            )
        self._entries[name] = cls
        return cls

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.what} '{name}'{did_you_mean(name, self._entries)}; allowed: {', '.join(self._entries)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def union(self) -> Any:
        """The type of a pydantic field that holds any registered config, picked by its ``key`` (a discriminated
        union), with the entries registered when a value is validated, not when the field is declared."""
        return Annotated[BaseModel, _Open(self)]

    def validate(self, value: Any, context: Any = None) -> BaseModel:
        """``value`` as the config of the entry its ``key`` names (an instance of a registered class passes)."""
        members = tuple(self._entries.values())
        if isinstance(value, members):
            return value
        if len(members) == 1 or (isinstance(value, dict) and value.get(self.key) not in self._entries):
            # pydantic's own error for an unknown tag (a one-member "union" would report a literal error instead)
            if not isinstance(value, dict) or self.key not in value:
                raise PydanticKnownError("union_tag_not_found", {"discriminator": repr(self.key)})
            if value[self.key] not in self._entries:
                expected = ", ".join(repr(n) for n in self._entries)
                ctx = {"discriminator": repr(self.key), "tag": str(value[self.key]), "expected_tags": expected}
                raise PydanticKnownError("union_tag_invalid", ctx)
        return self._union_adapter().validate_python(value, context=context)

    def _union_adapter(self) -> TypeAdapter:
        members = tuple(self._entries.values())
        if self._adapter is None or self._adapter[0] != members:
            union = members[0] if len(members) == 1 else Annotated[typing.Union[members], Field(discriminator=self.key)]  # noqa: UP007
            self._adapter = (members, TypeAdapter(union))
        return self._adapter[1]


class _Open:
    """The pydantic schema of ``Registry.union()``: validation dispatches through the registry when it runs;
    dumps use each config's own serializer; the JSON schema is the union of the entries registered when it is
    made."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def check(value: Any, info: core_schema.ValidationInfo) -> BaseModel:
            return self.registry.validate(value, info.context)

        return core_schema.with_info_plain_validator_function(check)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        return handler(self.registry._union_adapter().core_schema)
