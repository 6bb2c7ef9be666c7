"""The one job: train (unless a finished model is there) and evaluate one resolved recipe. The study's worker calls
it by its import path, ``ablate.train.job:run_job``; it reports through files and its returned record only."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ablate.config.schema import Recipe
from ablate.core import warn
from ablate.core.jobs import THREADS_ENV
from ablate.data.loader import build_datasets
from ablate.models.backbone import BuildError
from ablate.models.segmenter import build_model
from ablate.train.loop import MODEL_FILE, TRAIN_RECORD, train
from ablate.train.record import PREDICTIONS_FILE, comparability, evaluate_trained


def quiet() -> None:
    """Library chatter that says nothing about the run stays off the terminal: Lightning's and torch.distributed's
    log banners (their warnings go through ``ablate.core.warn``)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warn.install()


_process_threads: int | None = None  # torch's thread count before the first job of this process


def set_threads() -> int:
    """The CPU threads of this job: ``$ABLATE_THREADS`` when the executor set it, else the process's default (a job
    that resumed with another count must not leave it to the next job of the same worker)."""
    global _process_threads
    if _process_threads is None:
        _process_threads = torch.get_num_threads()
    threads = os.environ.get(THREADS_ENV)
    torch.set_num_threads(int(threads) if threads else _process_threads)
    return torch.get_num_threads()


def check_model(cfg: Any, num_classes: int = 2) -> None:
    """Build the model on the meta device (no memory, no compute) to refuse bad configs before any training.

    Raises ``BuildError`` naming the recipe key to fix.
    """
    try:
        with torch.device("meta"):
            build_model(cfg, num_classes)
    except BuildError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is reported against the head
        raise BuildError("model.head", f"cannot build the model: {type(exc).__name__}: {exc}") from None


def run_job(config: dict[str, Any], run_dir: Path, train_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Train ``config`` (a resolved recipe) into ``train_dir`` unless a finished model is there, then evaluate it
    with ``config["eval"]`` on the validation split and measure its cost. Returns the metrics record (``trained``
    says whether this job trained); ``{"status": "worker"}`` on DDP ranks other than 0."""
    quiet()
    threads = set_threads()
    recipe = Recipe.model_validate(config)
    train_dir = Path(train_dir)
    data = build_datasets(recipe.data)
    trained = not (train_dir / TRAIN_RECORD).is_file() or not (train_dir / MODEL_FILE).is_file()
    if trained and train(recipe, data, train_dir, progress) is None:
        return {"status": "worker"}
    training = json.loads((train_dir / TRAIN_RECORD).read_text())
    evaluated = evaluate_trained(recipe, data, train_dir, Path(run_dir) / PREDICTIONS_FILE)
    record = {**evaluated, "trained": trained, **training}
    return {**record, "comparable": comparability(recipe, training.get("threads", threads))}
