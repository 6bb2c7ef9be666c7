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

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_metric(num_classes: int, ignore_index: int = 255, sync: bool = True) -> MulticlassConfusionMatrix:
    """Accumulates the confusion matrix; with ``sync`` summed (not averaged) across processes under DDP."""
    return MulticlassConfusionMatrix(
        num_classes=num_classes, ignore_index=ignore_index, normalize="none", sync_on_compute=sync
    )


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
