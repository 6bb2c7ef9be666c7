"""Segmentation metrics from one confusion matrix (rows: ground truth, columns: prediction).

- pixel accuracy (PA): correct pixels / labelled pixels
- mean accuracy (mAcc): mean over classes of correct / ground-truth pixels of that class
- IoU per class: TP / (TP + FP + FN); mIoU is their mean
- frequency-weighted IoU (FWIoU): IoU weighted by each class's share of ground-truth pixels

Pixels labelled ``ignore_index`` are left out entirely. A class with no ground-truth pixel has no accuracy, and a
class absent from both ground truth and prediction has no IoU: both are left out of the means (NaN per class).
A class predicted but absent from the ground truth has IoU 0 and counts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric


class ConfusionMatrix(Metric):
    """The confusion matrix (rows: ground truth, columns: prediction) as a torchmetrics ``Metric``: state on the
    model's device, summed across processes under DDP. Unlike ``MulticlassConfusionMatrix`` its update checks no
    values (no ``unique`` over the batch) and never waits for the device: pixels whose label is ``ignore_index``
    or outside ``0 .. num_classes - 1`` are left out; predictions must be class indices (an ``argmax``)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        k = self.num_classes
        preds, target = preds.reshape(-1).long(), target.reshape(-1).long()
        keep = (target >= 0) & (target < k) & (target != self.ignore_index)
        index = torch.where(keep, target * k + preds, k * k)  # ignored pixels land in one extra bin, dropped
        if index.device.type == "cpu":
            counts = torch.bincount(index, minlength=k * k + 1)
        else:  # bincount sizes its output from the data (a host sync); a fixed-size scatter does not
            counts = torch.zeros(k * k + 1, dtype=torch.long, device=index.device)
            counts.scatter_add_(0, index, torch.ones_like(index))
        self.confmat += counts[: k * k].view(k, k)

    def compute(self) -> torch.Tensor:
        return self.confmat


def confusion_metric(num_classes: int, ignore_index: int = 255, sync: bool = True) -> ConfusionMatrix:
    """Accumulates the confusion matrix; with ``sync`` summed (not averaged) across processes under DDP."""
    return ConfusionMatrix(num_classes, ignore_index, sync_on_compute=sync)


def metrics_from_confusion(cm: torch.Tensor) -> dict[str, float | list[float]]:
    cm = cm.double()
    tp = cm.diag()
    gt = cm.sum(1)
    pred = cm.sum(0)
    total = cm.sum()
    union = gt + pred - tp
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
    freq = gt / total.clamp(min=1)
    present = ~iou.isnan()
    return {
        "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_acc": float(acc[~acc.isnan()].mean()) if (~acc.isnan()).any() else float("nan"),
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "fwiou": float((freq[present] * iou[present]).sum()) if total > 0 else float("nan"),
        "per_class_iou": iou.tolist(),
        "per_class_acc": acc.tolist(),
    }


def boundary_band(labels: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within ``width`` pixels (Chebyshev distance) of a label boundary (N x H x W bool): a boundary pixel
    has a 4-neighbour with another label value (the ignore label counts as a value, so VOC's void borders are the
    boundaries, as DeepLab's trimap takes them)."""
    x = labels.long()
    edge = torch.zeros_like(x, dtype=torch.bool)
    edge[:, 1:, :] |= x[:, 1:, :] != x[:, :-1, :]
    edge[:, :-1, :] |= x[:, :-1, :] != x[:, 1:, :]
    edge[:, :, 1:] |= x[:, :, 1:] != x[:, :, :-1]
    edge[:, :, :-1] |= x[:, :, :-1] != x[:, :, 1:]
    if width <= 0:
        return edge
    # the square window is separable: a row pass then a column pass (2k instead of k^2 reads per pixel)
    band = F.max_pool2d(edge[:, None].float(), (2 * width + 1, 1), stride=1, padding=(width, 0))
    band = F.max_pool2d(band, (1, 2 * width + 1), stride=1, padding=(0, width))[:, 0]
    return band > 0


class Trimap:
    """Confusion matrices restricted to the boundary band of each width (DeepLab v1/v2, DeepLabv3+ Fig. 5: mIoU
    in a trimap band around label boundaries)."""

    def __init__(self, widths: list[int], num_classes: int, ignore_index: int = 255):
        self.widths, self.ignore_index = list(widths), ignore_index
        self.confusion = {w: confusion_metric(num_classes, ignore_index, sync=False) for w in self.widths}

    def to(self, device: torch.device | str) -> Trimap:
        self.confusion = {w: m.to(device) for w, m in self.confusion.items()}
        return self

    def update(self, preds: torch.Tensor, labels: torch.Tensor) -> None:
        for width, metric in self.confusion.items():
            band = boundary_band(labels, width)
            metric.update(preds, torch.where(band, labels, torch.full_like(labels, self.ignore_index)))

    def compute(self) -> dict[str, float]:
        """{width: mIoU inside the band} (the keys as strings, for JSON)."""
        return {str(w): metrics_from_confusion(m.compute().cpu())["miou"] for w, m in self.confusion.items()}


REACH_BINS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 72)  # px: lower edges of the context-distance bins (the last open)
REACH_LEVEL = 0.5  # a pixel is "in reach" where accuracy is at least this: halfway from chance (1/4) to all right


class Reach:
    """Pixel accuracy by how far a pixel is from the evidence of its class (``SegmentationSet.context``, e.g. the
    synthetic set's marker): where a model's reach ends, its accuracy falls to chance."""

    def __init__(self, edges: tuple[int, ...] = REACH_BINS):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.correct = np.zeros(len(edges), np.int64)
        self.total = np.zeros(len(edges), np.int64)

    def update(self, preds: np.ndarray, labels: np.ndarray, context: np.ndarray) -> None:
        scored = np.isfinite(context)
        bins = np.searchsorted(self.edges, context[scored], side="right") - 1
        hit = preds[scored] == labels[scored]
        self.total += np.bincount(bins, minlength=len(self.edges))
        self.correct += np.bincount(bins, weights=hit, minlength=len(self.edges)).astype(np.int64)

    def compute(self) -> dict[str, float | None]:
        """{"lo-hi" px: accuracy (0-1), None for an empty bin}, in distance order."""
        names = [f"{int(a)}-{int(b)}" for a, b in zip(self.edges[:-1], self.edges[1:], strict=True)]
        names.append(f"{int(self.edges[-1])}+")
        return {n: (float(c / t) if t else None) for n, c, t in zip(names, self.correct, self.total, strict=True)}


def reach_distance(reach: dict[str, float | None], level: float = REACH_LEVEL) -> float | None:
    """Where a model's reach ends (px): the distance at which its accuracy by distance to the evidence
    (``Reach.compute``) first falls below ``level``, interpolated linearly between bin centres. Where it never
    falls, the centre of the farthest bin with pixels (a lower bound); None without any pixels."""
    points = []
    for name, acc in reach.items():
        low = float(name.split("-")[0].rstrip("+"))
        high = float(name.split("-")[1]) if "-" in name else low + 8.0
        if acc is not None:
            points.append(((low + high) / 2, acc))
    points.sort()
    for i, (x, acc) in enumerate(points):
        if acc < level:
            if i == 0:
                return 0.0
            x0, a0 = points[i - 1]
            return x0 + (a0 - level) / (a0 - acc) * (x - x0)
    return points[-1][0] if points else None
