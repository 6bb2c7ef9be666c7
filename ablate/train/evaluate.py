"""Evaluation of a trained model on a data set: inference (``ablate.train.inference``), the optional dense CRF
(``ablate.train.crf``, over a process pool), then metrics from one confusion matrix."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ablate.config import EvalConfig
from ablate.data.synthetic import denormalize
from ablate.train.crf import CRFPool
from ablate.train.inference import predict
from ablate.train.metrics import confusion_metric, metrics_from_confusion

__all__ = ["evaluate", "predict", "rgb_of"]


def rgb_of(dataset: Dataset, index: int, image: torch.Tensor) -> np.ndarray:
    """The uint8 H x W x 3 RGB of sample ``index``: the data set's own ``rgb(index)`` when it has one, else the
    normalised ``image`` de-normalised with the synthetic data's mean and std."""
    if hasattr(dataset, "rgb"):
        return dataset.rgb(index)
    rgb = denormalize(image.detach().cpu()).mul(255).round().to(torch.uint8)
    return np.ascontiguousarray(rgb.permute(1, 2, 0).numpy())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    cfg: EvalConfig,
    num_classes: int,
    ignore_index: int = 255,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` with the inference strategy and CRF of ``cfg``.

    With the CRF on, each batch's probabilities go to the CRF pool while the network predicts the next batch;
    labels come back in order. Also returns ``eval_time_s`` and, with the CRF, ``crf_workers``.
    """
    started = time.perf_counter()
    model.eval().to(device)
    confusion = confusion_metric(num_classes, ignore_index, sync=False).to(device)  # this process's images only
    pool = CRFPool(cfg.crf, shared=True) if cfg.crf.enabled else None
    if pool is not None:
        pool.start()  # before the first batch: the workers are ready when its probabilities are
    pending: tuple[Any, torch.Tensor] | None = None

    def finish(job: tuple[Any, torch.Tensor]) -> None:
        result, labels = job
        preds = torch.from_numpy(np.stack(list(result))).long().to(device)
        confusion.update(preds, labels)

    index = 0
    try:
        for images, labels in DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False):
            labels = labels.to(device)
            probs = predict(model, images.to(device), cfg)
            if pool is None:
                confusion.update(probs.argmax(1), labels)
            else:
                rgbs = [rgb_of(dataset, index + i, images[i]) for i in range(len(images))]
                job = (pool.submit(list(zip(probs.float().cpu().numpy(), rgbs, strict=True))), labels)
                if pending is not None:
                    finish(pending)
                pending = job
            index += len(images)
        if pending is not None:
            finish(pending)
    finally:
        if pool is not None:
            pool.close()
    metrics = metrics_from_confusion(confusion.compute().cpu())
    metrics["eval_time_s"] = round(time.perf_counter() - started, 3)
    if pool is not None:
        metrics["crf_workers"] = pool.workers
    return metrics
