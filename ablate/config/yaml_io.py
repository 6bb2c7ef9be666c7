"""Recipes and studies from YAML files: a missing, broken or empty file is one line naming it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from ablate.config.errors import validate
from ablate.config.schema import Recipe
from ablate.core import plugins
from ablate.core.errors import ConfigError


@functools.lru_cache(maxsize=64)
def _parse(text: str) -> Any:
    return yaml.safe_load(text)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a study or recipe file holds, as a fresh copy the caller may change. A command asks for its study
    several times before the study is loaded (is it a study or a recipe, is it there at all); each text is parsed
    once: the parse is kept by the file's text, so a file that changes is parsed again."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = copy.deepcopy(_parse(path.read_text()))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:  # empty, whitespace or comments only: almost surely a mistake, never "every default"
        raise ConfigError(
            f"{path}: the file is empty; a study names its recipe and axes (e.g. studies/aspp_rates.yaml), a recipe "
            "its data, model, train and eval sections (e.g. recipes/synthetic.yaml)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def load_recipe(path: str | Path) -> Recipe:
    """A recipe file, after the plugins it names (``plugins:``, not part of the recipe) and the installed ones."""
    data = load_yaml(path)
    plugins.load_entry_points()
    plugins.load(data.pop("plugins", None), Path(path).parent, f"{path}: plugins")
    return validate(Recipe, data, str(path))
