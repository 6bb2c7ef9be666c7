"""Metrics from the confusion matrix against an independent numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablate.train.metrics import confusion_metric, metrics_from_confusion


def reference(pred: np.ndarray, gt: np.ndarray, k: int, ignore: int = 255) -> dict:
    keep = gt != ignore
    p, g = pred[keep], gt[keep]
    pa = float((p == g).mean())
    accs, ious, freqs = [], [], []
    for c in range(k):
        tp = np.sum((p == c) & (g == c))
        n_gt, n_pred = np.sum(g == c), np.sum(p == c)
        if n_gt > 0:
            accs.append(tp / n_gt)
        if n_gt + n_pred - tp > 0:
            ious.append(tp / (n_gt + n_pred - tp))
            freqs.append(n_gt / len(g))
    return {
        "pixel_acc": pa,
        "mean_acc": float(np.mean(accs)),
        "miou": float(np.mean(ious)),
        "fwiou": float(np.sum(np.array(freqs) * np.array(ious))),
    }


@pytest.mark.parametrize("seed", range(5))
def test_against_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    k = 6
    gt = rng.integers(0, k - 1, size=(3, 20, 24))  # class k-1 never in ground truth
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, k - 2, size=gt.shape))  # k-1 never predicted
    pred[0, 0, :5] = 3
    gt[rng.random(gt.shape) < 0.1] = 255  # ignored pixels
    metric = confusion_metric(k)
    for i in range(3):  # accumulated over batches
        metric.update(torch.from_numpy(pred[i : i + 1]), torch.from_numpy(gt[i : i + 1]))
    got = metrics_from_confusion(metric.compute())
    want = reference(pred, gt, k)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert np.isnan(got["per_class_iou"][k - 1])  # absent from both: left out, not counted as 0


def test_perfect_and_ignored():
    gt = torch.tensor([[0, 1, 2, 255]])
    m = confusion_metric(3)
    m.update(torch.tensor([[0, 1, 2, 0]]), gt)
    got = metrics_from_confusion(m.compute())
    assert got["miou"] == 1.0 and got["pixel_acc"] == 1.0 and got["fwiou"] == pytest.approx(1.0)
