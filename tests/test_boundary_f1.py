"""SegNet's boundary F1 (BF) score against a direct computation: boundary pixels found by visiting each pixel's
neighbours, distances by comparing every pair of points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ablate.train.boundary_f1 import TOLERANCE, BoundaryF1, image_scores

IGNORE = 255


def direct_boundary(mask: np.ndarray, neighbour_ok) -> list[tuple[int, int]]:
    h, w = mask.shape
    points = []
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                v, u = y + dy, x + dx
                if 0 <= v < h and 0 <= u < w and not mask[v, u] and neighbour_ok(v, u):
                    points.append((y, x))
                    break
    return points


def direct_scores(pred: np.ndarray, label: np.ndarray, radius: float) -> dict[int, float]:
    """BF per ground-truth class, straight from the definition (see ablate.train.boundary_f1)."""
    valid = label != IGNORE
    scores = {}
    for c in sorted(set(label[valid].tolist())):
        truth = direct_boundary(label == c, lambda v, u: valid[v, u])
        guess = [p for p in direct_boundary(pred == c, lambda v, u: True) if valid[p]]
        if not truth and not guess:
            continue
        if not truth or not guess:
            scores[c] = 0.0
            continue

        def near(points, targets):
            return sum(any(math.dist(p, t) <= radius for t in targets) for p in points)

        precision, recall = near(guess, truth) / len(guess), near(truth, guess) / len(truth)
        scores[c] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return scores


def test_hand_made_cases():
    label = np.zeros((10, 10), np.uint8)
    label[2:6, 2:6] = 1  # a 4 x 4 square: 12 boundary pixels inside it, 16 around it in the background
    tol = 1.0 / math.hypot(10, 10)  # a radius of exactly 1 px
    assert image_scores(label, label, 2, IGNORE, tol) == {0: 1.0, 1: 1.0}
    shifted = np.zeros_like(label)
    shifted[2:6, 3:7] = 1  # one pixel to the right: every boundary pixel within 1 px of the other
    assert image_scores(shifted, label, 2, IGNORE, tol) == {0: 1.0, 1: 1.0}
    far = np.zeros_like(label)
    far[2:6, 5:9] = 1  # three pixels right: only the top and bottom rows overlap, 3 of 12 columns' pixels near
    s = image_scores(far, label, 2, IGNORE, tol)
    assert s == pytest.approx(direct_scores(far, label, 1.0))
    assert 0 < s[1] < 1
    # a class never predicted scores 0; one predicted but absent from the ground truth is not scored
    assert image_scores(np.zeros_like(label), label, 2, IGNORE, tol)[1] == 0.0
    assert 2 not in image_scores(np.full_like(label, 2), label, 3, IGNORE, tol)


def test_void_is_left_out():
    label = np.zeros((8, 12), np.uint8)
    label[:, 6:] = 1
    label[:, 5:7] = IGNORE  # a void strip between the two classes: no labelled boundary between them
    pred = np.zeros_like(label)
    pred[:, 6:] = 1  # the predicted boundary lies on void: not scored either
    assert image_scores(pred, label, 2, IGNORE) == {}
    pred[:, 9:] = 0  # a predicted edge on labelled ground truth of class 1 that the ground truth lacks
    assert image_scores(pred, label, 2, IGNORE) == {0: 0.0, 1: 0.0}


@pytest.mark.parametrize("seed", range(6))
def test_equals_the_direct_computation_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(6, 16)), int(rng.integers(6, 16))
    # blocky maps: a few rectangles of classes over a background, some void, a prediction that is a noisy copy
    label = np.zeros((h, w), np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        label[y : y + rng.integers(2, 6), x : x + rng.integers(2, 6)] = rng.integers(0, 4)
    label[rng.random((h, w)) < 0.05] = IGNORE
    pred = np.where(rng.random((h, w)) < 0.15, rng.integers(0, 4, (h, w)), label).astype(np.uint8)
    pred[pred == IGNORE] = 0
    tol = float(rng.uniform(0.02, 0.2))
    radius = tol * math.hypot(h, w)
    assert image_scores(pred, label, 4, IGNORE, tol) == pytest.approx(direct_scores(pred, label, radius))


def test_dataset_score_is_the_mean_of_image_means_and_ignores_padding():
    label = np.zeros((10, 10), np.uint8)
    label[2:6, 2:6] = 1
    far = np.zeros_like(label)
    far[2:6, 5:9] = 1
    metric = BoundaryF1(2, IGNORE, tolerance=1.0 / math.hypot(10, 10))
    metric.update(np.stack([label, far]), np.stack([label, label]))
    second = np.mean(list(direct_scores(far, label, 1.0).values()))
    assert metric.compute() == pytest.approx((1.0 + second) / 2)
    # padding (bottom/right rows and columns of the ignore label) does not change the tolerance
    padded_label = np.full((16, 14), IGNORE, np.uint8)
    padded_label[:10, :10] = label
    padded_pred = np.zeros((16, 14), np.uint8)
    padded_pred[:10, :10] = far
    assert image_scores(padded_pred, padded_label, 2, IGNORE, TOLERANCE) == image_scores(far, label, 2, IGNORE)
    assert BoundaryF1(2).compute() != BoundaryF1(2).compute()  # NaN without images
