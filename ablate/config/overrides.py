"""The dotted overrides that studies and ``--set`` apply to a recipe (``model.head.rates: [6, 12]``), each checked
against the schema with a one-line error naming where the bad value came from."""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

import yaml
from pydantic import ValidationError

from ablate.config.errors import format_error
from ablate.config.schema import Recipe
from ablate.core.errors import ConfigError


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "model.head.rates", [6, 12])``; intermediate mappings are created as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise KeyError(part)
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node[part]
    return node


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys. Setting a section's ``name`` (``model.head.name: ppm``) to another value swaps the section
    for that kind: its other keys are dropped (they belonged to the old kind) and take the new kind's defaults, and
    overrides of keys inside it apply on top, whatever their order."""
    out = copy.deepcopy(base)
    names = [k for k in overrides if k.endswith(".name")]
    for key in names + [k for k in overrides if k not in names]:
        value = overrides[key]
        if key in names:
            try:
                section = get_dotted(out, key.rsplit(".", 1)[0])
            except (KeyError, TypeError):
                section = None
            if isinstance(section, dict) and section.get("name") != value:
                section.clear()
        set_dotted(out, key, value)
    return out


def parse_sets(sets: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``--set KEY=VALUE`` options (YAML values; or another ``flag``'s) as a dict of dotted keys."""
    out = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item}: expected KEY=VALUE, e.g. {flag} train.steps=20")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {item}: the value is not valid YAML") from None
    return out


def check_override(base: dict[str, Any], key: str, value: Any, source: str, given: Collection[str] = ()) -> None:
    """Raise ``ConfigError`` naming ``source`` when ``base`` with ``key: value`` is not a valid recipe; a required key
    that is missing but among ``given`` (set beside it, as ``data.classes`` beside ``data.name: folder``) is not an
    error here."""
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{source}: keys must be dotted recipe paths such as 'model.output_stride'")
    try:
        merged = apply_overrides(base, {key: value})
    except KeyError as exc:
        raise ConfigError(f"{source}: '{exc.args[0]}' in '{key}' is a value, not a section") from None
    try:
        Recipe.model_validate(merged)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["type"] != "missing" or format_error(e, Recipe)[0] not in given]
        if not errors:
            return
        err_key, msg = format_error(errors[0], Recipe)
        where = "" if err_key == "<top>" else f" (recipe key {err_key})"  # a rule across sections names its keys
        raise ConfigError(f"{source}: {msg}{where}") from None


def check_block(base: dict[str, Any], block: dict[str, Any], where: str, sep: str = ".") -> None:
    """Check a block of overrides key by key, with the block's section swaps (``data.name: voc``) applied first,
    so ``{data.name: voc, data.root: ...}`` checks ``data.root`` against the VOC section."""
    names = {k: v for k, v in block.items() if k.endswith(".name")}
    for key, value in names.items():
        check_override(base, key, value, f"{where}{sep}{key}", given=block)
    swapped = apply_overrides(base, names)
    for key, value in block.items():
        if key not in names:
            check_override(swapped, key, value, f"{where}{sep}{key}", given=block)
