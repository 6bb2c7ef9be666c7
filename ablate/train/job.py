"""The one job: train and evaluate one resolved recipe into one run folder."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ablate.config import ModelConfig, Recipe
from ablate.data.datamodule import build_datasets, train_loader, val_loader
from ablate.models.backbone import BuildError
from ablate.models.segmenter import build_model
from ablate.train.module import SegmentationModule


class ProgressCallback(L.Callback):
    """Forwards step and loss to the study's progress printer every ``every`` steps and at the last step."""

    def __init__(self, progress: Any, steps: int, every: int):
        self.progress, self.steps, self.every = progress, steps, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.progress is not None and (step % self.every == 0 or step == self.steps):
            loss = outputs["loss"].item() if isinstance(outputs, dict) else float(outputs)
            self.progress.step(step, self.steps, loss)


def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")


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


def run_job(config: dict[str, Any], run_dir: Path, progress: Any = None) -> dict[str, Any]:
    """Train ``config`` (a resolved recipe) and evaluate it on the validation split. Returns the metrics record."""
    quiet()
    recipe = Recipe.model_validate(config)
    run_dir = Path(run_dir)
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    data = build_datasets(recipe.data)
    module = SegmentationModule(recipe, num_classes=len(data.classes), ignore_index=data.ignore_index)
    t = recipe.train
    trainer = L.Trainer(
        max_steps=t.steps,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=run_dir,
        callbacks=[ProgressCallback(progress, t.steps, t.log_every)],
    )
    trainer.fit(module, train_dataloaders=train_loader(data, t.batch_size, recipe.seed, recipe.data.num_workers))
    trainer.limit_val_batches = 1.0
    trainer.validate(module, val_loader(data, recipe.eval.batch_size, recipe.data.num_workers), verbose=False)
    torch.save(module.model.state_dict(), run_dir / "model.pt")
    m = module.last_metrics
    assert m is not None
    return {
        "metrics": {k: m[k] for k in ("pixel_acc", "mean_acc", "miou", "fwiou")},
        "per_class_iou": dict(zip(data.classes, m["per_class_iou"], strict=True)),
        "per_class_acc": dict(zip(data.classes, m["per_class_acc"], strict=True)),
        "params": count_params(module.model),
        "steps": trainer.global_step,
    }
