"""The LightningModule: cross-entropy (ignore_index 255), SGD with the poly learning-rate schedule, metrics."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from ablate.config import Recipe, TrainConfig
from ablate.models.segmenter import build_model
from ablate.train.metrics import confusion_metric, metrics_from_confusion


def make_optimizer(params, t: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum and weight decay, fused into one kernel per step on CPU and CUDA: the same update as
    ``torch.optim.SGD``'s default loop, without a kernel launch per parameter and operation. (The fused kernel
    needs each gradient in its parameter's memory layout; autograd's gradient layout contract gives that.)"""
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, fused=fused or None)


def poly_lambda(max_steps: int, power: float):
    """DeepLab's poly schedule: lr = base_lr * (1 - step / max_steps) ** power."""
    return lambda step: max(0.0, 1.0 - step / max_steps) ** power


class SegmentationModule(L.LightningModule):
    def __init__(self, recipe: Recipe, num_classes: int, ignore_index: int = 255):
        super().__init__()
        self.recipe = recipe
        self.ignore_index = ignore_index
        self.model = build_model(recipe.model, num_classes)
        self.channels_last = recipe.train.channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if recipe.train.compile:
            self.model.compile()  # in place: the state dict keeps its keys
        # The training losses since the last ``check_finite``, on the device, from step ``_first_step`` on
        self._losses: torch.Tensor | None = None
        self._first_step, self._pending = 0, 0
        self.val_confusion = confusion_metric(num_classes, ignore_index)
        self.last_metrics: dict | None = None
        self._rng_to_restore: dict | None = None
        if recipe.train.freeze_bn:  # frozen BN of the backbone: statistics in eval mode, affine parameters fixed
            for m in self._backbone_bn():
                for p in m.parameters():
                    p.requires_grad_(False)

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets ``_current_fx_name`` before and after every hook it calls (~50 times a training step);
        # nn.Module's __setattr__ checks for parameters, modules and buffers each time (~1/5 of Lightning's cost
        # per step): this plain attribute skips those checks.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _backbone_bn(self) -> list[torch.nn.Module]:
        return [m for m in self.model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.recipe.train.freeze_bn:
            for m in self._backbone_bn():
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        out = self(images)
        if isinstance(out, tuple):  # PSPNet's auxiliary loss, weighted by model.aux_loss
            logits, aux = out
            loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index)
            loss = loss + self.recipe.model.aux_loss * F.cross_entropy(aux, labels, ignore_index=self.ignore_index)
        else:
            loss = F.cross_entropy(out, labels, ignore_index=self.ignore_index)
        self._track_finite(loss.detach())
        if self._trainer is not None and self._trainer.loggers:  # Lightning's self.log costs ~0.3 ms/step: W&B only
            self.log("train/loss", loss)  # not on the progress bar: that would copy it to the host every step
        return loss

    def _track_finite(self, loss: torch.Tensor) -> None:
        """Keep the loss on the device (one copy into a buffer, no host sync); ``check_finite`` reads the buffer."""
        if self._losses is None or self._losses.device != loss.device:
            self._losses = torch.zeros(max(64, self.recipe.train.log_every), device=loss.device)
            self._first_step, self._pending = self.global_step, 0
        if self._pending == len(self._losses):
            self.check_finite()
        self._losses[self._pending].copy_(loss)
        self._pending += 1

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` naming the first step whose training loss was NaN or infinite (one host
        sync for the losses since the last check)."""
        if self._losses is not None and self._pending:
            values = self._losses[: self._pending].tolist()
            for i, value in enumerate(values):
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at step {self._first_step + i}")
            self._first_step, self._pending = self._first_step + self._pending, 0

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # checked every log_every steps (when the progress printer reads the loss anyway) and at the end
        if self.global_step % self.recipe.train.log_every == 0:
            self.check_finite()

    def on_train_end(self) -> None:
        self.check_finite()

    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.val_confusion.update(self(images).argmax(1), labels)

    def on_validation_epoch_end(self) -> None:
        self.last_metrics = metrics_from_confusion(self.val_confusion.compute())
        for key in ("pixel_acc", "mean_acc", "miou", "fwiou"):
            self.log(f"val/{key}", self.last_metrics[key], sync_dist=False)

    # Random state travels with the checkpoint, so a resumed run draws the same dropout masks as an uninterrupted one.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["ablate_rng"] = rng

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._rng_to_restore = checkpoint.get("ablate_rng")

    def on_train_start(self) -> None:
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore["torch"])
            if "cuda" in self._rng_to_restore and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._rng_to_restore["cuda"])
            self._rng_to_restore = None

    def configure_optimizers(self):
        t = self.recipe.train
        optimizer = make_optimizer(self.parameters(), t)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(t.steps, t.poly_power))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
