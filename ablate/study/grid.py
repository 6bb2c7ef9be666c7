"""Expand a study into runs: the product of its axes times its seeds, each with a stable id."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from ablate.config import LoadedStudy, Recipe, apply_overrides, get_dotted, scale_value


def stable_hash(obj: Any, length: int = 10) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def format_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


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
        return stable_hash({k: v for k, v in self.config.items() if k != "eval"})

    @property
    def config_key(self) -> str:
        """Identifies the configuration without its seed: runs sharing it are averaged in tables."""
        return stable_hash({k: v for k, v in self.axes.items()})


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


def effective(loaded: LoadedStudy, axes: dict[str, Any]) -> dict[str, Any]:
    """The recipe overrides a combination stands for, after the study's coupling rules."""
    out = dict(axes)
    for rule in loaded.study.rules:
        with_value = out[rule.with_] if rule.with_ in out else get_dotted(loaded.recipe, rule.with_)
        out[rule.scale] = scale_value(out[rule.scale], rule.reference / with_value)
    return out


def expand(loaded: LoadedStudy) -> list[Run]:
    runs = []
    for axes in combinations(loaded):
        overrides = effective(loaded, axes)
        for seed in loaded.study.seeds:
            raw = apply_overrides(loaded.recipe, {**overrides, "seed": seed})
            config = Recipe.model_validate(raw).model_dump(mode="json")  # defaults filled: ids don't depend on style
            runs.append(Run(id=stable_hash(config), seed=seed, axes=axes, config=config, overrides=overrides))
    return runs
