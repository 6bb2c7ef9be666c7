"""Typed-schema pieces every config builds on: the strict pydantic base and readable field types (for one-line
errors and the ``ablate heads`` listing)."""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError, model_serializer
from pydantic.fields import FieldInfo


class Strict(BaseModel):
    """A config section: unknown keys are errors (a typo never silently does nothing).

    ``late_keys``: keys added after runs were made with this section. They are left out of the dump while they hold
    their default, so those runs keep their ids (a run's id hashes its resolved recipe)."""

    model_config = ConfigDict(extra="forbid")
    late_keys: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        data = handler(self)
        if self.late_keys and isinstance(data, dict):
            fields = type(self).model_fields
            for key in self.late_keys:
                if key in data and getattr(self, key) == fields[key].get_default(call_default_factory=True):
                    del data[key]
        return data


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


def describe_fields(params: type[BaseModel], skip: tuple[str, ...] = ("name",)) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of every field of a config but ``skip``. A default is what a config that
    leaves the key out gets, validators included (a data set's split folders come from its layout)."""
    try:
        empty: BaseModel | None = params()
    except ValidationError:
        empty = None
    return [
        (key, field_type(field), str(field.default if empty is None else getattr(empty, key)), field.description or "")
        for key, field in params.model_fields.items()
        if key not in skip
    ]


def default_tag(data: Any, section: str, tag: str, value: str) -> Any:
    """``data`` with ``section.tag`` set to ``value`` where the section is a mapping without one: the tag of a
    discriminated union that an older or shorter YAML leaves out (``data: {...}`` is the synthetic set)."""
    block = data.get(section) if isinstance(data, dict) else None
    if isinstance(block, dict) and tag not in block:
        return {**data, section: {tag: value, **block}}
    return data
