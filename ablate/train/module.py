"""The LightningModule: cross-entropy (ignore_index 255), SGD with the poly learning-rate schedule, metrics.

``ablate.train.job`` trains it with its own loop on Lightning Fabric; ``training_step`` and ``configure_optimizers``
also let a Lightning ``Trainer`` train it."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from ablate.config.schema import Recipe, TrainConfig
from ablate.models.segmenter import build_model
from ablate.train.metrics import confusion_metric, metrics_from_confusion
from ablate.train.optim import FusedSGD


def make_optimizer(params, t: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum and weight decay, fused into one kernel per step on CPU and CUDA (``FusedSGD``: without
    the kernel's copies of channels_last weights): the same update as ``torch.optim.SGD``'s default loop, without a
    kernel launch per parameter and operation. (The fused kernel needs each gradient in its parameter's memory
    layout; autograd's gradient layout contract gives that.)"""
    params = list(params)
    kw = dict(lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    if all(p.device.type in ("cpu", "cuda") for p in tensors):
        return FusedSGD(params, **kw)
    return torch.optim.SGD(params, **kw)


def poly_lambda(max_steps: int, power: float, warmup: int = 0):
    """DeepLab's poly schedule, lr = base_lr * (1 - step / max_steps) ** power, after a linear warm-up over the
    first ``warmup`` steps (factor (step + 1) / warmup; 0: none)."""
    return lambda step: min(1.0, (step + 1) / warmup if warmup else 1.0) * max(0.0, 1.0 - step / max_steps) ** power


class SegmentationModule(L.LightningModule):
    def __init__(self, recipe: Recipe, num_classes: int, ignore_index: int = 255,
                 class_weights: list[float] | None = None):  # fmt: skip
        super().__init__()
        self.recipe = recipe
        self.ignore_index = ignore_index
        # the loss's class weights (``train.class_weights``); a buffer, so it moves to the device with the module
        self.class_weight: torch.Tensor | None
        self.register_buffer(
            "class_weight", None if class_weights is None else torch.tensor(class_weights), persistent=False
        )
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

    def loss(self, out: torch.Tensor | tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the model's output; with PSPNet's auxiliary head, plus ``model.aux_loss`` x its own."""
        weight, ignore = self.class_weight, self.ignore_index
        if isinstance(out, tuple):
            logits, aux = out
            loss = F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore)
            return loss + self.recipe.model.aux_loss * F.cross_entropy(aux, labels, weight=weight, ignore_index=ignore)
        return F.cross_entropy(out, labels, weight=weight, ignore_index=ignore)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return self.loss(self(images), labels)

    def track_loss(self, loss: torch.Tensor, step: int) -> None:
        """Keep the training loss of ``step`` (0-based) on the device: one copy into a buffer, no host sync;
        ``check_finite`` reads the buffer."""
        if self._losses is None or self._losses.device != loss.device:
            self._losses = torch.zeros(max(64, self.recipe.train.log_every), device=loss.device)
            self._pending = 0
        if self._pending == len(self._losses):
            self.check_finite()
        if self._pending == 0:
            self._first_step = step
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
            self._pending = 0

    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.val_confusion.update(self(images).argmax(1), labels)

    def on_validation_epoch_end(self) -> None:
        self.last_metrics = metrics_from_confusion(self.val_confusion.compute())
        for key in ("pixel_acc", "mean_acc", "miou", "fwiou"):
            self.log(f"val/{key}", self.last_metrics[key], sync_dist=False)

    def parameter_groups(self) -> list:
        """The parameters, as one group; with ``train.head_lr_mult``, the backbone's at ``lr`` and the rest (head,
        decoder, classifier: new layers on a pretrained backbone) at ``lr`` x the multiplier."""
        t = self.recipe.train
        if t.head_lr_mult == 1.0:
            return list(self.parameters())
        backbone = {id(p) for p in self.model.backbone.parameters()}
        rest = [p for p in self.parameters() if id(p) not in backbone]
        return [{"params": list(self.model.backbone.parameters())}, {"params": rest, "lr": t.lr * t.head_lr_mult}]

    def configure_optimizers(self):
        t = self.recipe.train
        optimizer = make_optimizer(self.parameter_groups(), t)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lambda(t.steps, t.poly_power, t.warmup_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
