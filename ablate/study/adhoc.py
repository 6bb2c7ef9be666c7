"""Ad-hoc studies from the command line, as Hydra users write ``-m key=a,b``: ``ablate run RECIPE --axis
model.output_stride=8,16 --seeds 0,1,2`` is the study of those axes over that recipe. It is named from the recipe
and its axes, written to results/<name>/study.yaml (and to ``--save-study FILE`` when asked) and loaded from there
like any study, so it has the same table, report and resume, and its saved YAML gives the same run ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ablate.config.yaml_io import load_yaml
from ablate.core.errors import ConfigError
from ablate.core.text import format_value


def parse_axis(item: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2`` (YAML values; lists in brackets: ``model.head.rates=[1],[6,12,18]``) -> (key, values)."""
    key, sep, values = item.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError(f"--axis {item}: expected KEY=VALUE1,VALUE2,... e.g. --axis model.output_stride=8,16")
    try:
        parsed = yaml.safe_load(f"[{values}]")
    except yaml.YAMLError:
        raise ConfigError(f"--axis {item}: the values are not valid YAML (lists go in brackets: [1],[6,12])") from None
    return key.strip(), parsed


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text}: expected integers separated by commas, e.g. --seeds 0,1,2") from None
    if not seeds:
        raise ConfigError(f"--seeds {text}: give at least one seed")
    return seeds


def is_recipe(path: Path) -> bool:
    """A recipe file (data/model/train/eval sections) rather than a study (which names its recipe)."""
    data = load_yaml(path)
    return "recipe" not in data and not {"axes", "name"} & set(data)


def adhoc_name(recipe: Path, axes: dict[str, list[Any]]) -> str:
    parts = [recipe.stem] + [f"{k.split('.')[-1]}={','.join(format_value(v) for v in vs)}" for k, vs in axes.items()]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))[:120]


def write_adhoc(recipe: Path, axis_items: list[str], seeds: str | None, results: Path, save: Path | None) -> Path:
    """Write the ad-hoc study of ``recipe`` (results/<name>/study.yaml, and ``save``) and return its path."""
    axes = dict(parse_axis(item) for item in axis_items)
    if len(axes) < len(axis_items):
        raise ConfigError("--axis: each key once (give all its values in one --axis KEY=V1,V2)")
    study: dict[str, Any] = {
        "name": adhoc_name(recipe, axes),
        "description": "ad-hoc study: " + " ".join(f"--axis {item}" for item in axis_items),
        "recipe": str(recipe.resolve()),
        "axes": axes,
        "seeds": parse_seeds(seeds) if seeds else [0],
    }
    path = results / study["name"] / "study.yaml"
    if seeds is None and path.is_file():  # a later `ablate table/report/status --axis ...` finds the study as run
        study = load_yaml(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        portable = {**study, "recipe": _relative(recipe.resolve(), save.resolve().parent)}
        save.write_text(yaml.safe_dump(portable, sort_keys=False))
    return path


def _relative(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)
