"""Evaluation of a trained model on a data set: inference, then metrics from one confusion matrix."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ablate.config import EvalConfig
from ablate.train.metrics import confusion_metric, metrics_from_confusion


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, cfg: EvalConfig) -> torch.Tensor:
    """Class probabilities (N x K x H x W) for a batch of normalised images: whole-image inference."""
    return model(images).softmax(1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    cfg: EvalConfig,
    num_classes: int,
    ignore_index: int = 255,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    model.eval().to(device)
    confusion = confusion_metric(num_classes, ignore_index, sync=False).to(device)  # this process's images only
    for images, labels in DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False):
        probs = predict(model, images.to(device), cfg)
        confusion.update(probs.argmax(1), labels.to(device))
    return metrics_from_confusion(confusion.compute().cpu())
