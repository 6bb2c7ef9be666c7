"""Expand a study into runs: the product of its axes times its seeds, each with a stable id."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ablate.config.errors import format_error
from ablate.config.overrides import apply_overrides, get_dotted
from ablate.config.schema import Recipe
from ablate.core.errors import ConfigError
from ablate.core.hashing import run_id, stable_hash, train_id
from ablate.core.text import format_value
from ablate.study.load import LoadedStudy, rule_axis, scale_in


@dataclass(frozen=True)
class Run:
    """One job: a resolved recipe (plain dict) and the axis values that produced it."""

    id: str
    seed: int
    axes: dict[str, Any]  # the axis values as written in the study (table rows and columns use these)
    config: dict[str, Any] = field(repr=False)
    overrides: dict[str, Any] = field(default_factory=dict, repr=False)  # after coupling rules

    @property
    def coupled(self) -> dict[str, Any]:
        """Axis values that a coupling rule changed: {key: value used}."""
        return {k: v for k, v in self.overrides.items() if self.axes.get(k) != v}

    @property
    def label(self) -> str:
        def show(k: str, v: Any) -> str:
            used = self.coupled.get(k)
            return format_value(v) + (f"->{format_value(used)}" if used is not None else "")

        parts = [f"{k.split('.')[-1]}={show(k, v)}" for k, v in self.axes.items()]
        return " ".join(parts + [f"seed={self.seed}"])

    @property
    def train_id(self) -> str:
        """Identifies the training: everything but ``eval.``. Runs sharing it share one trained model."""
        return train_id(self.config)

    @property
    def config_key(self) -> str:
        """Identifies the configuration without its seed: runs sharing it are averaged in tables."""
        return combo_key(self.axes)


def combinations(loaded: LoadedStudy) -> list[dict[str, Any]]:
    """Axis-value combinations: the product over axes (zipped axes move together), minus ``exclude``,
    plus ``include`` (axes an include entry leaves out take the baseline's value, else the axis's first value)."""
    study = loaded.study
    zipped = {key: group for group in study.zip for key in group}
    factors: list[list[dict[str, Any]]] = []
    for key, values in study.axes.items():
        group = zipped.get(key)
        if group is None:
            factors.append([{key: v} for v in values])
        elif group[0] == key:
            factors.append(
                [dict(zip(group, vals, strict=True)) for vals in zip(*(study.axes[k] for k in group), strict=True)]
            )
    combos = []
    for parts in itertools.product(*factors):
        merged = {k: v for part in parts for k, v in part.items()}
        combos.append({k: merged[k] for k in study.axes})

    def matches(combo: dict[str, Any], entry: dict[str, Any]) -> bool:
        return all(combo[k] == v for k, v in entry.items())

    combos = [c for c in combos if not any(matches(c, e) for e in study.exclude)]
    for entry in study.include:
        combo = {k: entry.get(k, study.baseline.get(k, values[0])) for k, values in study.axes.items()}
        if combo not in combos:
            combos.append(combo)
    return combos


def map_side(recipe: dict[str, Any]) -> int:
    """The side of a run's last feature map: ceil(crop / output stride)."""
    resolved = Recipe.model_validate(recipe)
    return math.ceil(resolved.data.crop / resolved.model.output_stride)


def rule_factor(loaded: LoadedStudy, rule: Any, values: dict[str, Any]) -> float:
    """What ``rule`` multiplies its axis by in the run that has these axis ``values``."""
    if rule.feature_map is not None:
        return map_side(apply_overrides(loaded.recipe, values)) / rule.feature_map
    with_value = values[rule.with_] if rule.with_ in values else get_dotted(loaded.recipe, rule.with_)
    return rule.reference / with_value


def effective(loaded: LoadedStudy, axes: dict[str, Any]) -> dict[str, Any]:
    """The recipe overrides a combination stands for, after the study's coupling rules."""
    out = dict(axes)
    for rule in loaded.study.rules:
        axis, inner = rule_axis(loaded.study, rule.scale)
        out[axis] = scale_in(out[axis], inner, rule_factor(loaded, rule, axes))
    return out


def _check_combinations(loaded: LoadedStudy, combos: list[dict[str, Any]]) -> None:
    study = loaded.study
    if not combos:
        raise ConfigError(f"{loaded.path}: exclude: every combination of the axes is excluded; no run is left")
    if study.baseline and not any(all(c[k] == v for k, v in study.baseline.items()) for c in combos):
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in study.baseline.items())
        raise ConfigError(
            f"{loaded.path}: baseline: no configuration of the grid has {shown} (zipped axes move together, and "
            "exclude may have removed it); name a combination the grid runs"
        )


def make_run(loaded: LoadedStudy, axes: dict[str, Any], seed: int, overrides: dict[str, Any] | None = None) -> Run:
    """The run of one combination of axis values and one seed (``overrides``: ``effective(loaded, axes)``, given
    when known)."""
    overrides = effective(loaded, axes) if overrides is None else overrides
    raw = apply_overrides(loaded.recipe, {**overrides, "seed": seed})
    try:  # defaults filled: ids don't depend on style
        config = Recipe.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:  # each value is valid alone (checked on load), this combination is not
        key, msg = format_error(exc.errors()[0], Recipe)
        combo = " ".join(f"{k}={format_value(v)}" for k, v in axes.items())
        raise ConfigError(f"{loaded.path}: axes: the combination {combo}: {msg} (recipe key {key})") from None
    return Run(id=run_id(config), seed=seed, axes=axes, config=config, overrides=overrides)


def expand(loaded: LoadedStudy, extra: Mapping[str, Sequence[int]] | None = None) -> list[Run]:
    """Every run of the study: its combinations of axis values times its seeds (raises ``ConfigError`` when the
    grid is empty or has no baseline row). ``extra``: seeds added to some combinations (adaptive seeds), by the
    combination's ``config_key``; they come after its initial seeds."""
    runs = []
    combos = combinations(loaded)
    _check_combinations(loaded, combos)
    for axes in combos:
        overrides = effective(loaded, axes)
        added = [s for s in (extra or {}).get(combo_key(axes), ()) if s not in loaded.study.initial_seeds]
        for seed in [*loaded.study.initial_seeds, *added]:
            runs.append(make_run(loaded, axes, seed, overrides))
    seen: dict[str, Run] = {}
    for run in runs:
        if run.id in seen:
            raise ConfigError(
                f"{loaded.path}: axes: '{seen[run.id].label}' and '{run.label}' are the same run (their resolved "
                "recipes are equal); remove one of the values"
            )
        seen[run.id] = run
    return runs


def combo_key(axes: dict[str, Any]) -> str:
    """Identifies a combination of axis values (``Run.config_key``)."""
    return stable_hash(dict(axes.items()))
