"""Name -> class maps for the extension points (heads, data sets, executors): each entry registers itself once, with
the name its config's discriminator field (``name`` or ``kind``) holds. Listings, validation and tests read them."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from ablate.core.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=type[BaseModel])


class Registry(Generic[T]):
    """``register`` is a class decorator; the class's ``key`` field (a ``Literal``) is its name."""

    def __init__(self, what: str, key: str = "name"):
        self.what, self.key = what, key
        self._entries: dict[str, T] = {}

    def register(self, cls: T) -> T:
        field = cls.model_fields.get(self.key)
        if field is None or typing.get_origin(field.annotation) is not Literal:
            raise TypeError(f"{cls.__name__}: a registered {self.what} needs a Literal '{self.key}' field")
        (name,) = typing.get_args(field.annotation)
        if name in self._entries:
            first = self._entries[name].__name__
            raise TypeError(f"{self.what} '{name}' is registered twice ({first}, {cls.__name__})")
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
        """The discriminated union of every registered config, for a pydantic field."""
        members = tuple(self._entries.values())
        return Annotated[typing.Union[members], Field(discriminator=self.key)]  # noqa: UP007 - a runtime tuple
