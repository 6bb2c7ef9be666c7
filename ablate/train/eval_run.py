"""``ablate eval RUN_DIR --set eval.crf=true``: evaluate one finished run again, with other evaluation settings.

Only ``eval.*`` keys may change (the model is trained already). The result goes to
``RUN_DIR/evals/<eval id>.json`` (eval id: a hash of the resolved ``eval`` block), so the run's own
``metrics.json`` — what the study's table reads — is never touched, and evaluating the same settings again
overwrites the same file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ablate.config.overrides import apply_overrides, check_override
from ablate.config.schema import Recipe
from ablate.core import plugins
from ablate.core.errors import ConfigError
from ablate.core.files import atomic_write
from ablate.core.hashing import stable_hash, train_id

EVALS_DIR = "evals"


def _training_dir(run_dir: Path, config: dict[str, Any], record: dict[str, Any] | None) -> Path:
    """Where the run's model is: the study's ``trainings/<train id>/`` (or, for older runs, the run folder)."""
    tid = (record or {}).get("train_id") or train_id(config)
    for candidate in (run_dir.parent.parent / "trainings" / tid, run_dir):
        if (candidate / "model.pt").is_file():
            return candidate
    raise ConfigError(f"{run_dir}: no trained model (looked for trainings/{tid}/model.pt); run the study first")


def load_run(run_dir: Path, overrides: dict[str, Any]) -> tuple[Recipe, Path, dict[str, Any] | None]:
    """The run's recipe with ``overrides`` (eval keys only) applied, its training folder and its metrics record.
    Raises ``ConfigError`` (one line) for anything wrong."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a folder; expected a run folder such as results/<study>/runs/<run id>")
    if not config_path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml); expected results/<study>/runs/<run id>")
    try:
        saved = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{config_path}: not valid YAML") from None
    config = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path}: no 'config:' mapping (the run's resolved recipe)")
    plugins.load_entry_points()
    plugins.load_specs(saved.get("plugins") or [], str(config_path))  # the run's plugins, before its recipe
    for key in overrides:
        if key != "eval" and not key.startswith("eval."):
            raise ConfigError(
                f"--set {key}: only eval.* keys can change for a finished run (its model is trained); "
                "add the value as a study axis to train with it"
            )
    base = apply_overrides(config, {})
    for key, value in overrides.items():
        check_override(base, key, value, f"--set {key}")
    recipe = Recipe.model_validate(apply_overrides(base, overrides))
    record = None
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        try:
            record = json.loads(metrics_path.read_text())
        except json.JSONDecodeError:
            record = None
    return recipe, _training_dir(run_dir, config, record), record


def eval_run(run_dir: Path, overrides: dict[str, Any]) -> tuple[dict[str, Any], Path, dict[str, Any] | None]:
    """Evaluate the run in ``run_dir`` with ``overrides``; returns (record, where it was written, the run's own
    metrics record or None)."""
    recipe, train_dir, original = load_run(run_dir, overrides)
    from ablate.data.loader import build_datasets
    from ablate.train.job import quiet
    from ablate.train.record import evaluate_trained

    quiet()
    eval_config = recipe.eval.model_dump(mode="json")
    eval_id = stable_hash(eval_config)
    result = evaluate_trained(recipe, build_datasets(recipe.data), train_dir)
    record = {
        "status": "done",
        "eval_id": eval_id,
        "run_id": Path(run_dir).name,
        "overrides": overrides,
        "eval_config": eval_config,
        "train_dir": str(train_dir),
        **result,
    }
    path = Path(run_dir) / EVALS_DIR / f"{eval_id}.json"
    atomic_write(path, json.dumps(record, indent=2, sort_keys=True))
    return record, path, original
