"""SegNet's boundary F1 score (BF; Csurka, Larlus, Perronnin, BMVC 2013, as Badrinarayanan et al. use it on CamVid).

For each image and each class present in its ground truth: the class's boundary pixels in the ground truth and in
the prediction; precision = the share of predicted boundary pixels within ``tolerance`` x the image diagonal
(Euclidean) of a ground-truth one, recall = the share of ground-truth boundary pixels within that distance of a
predicted one, F1 = 2PR / (P + R). An image's score is the mean over its classes; BF is the mean over images.

- A boundary pixel is a pixel of the class with a 4-neighbour inside the image that holds another labelled class
  (ground truth) or another class (prediction); the image's own border is no boundary.
- Void is left out: a ground-truth boundary is one between two labelled classes, and predicted boundary pixels
  where the ground truth is void are not scored (their correctness is unknown).
- A class present in the ground truth but never predicted scores 0; a class with no boundary in either (it fills
  the labelled image) is not scored.
- Evaluation pads images bottom/right with the ignore label; those rows and columns are cut off first, so the
  tolerance follows the image's own diagonal.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

TOLERANCE = 0.0075  # of the image diagonal (SegNet: 0.75%)


def boundary(mask: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Pixels of ``mask`` (H x W bool) with a 4-neighbour outside ``mask``; with ``valid``, only neighbours that are
    ``valid`` count (a class next to void has no boundary there)."""
    other = ~mask if valid is None else (~mask & valid)
    edge = np.zeros_like(mask)
    edge[1:, :] |= other[:-1, :]
    edge[:-1, :] |= other[1:, :]
    edge[:, 1:] |= other[:, :-1]
    edge[:, :-1] |= other[:, 1:]
    return edge & mask


def _within(points: np.ndarray, targets: np.ndarray, tolerance: float) -> int:
    """How many ``points`` lie within ``tolerance`` of a ``targets`` pixel (both H x W bool, targets non-empty).
    The distance transform runs on the bounding box of both sets: every target lies in it, so the distances are
    those of the whole image."""
    rows, cols = np.nonzero(points | targets)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    distance = distance_transform_edt(~targets[box])
    return int(np.count_nonzero(distance[points[box]] <= tolerance))


def trim_padding(pred: np.ndarray, label: np.ndarray, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the trailing rows and columns whose label is all ``ignore_index`` (evaluation's padding)."""
    labelled = label != ignore_index
    rows, cols = np.nonzero(labelled.any(1))[0], np.nonzero(labelled.any(0))[0]
    if not len(rows):
        return pred[:0, :0], label[:0, :0]
    return pred[: rows[-1] + 1, : cols[-1] + 1], label[: rows[-1] + 1, : cols[-1] + 1]


def image_scores(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255,
                 tolerance: float = TOLERANCE) -> dict[int, float]:  # fmt: skip
    """{class: F1} for the classes of one image's ground truth that have a boundary in the ground truth or the
    prediction (H x W integer arrays)."""
    pred, label = trim_padding(pred, label, ignore_index)
    h, w = label.shape
    radius = tolerance * float(np.hypot(h, w))
    valid = (label != ignore_index) & (label < num_classes)
    scores: dict[int, float] = {}
    for c in np.unique(label[valid]):
        truth = boundary(label == c, valid)
        guess = boundary(pred == c) & valid
        n_truth, n_guess = int(truth.sum()), int(guess.sum())
        if n_truth == 0 and n_guess == 0:
            continue
        if n_truth == 0 or n_guess == 0:
            scores[int(c)] = 0.0
            continue
        precision = _within(guess, truth, radius) / n_guess
        recall = _within(truth, guess, radius) / n_truth
        scores[int(c)] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return scores


class BoundaryF1:
    """The BF score over a data set: ``update`` per image (or a batch), ``compute`` -> mean of the image means (0-1),
    NaN without any scored image."""

    def __init__(self, num_classes: int, ignore_index: int = 255, tolerance: float = TOLERANCE):
        self.num_classes, self.ignore_index, self.tolerance = num_classes, ignore_index, tolerance
        self.images: list[float] = []

    def update(self, preds: np.ndarray, labels: np.ndarray) -> None:
        """``preds``, ``labels``: H x W or N x H x W integer arrays."""
        if labels.ndim == 2:
            preds, labels = preds[None], labels[None]
        for pred, label in zip(preds, labels, strict=True):
            scores = image_scores(pred, label, self.num_classes, self.ignore_index, self.tolerance)
            if scores:
                self.images.append(float(np.mean(list(scores.values()))))

    def compute(self) -> float:
        return float(np.mean(self.images)) if self.images else float("nan")
