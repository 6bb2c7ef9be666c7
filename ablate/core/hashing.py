"""Stable ids: a run's id is a hash of its resolved recipe, a training's id the same hash without ``eval``."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, length: int = 10) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def run_id(config: dict[str, Any]) -> str:
    """The id of a run: its resolved recipe (defaults filled in), so writing a default out changes nothing."""
    return stable_hash(config)


def train_id(config: dict[str, Any]) -> str:
    """The id of the training a run needs: everything but ``eval`` (runs that differ only there share a model)."""
    return stable_hash({k: v for k, v in config.items() if k != "eval"})
