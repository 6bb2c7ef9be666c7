"""Expand a study into runs: the product of its axes times its seeds, each with a stable id."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from ablate.config import LoadedStudy, Recipe, apply_overrides


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
    axes: dict[str, Any]
    config: dict[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        parts = [f"{k.split('.')[-1]}={format_value(v)}" for k, v in self.axes.items()]
        return " ".join(parts + [f"seed={self.seed}"])

    @property
    def train_id(self) -> str:
        """Identifies the training: everything but ``eval.``. Runs sharing it share one trained model."""
        return stable_hash({k: v for k, v in self.config.items() if k != "eval"})

    @property
    def config_key(self) -> str:
        """Identifies the configuration without its seed: runs sharing it are averaged in tables."""
        return stable_hash({k: v for k, v in self.axes.items()})


def expand(loaded: LoadedStudy) -> list[Run]:
    study = loaded.study
    keys = list(study.axes)
    runs = []
    for combo in itertools.product(*(study.axes[k] for k in keys)):
        axes = dict(zip(keys, combo, strict=True))
        for seed in study.seeds:
            raw = apply_overrides(loaded.recipe, {**axes, "seed": seed})
            config = Recipe.model_validate(raw).model_dump(mode="json")  # defaults filled: ids don't depend on style
            runs.append(Run(id=stable_hash(config), seed=seed, axes=axes, config=config))
    return runs
