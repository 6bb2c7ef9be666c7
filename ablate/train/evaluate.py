"""Evaluation of a trained model on a data set: inference (``ablate.train.inference``), the optional dense CRF
(``ablate.train.crf``, over a process pool), then metrics from one confusion matrix. It also keeps the predictions
of a few fixed images (spread over the set, each with many classes) for the report's qualitative grid."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ablate.config.schema import EvalConfig
from ablate.train.boundary_f1 import BoundaryF1
from ablate.train.crf import CRFPool
from ablate.train.inference import predict
from ablate.train.metrics import Reach, Trimap, confusion_metric, metrics_from_confusion

__all__ = ["Showcase", "evaluate", "predict"]


class Showcase:
    """``count`` fixed images of the evaluated set for the report's grid, kept while evaluation streams over it:
    the set's index range cut into ``count`` equal parts, from each the image with the most classes (ties: the
    lower index). Spread over the set, so consecutive video frames (CamVid) do not fill the grid."""

    def __init__(self, count: int, ignore_index: int):
        self.count, self.ignore_index = count, ignore_index
        self.total = 0  # the set's size (``evaluate`` sets it): what the parts are cut from
        self.kept: dict[int, tuple[tuple[int, int], np.ndarray, np.ndarray]] = {}  # part -> ((-classes, index), ..)

    def offer(self, index: int, label: np.ndarray, pred: np.ndarray) -> None:
        counts = np.bincount(label.ravel().astype(np.int64), minlength=self.ignore_index + 1)
        counts[self.ignore_index] = 0
        key = (-int(np.count_nonzero(counts)), index)
        part = index * self.count // self.total if self.total else min(index, self.count - 1)
        if part not in self.kept or key < self.kept[part][0]:
            self.kept[part] = (key, label, pred)

    def arrays(self, dataset: Dataset) -> dict[str, np.ndarray]:
        """indices, rgb (uint8, the data set's own colours), labels and predictions, in index order."""
        kept = sorted(self.kept.values(), key=lambda k: k[0][1])
        indices = [k[0][1] for k in kept]
        return {
            "indices": np.array(indices, dtype=np.int64),
            "rgb": np.stack([dataset.rgb(i) for i in indices]),
            "labels": np.stack([k[1] for k in kept]).astype(np.uint8),
            "predictions": np.stack([k[2] for k in kept]).astype(np.uint8),
        }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    cfg: EvalConfig,
    num_classes: int,
    ignore_index: int = 255,
    device: torch.device | str = "cpu",
    showcase: Showcase | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` with the inference strategy and CRF of ``cfg``.

    With the CRF on, each batch's probabilities go to the CRF pool while the network predicts the next batch;
    labels come back in order. Also returns ``bf`` (SegNet's boundary F1, ``ablate.train.boundary_f1``), ``trimap``
    (mIoU in the band of each ``cfg.trimap`` width around the label boundaries), ``confusion`` (pixel counts),
    ``reach`` (pixel accuracy by distance to the evidence of the class, on a data set that knows it),
    ``eval_time_s`` and, with the CRF, ``crf_workers``.
    ``showcase`` keeps the predictions of its images (after the CRF, as they were scored).
    """
    started = time.perf_counter()
    if showcase is not None:
        showcase.total = len(dataset)
    model.eval().to(device)
    confusion = confusion_metric(num_classes, ignore_index, sync=False).to(device)  # this process's images only
    trimap = Trimap(cfg.trimap, num_classes, ignore_index).to(device)
    bf = BoundaryF1(num_classes, ignore_index)
    knows_context = getattr(dataset, "context", None) is not None and len(dataset) and dataset.context(0) is not None
    reach = Reach() if knows_context else None  # accuracy by distance to the evidence (the synthetic set)
    pool = CRFPool(cfg.crf, shared=True) if cfg.crf.enabled else None
    if pool is not None:
        pool.start()  # before the first batch: the workers are ready when its probabilities are
    pending: tuple[Any, torch.Tensor, int] | None = None

    def score(first: int, preds: torch.Tensor, labels: torch.Tensor) -> None:
        confusion.update(preds, labels)
        trimap.update(preds, labels)
        preds_np, labels_np = preds.cpu().numpy(), labels.cpu().numpy()
        bf.update(preds_np, labels_np)
        if showcase is not None or reach is not None:
            for i, (label, pred) in enumerate(zip(labels_np, preds_np, strict=True)):
                if showcase is not None:
                    showcase.offer(first + i, label, pred)
                if reach is not None:
                    reach.update(pred, label, dataset.context(first + i))

    def finish(job: tuple[Any, torch.Tensor, int]) -> None:
        result, labels, first = job
        score(first, torch.from_numpy(np.stack(list(result))).long().to(device), labels)

    index = 0
    try:
        for images, labels in DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False):
            labels = labels.to(device)
            probs = predict(model, images.to(device), cfg)
            if pool is None:
                score(index, probs.argmax(1), labels)
            else:
                rgbs = [dataset.rgb(index + i) for i in range(len(images))]
                job = (pool.submit(list(zip(probs.float().cpu().numpy(), rgbs, strict=True))), labels, index)
                if pending is not None:
                    finish(pending)
                pending = job
            index += len(images)
        if pending is not None:
            finish(pending)
    finally:
        if pool is not None:
            pool.close()
    matrix = confusion.compute().cpu()
    metrics = metrics_from_confusion(matrix)
    metrics["confusion"] = matrix.long().tolist()  # rows: ground truth, columns: prediction (pixels)
    metrics["trimap"] = trimap.compute()
    metrics["bf"] = bf.compute()
    if reach is not None:
        metrics["reach"] = reach.compute()
    metrics["eval_time_s"] = round(time.perf_counter() - started, 3)
    if pool is not None:
        metrics["crf_workers"] = pool.workers
    return metrics


@torch.no_grad()
def validate(module: nn.Module, dataset: Dataset, num_classes: int, ignore_index: int, batch_size: int,
             device: torch.device) -> float:  # fmt: skip
    """mIoU (0-1) of a training's model as it is (whole image, one scale), for the curves of ``train.val_every``.
    It reads the items itself: a DataLoader's iterator draws its seed from the global RNG that the training's
    dropout depends on, so validating would change the training. The module goes back to training mode."""
    module.eval()
    confusion = confusion_metric(num_classes, ignore_index, sync=False).to(device)
    try:
        for first in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(first, min(first + batch_size, len(dataset)))]
            images = torch.stack([x for x, _ in items]).to(device)
            labels = torch.stack([y for _, y in items]).to(device)
            confusion.update(module(images).argmax(1), labels)  # logits at the input size
    finally:
        module.train()
    return float(metrics_from_confusion(confusion.compute().cpu())["miou"])
