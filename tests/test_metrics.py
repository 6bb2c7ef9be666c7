"""Metrics from the confusion matrix against an independent numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablate.train.metrics import Reach, confusion_metric, metrics_from_confusion, reach_distance


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


def sklearn_metrics(pred: np.ndarray, gt: np.ndarray, k: int, ignore: int = 255) -> dict:
    """The same metrics from scikit-learn's confusion matrix (an implementation independent of torchmetrics)."""
    from sklearn.metrics import confusion_matrix

    keep = gt != ignore
    cm = confusion_matrix(gt[keep].ravel(), pred[keep].ravel(), labels=list(range(k))).astype(np.float64)
    tp, n_gt, n_pred = np.diag(cm), cm.sum(1), cm.sum(0)
    union = n_gt + n_pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(n_gt > 0, tp / n_gt, np.nan)
    present = ~np.isnan(iou)
    return {
        "pixel_acc": tp.sum() / cm.sum(),
        "mean_acc": np.nanmean(acc),
        "miou": iou[present].mean(),
        "fwiou": (n_gt[present] / cm.sum() * iou[present]).sum(),
        "per_class_iou": iou,
        "per_class_acc": acc,
    }


def _random_case(seed: int, k: int = 7):
    """Random labels with ignored pixels, one class absent from both ground truth and prediction (k-1), one only
    predicted (k-2, IoU 0, no accuracy) and one only in the ground truth (k-3, IoU 0, accuracy 0)."""
    rng = np.random.default_rng(seed)
    gt = rng.choice([c for c in range(k) if c not in (k - 1, k - 2)], size=(4, 17, 23))
    pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, k - 1, size=gt.shape))
    pred[pred == k - 3] = 0  # k-3 never predicted
    gt[rng.random(gt.shape) < 0.15] = 255
    return pred, gt


@pytest.mark.parametrize("seed", range(6))
def test_against_sklearn_and_numpy(seed):
    k = 7
    pred, gt = _random_case(seed, k)
    metric = confusion_metric(k)
    for i in range(len(gt)):
        metric.update(torch.from_numpy(pred[i]), torch.from_numpy(gt[i]))
    got = metrics_from_confusion(metric.compute())
    want, ref = sklearn_metrics(pred, gt, k), reference(pred, gt, k)
    for key in ("pixel_acc", "mean_acc", "miou", "fwiou"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
        assert got[key] == pytest.approx(ref[key], abs=1e-6), key
    np.testing.assert_allclose(got["per_class_iou"], want["per_class_iou"], atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(got["per_class_acc"], want["per_class_acc"], atol=1e-6, equal_nan=True)
    iou, acc = got["per_class_iou"], got["per_class_acc"]
    assert np.isnan(iou[k - 1]) and np.isnan(acc[k - 1])  # absent from both: left out of every mean
    assert iou[k - 2] == 0 and np.isnan(acc[k - 2])  # only predicted: IoU 0 counts, no accuracy
    assert iou[k - 3] == 0 and acc[k - 3] == 0  # only in ground truth: both 0 and counted


def test_ignored_pixels_do_not_count():
    """Whatever is predicted on an ignored pixel changes nothing."""
    pred, gt = _random_case(0)
    a, b = confusion_metric(7), confusion_metric(7)
    a.update(torch.from_numpy(pred), torch.from_numpy(gt))
    scrambled = np.where(gt == 255, (pred + 3) % 7, pred)
    b.update(torch.from_numpy(scrambled), torch.from_numpy(gt))
    assert torch.equal(a.compute(), b.compute())
    assert int(a.compute().sum()) == int((gt != 255).sum())


def _ddp_worker(rank: int, world: int, init: str, pred: np.ndarray, gt: np.ndarray, out) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    metric = confusion_metric(7)
    metric.update(torch.from_numpy(pred[rank::world]), torch.from_numpy(gt[rank::world]))  # this rank's images
    out.put((rank, metric.compute().numpy()))
    dist.destroy_process_group()


def test_confusion_is_summed_across_processes(tmp_path):
    """Under DDP each process sees part of the images; compute() sums the confusion matrices (gloo, 2 processes)."""
    import multiprocessing as mp

    pred, gt = _random_case(3)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, init, pred, gt, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    whole = confusion_metric(7)
    whole.update(torch.from_numpy(pred), torch.from_numpy(gt))
    for rank in range(2):
        np.testing.assert_array_equal(results[rank], whole.compute().numpy())


def test_trimap_band_is_the_pixels_near_label_boundaries():
    """The band of width k holds exactly the pixels within k (Chebyshev) of a pixel whose 4-neighbour has another
    label; mIoU in it counts only those pixels (checked against a brute-force numpy count)."""
    import numpy as np

    from ablate.train.metrics import Trimap, boundary_band

    labels = torch.zeros(1, 12, 16, dtype=torch.long)
    labels[0, 3:8, 4:10] = 1
    labels[0, 0, 15] = 255
    band0 = boundary_band(labels, 0)[0].numpy()
    lab = labels[0].numpy()
    edge = np.zeros_like(lab, bool)
    for y in range(12):
        for x in range(16):
            for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < 12 and 0 <= xx < 16 and lab[yy, xx] != lab[y, x]:
                    edge[y, x] = True
    assert np.array_equal(band0, edge)
    for width in (1, 2):
        want = np.zeros_like(edge)
        for y, x in zip(*np.nonzero(edge), strict=True):
            want[max(0, y - width) : y + width + 1, max(0, x - width) : x + width + 1] = True
        assert np.array_equal(boundary_band(labels, width)[0].numpy(), want)
    preds = labels.clone()
    preds[0, 3, 4:10] = 0  # wrong on the square's top row: inside every band
    preds[0, 10, 0] = 1  # wrong far from any boundary: outside the 1-pixel band
    trimap = Trimap([1], num_classes=2)
    trimap.update(preds, labels)
    band = boundary_band(labels, 1)[0].numpy() & (lab != 255)
    p, t = preds[0].numpy()[band], lab[band]
    ious = [((p == c) & (t == c)).sum() / ((p == c) | (t == c)).sum() for c in (0, 1)]
    assert trimap.compute()["1"] == pytest.approx(np.mean(ious))


def test_reach_is_where_accuracy_by_distance_falls_below_half():
    """Accuracy by distance per bin, and the distance (px) at which it crosses 50%, interpolated between bin centres
    (4, 12, 20, ...): 0.9 at 12 px and 0.3 at 20 px cross at 12 + 0.4 / 0.6 * 8."""
    reach = Reach()
    context = np.array([[2.0, 10.0, 18.0, np.nan]])
    labels = np.array([[1, 2, 3, 0]])
    reach.update(np.array([[1, 2, 0, 0]]), labels, context)  # right at 2 and 10 px, wrong at 18 px
    got = reach.compute()
    assert got["0-8"] == 1.0 and got["8-16"] == 1.0 and got["16-24"] == 0.0 and got["72+"] is None
    assert reach_distance(got) == pytest.approx(16.0)  # 1.0 at 12, 0.0 at 20: halfway
    curve = {"0-8": 1.0, "8-16": 0.9, "16-24": 0.3, "24-32": 0.6, "32-40": None}
    assert reach_distance(curve) == pytest.approx(12 + 0.4 / 0.6 * 8)  # the first fall counts
    assert reach_distance({"0-8": 0.4}) == 0.0
    assert reach_distance({"0-8": 1.0, "8-16": 0.8, "16-24": None}) == 12.0  # never falls: a lower bound
    assert reach_distance({"0-8": None}) is None
