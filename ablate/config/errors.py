"""A pydantic validation error as the one line users see: the file, the dotted key, what is wrong and what is
allowed (with a did-you-mean for unknown keys and names)."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, Tag, ValidationError

from ablate.core.errors import ConfigError, did_you_mean
from ablate.core.registry import Registry
from ablate.core.schema import field_type


class _Forms(dict):
    """tag -> model (None: not a model) of a union told apart by the form of its value (``Tag`` members, e.g. a
    study's ``seeds``: a list or a mapping): the tag is neither a key the user wrote nor a kind they named."""


def _model_at(annotation: Any) -> type[BaseModel] | dict[str, type[BaseModel]] | None:
    """The pydantic model (or tag -> model map of a discriminated union) an annotation holds."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_at(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        forms = _Forms()
        for member in typing.get_args(annotation):
            for meta in getattr(member, "__metadata__", ()):
                if isinstance(meta, Tag):
                    forms[meta.tag] = _model_at(member)
        if forms:
            return forms
        members = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        tags = {}
        for m in members:
            name_field = m.model_fields.get("name")
            if name_field is not None and typing.get_origin(name_field.annotation) is Literal:
                tags[typing.get_args(name_field.annotation)[0]] = m
        return tags or None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def format_error(err: dict[str, Any], root: type[BaseModel]) -> tuple[str, str]:
    """(dotted key, message) for one pydantic error, with allowed values and a did-you-mean."""
    node: Any = root
    path: list[str] = []
    head = ""  # "head 'ppm': " once the path enters a head's parameters
    for part in err["loc"]:
        if isinstance(node, _Forms) and part in node:
            node = node[part]
            continue
        if isinstance(node, dict) and part in node:  # discriminated union tag: not a key the user wrote
            node = node[part]
            head = f"{path[-1] if path else 'section'} '{part}': "
            continue
        if isinstance(part, int):
            path[-1] = f"{path[-1]}[{part}]" if path else f"[{part}]"
            node = None
            continue
        parent = node
        path.append(str(part))
        if isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            field = node.model_fields[part]
            # a registry's open union (``Registry.union``): the entries registered now
            opened = [m.registry for m in field.metadata if isinstance(getattr(m, "registry", None), Registry)]
            node = dict(opened[0].items()) if opened else _model_at(field.annotation)
        else:
            node = None
    key = ".".join(path) or "<top>"
    kind, value = err["type"], err.get("input")
    err = {**err, "msg": err["msg"].removeprefix("Value error, ")}  # our validators' own words
    named = re.match(r"([a-z_]+(?:\.[a-z_]+)+): (.*)", err["msg"]) if not path and kind == "value_error" else None
    if named:  # a check across sections names the key it is about
        return named[1], named[2]
    if kind == "extra_forbidden":
        allowed = list(parent.model_fields) if isinstance(parent, type) else []
        scope = f" for {head[:-2]}" if head else ""
        return key, (f"unknown key '{path[-1]}'{did_you_mean(path[-1], allowed)}; allowed{scope}: {', '.join(allowed)}")
    if kind == "missing":
        return key, "required key is missing"
    if (
        head
        and isinstance(parent, type)
        and issubclass(parent, BaseModel)
        and path[-1].split("[")[0] in parent.model_fields
    ):
        field = path[-1].split("[")[0]
        if kind == "value_error":  # our validators' messages say what was given and what is allowed
            return key, f"{head}{err['msg']}"
        expected = field_type(parent.model_fields[field])
        return key, f"{head}{field}: {err['msg']} (got {value!r}); allowed: {expected}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = list(node) if isinstance(node, dict) else []
        got = (err.get("ctx") or {}).get("tag", value)
        return key + ".name", f"unknown name {got!r}{did_you_mean(got, tags)}; allowed: {', '.join(tags)}"
    return key, f"{err['msg']} (got {value!r})"


def validate(cls: type[BaseModel], data: Any, source: str, prefix: str = "") -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        key, msg = format_error(exc.errors()[0], cls)
        raise ConfigError(f"{source}: {prefix}{key}: {msg}") from None
