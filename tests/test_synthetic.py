"""The embedded data set: deterministic, all classes, ignore borders, locally ambiguous insides."""

from __future__ import annotations

import numpy as np
from tests_helpers import stacked, synthetic

from ablate.data.synthetic import CLASSES, IGNORE_INDEX, make_sample


def test_deterministic_by_seed_and_split():
    a, la = make_sample(0, "train", 3, 48)
    b, lb = make_sample(0, "train", 3, 48)
    c, _ = make_sample(1, "train", 3, 48)
    d, _ = make_sample(0, "val", 3, 48)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_labels_cover_every_class_and_ignore():
    ds = synthetic("train", 64, 48)
    images, labels = stacked(ds)
    values = set(labels.unique().tolist())
    assert values == set(range(len(CLASSES))) | {IGNORE_INDEX}
    assert images.shape == (64, 3, 48, 48)
    rgb = ds.denormalize(images)
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_shape_insides_share_texture_across_classes():
    """Colour is no cue: per-class mean colour inside shapes is close to the overall mean."""
    ds = synthetic("train", 128, 48)
    images, labels = stacked(ds)
    rgb = ds.denormalize(images).permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    labels = labels.reshape(-1).numpy()
    inside = (labels > 0) & (labels != IGNORE_INDEX)
    overall = rgb[inside].mean(0)
    for c in range(1, len(CLASSES)):
        assert np.abs(rgb[labels == c].mean(0) - overall).max() < 0.06
