"""The one job: train and evaluate one resolved recipe into one run folder."""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ablate.config import ModelConfig, Recipe
from ablate.data.datamodule import DataSets, build_datasets, train_loader
from ablate.models.backbone import BuildError
from ablate.models.segmenter import build_model
from ablate.study.store import atomic_write, fault_point
from ablate.train.evaluate import evaluate
from ablate.train.module import SegmentationModule

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "last.ckpt"


class ProgressCallback(L.Callback):
    """Forwards step and loss to the study's progress printer every ``every`` steps and at the last step."""

    def __init__(self, progress: Any, steps: int, every: int):
        self.progress, self.steps, self.every = progress, steps, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.progress is not None and trainer.is_global_zero and (step % self.every == 0 or step == self.steps):
            loss = outputs["loss"].item() if isinstance(outputs, dict) else float(outputs)
            self.progress.step(step, self.steps, loss)


class AtomicCheckpoint(L.Callback):
    """Every ``every`` steps, save a full checkpoint (weights, optimizer, schedule, step, RNG) to ``path`` by
    writing a temporary file and renaming it: a kill at any moment leaves the previous checkpoint or the new one."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every == 0 and step < trainer.max_steps:
            pl_module.check_finite()  # never checkpoint a diverged run
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                fault_point(self.path.name)
                os.replace(tmp, self.path)


def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")
    warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")


def check_model(cfg: ModelConfig, num_classes: int = 2) -> None:
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


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def eval_device(recipe: Recipe) -> torch.device:
    gpu = recipe.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    fault_point(path.name)
    os.replace(tmp, path)


def train(recipe: Recipe, data: DataSets, train_dir: Path, progress: Any = None) -> dict[str, Any] | None:
    """Train ``recipe`` and save the model's state dict to ``train_dir/model.pt`` (atomically).

    Resumes from ``train_dir/last.ckpt`` when an earlier attempt left one; the result is the same as training
    without interruption (batches are a function of seed and step, RNG state is checkpointed)."""
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    checkpoint = train_dir / CHECKPOINT_FILE
    start, resume_from = 0, None
    if checkpoint.is_file():
        start = int(torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"])
        resume_from = checkpoint
        if progress is not None:
            progress.note(f"resuming from step {start} ({checkpoint})")
    module = SegmentationModule(recipe, num_classes=len(data.classes), ignore_index=data.ignore_index)
    t = recipe.train
    trainer = L.Trainer(
        max_steps=t.steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        sync_batchnorm=t.sync_batchnorm and t.devices * t.num_nodes > 1,
        precision=t.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the step sampler shards batches across processes itself
        default_root_dir=train_dir,
        callbacks=[ProgressCallback(progress, t.steps, t.log_every), AtomicCheckpoint(checkpoint, t.checkpoint_every)],
    )
    started = time.monotonic()
    loader = train_loader(data, t.batch_size, recipe.seed, t.steps, start, recipe.data.num_workers)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_from)
    if not trainer.is_global_zero:  # other DDP ranks: rank 0 saves and evaluates
        return None
    save_atomic(module.model.state_dict(), train_dir / MODEL_FILE)
    record = {"steps": trainer.global_step, "train_time_s": round(time.monotonic() - started, 2), "resumed_from": start}
    atomic_write(train_dir / "train.json", json.dumps(record))
    return record


def run_job(config: dict[str, Any], run_dir: Path, train_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Train ``config`` (a resolved recipe) into ``train_dir`` unless a finished model is there, then evaluate it
    with ``config["eval"]`` on the validation split. Returns the metrics record."""
    quiet()
    recipe = Recipe.model_validate(config)
    train_dir = Path(train_dir)
    data = build_datasets(recipe.data)
    trained = not (train_dir / "train.json").is_file() or not (train_dir / MODEL_FILE).is_file()
    if trained and train(recipe, data, train_dir, progress) is None:
        return {"status": "worker"}
    training = json.loads((train_dir / "train.json").read_text())
    model = build_model(recipe.model, len(data.classes))
    model.load_state_dict(torch.load(train_dir / MODEL_FILE, map_location="cpu", weights_only=True))
    if recipe.train.channels_last:
        model.to(memory_format=torch.channels_last)
    started = time.monotonic()
    m = evaluate(model, data.val, recipe.eval, len(data.classes), data.ignore_index, eval_device(recipe))
    eval_time = round(time.monotonic() - started, 2)
    return {
        "metrics": {k: m[k] for k in ("pixel_acc", "mean_acc", "miou", "fwiou")},
        "per_class_iou": dict(zip(data.classes, m["per_class_iou"], strict=True)),
        "per_class_acc": dict(zip(data.classes, m["per_class_acc"], strict=True)),
        "params": count_params(model),
        "trained": trained,
        **training,
        "eval_time_s": eval_time,
    }
