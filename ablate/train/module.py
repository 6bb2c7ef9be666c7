"""The LightningModule: cross-entropy (ignore_index 255), SGD with the poly learning-rate schedule, metrics."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from ablate.config import Recipe
from ablate.models.segmenter import build_model
from ablate.train.metrics import confusion_metric, metrics_from_confusion


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
        # On the device: [first non-finite step or -1, its loss, steps seen]; read only by ``check_finite``
        self._finite: torch.Tensor | None = None
        self.val_confusion = confusion_metric(num_classes, ignore_index)
        self.last_metrics: dict | None = None
        self._rng_to_restore: dict | None = None
        if recipe.train.freeze_bn:  # frozen BN of the backbone: statistics in eval mode, affine parameters fixed
            for m in self._backbone_bn():
                for p in m.parameters():
                    p.requires_grad_(False)

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
        self.log("train/loss", loss)  # not on the progress bar: that would copy it to the host every step
        return loss

    def _track_finite(self, loss: torch.Tensor) -> None:
        """Remember the first non-finite loss on the device, without a host sync; ``check_finite`` raises."""
        f = self._finite
        if f is None or f.device != loss.device:
            f = torch.tensor([-1.0, 0.0, float(self.global_step)], device=loss.device)
        bad = ~torch.isfinite(loss) & (f[0] < 0)
        self._finite = torch.stack([torch.where(bad, f[2], f[0]), torch.where(bad, loss.float(), f[1]), f[2] + 1])

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` if a training loss so far was NaN or infinite (one host sync)."""
        if self._finite is not None:
            step, value, _ = self._finite.tolist()
            if step >= 0:
                raise FloatingPointError(f"loss is {value} at step {int(step)}")

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
        optimizer = torch.optim.SGD(self.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(t.steps, t.poly_power))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
