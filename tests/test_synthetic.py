"""The embedded data set and its promise: a pixel t px from the marker of its object can be labelled only by a
predictor that sees t px away. Rendering a scene with its classes permuted changes the marker pixels and the
labels and nothing else, so any predictor whose window around a pixel holds no marker pixel sees the same input
under all four cyclic permutations while the label runs through all four classes: it is right on at most one of
them, chance (1/4), whatever it is."""

from __future__ import annotations

import numpy as np
import pytest
from tests_helpers import stacked, synthetic

from ablate.data.synthetic import CLASSES, IGNORE_INDEX, LINE, OBJECTS, SyntheticData, make_sample

SIZE = 160
CYCLES = [tuple((c + k) % len(OBJECTS) for c in range(len(OBJECTS))) for k in range(len(OBJECTS))]


def _windows_without_marker(evidence: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose (2 radius + 1)-px square window holds no marker pixel (a box filter over the marker mask)."""
    padded = np.pad(evidence.astype(np.int32), radius + 1)
    integral = padded.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    box = integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]
    return box[: evidence.shape[0], : evidence.shape[1]] == 0


def test_deterministic_by_seed_split_and_index():
    a = make_sample(0, "train", 3, 96, (10, 40))
    b = make_sample(0, "train", 3, 96, (10, 40))
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], make_sample(1, "train", 3, 96, (10, 40))[0])
    assert not np.array_equal(a[0], make_sample(0, "val", 3, 96, (10, 40))[0])


def test_permuted_classes_change_only_the_markers_and_the_labels():
    for index in range(12):
        base, label, context = make_sample(0, "val", index, SIZE)
        objects = (label >= 1) & (label <= len(OBJECTS))
        marker = np.zeros(label.shape, bool)
        for perm in CYCLES[1:]:
            image, permuted, again = make_sample(0, "val", index, SIZE, permute=perm)
            changed = np.any(image != base, axis=-1)
            marker |= changed
            assert np.array_equal(again, context, equal_nan=True)
            assert np.array_equal(permuted[~objects], label[~objects])  # background and lines: the same
            assert np.array_equal(permuted[objects], 1 + np.take(perm, label[objects] - 1))
        assert marker.any() and (context[marker] == 0).all()  # what changes is the marker, at distance 0


@pytest.mark.parametrize("shape", [{}, {"context_distance": (48, 56), "object_width": 24}], ids=["blobs", "bars"])
def test_a_predictor_that_sees_less_than_the_distance_is_at_chance(shape):
    """On every object pixel whose window of radius w holds no marker, the four renderings look the same inside
    the window and carry four different labels; such pixels exist at every w up to the data's distance, and each
    is at least w px from its own marker (the default objects, and the probe's bars)."""
    for w in (4, 8, 16, 32):
        scored = 0
        for index in range(8):
            renders = [make_sample(0, "val", index, SIZE, **shape, permute=p) for p in CYCLES]
            base, label, context = renders[0]
            evidence = np.zeros(label.shape, bool)
            for image, _, _ in renders[1:]:
                evidence |= np.any(image != base, axis=-1)
            blind = _windows_without_marker(evidence, w) & (label >= 1) & (label <= len(OBJECTS))
            ys, xs = np.nonzero(blind)
            for y, x in zip(ys[::97], xs[::97], strict=True):  # a sample of the pixels: each window compared
                y0, y1, x0, x1 = max(0, y - w), y + w + 1, max(0, x - w), x + w + 1
                for image, _, _ in renders[1:]:
                    assert np.array_equal(image[y0:y1, x0:x1], base[y0:y1, x0:x1])
            labels = np.stack([r[1][blind] for r in renders])
            assert (np.sort(labels, 0) == np.arange(1, len(OBJECTS) + 1)[:, None]).all()  # each class once
            assert (context[blind] >= w - 1).all()  # (a pixel's discretisation apart)
            scored += int(blind.sum())
        assert scored > 1000, w  # the data does demand this reach


def test_context_distance_sets_how_far_pixels_are_from_their_evidence():
    near = np.concatenate([make_sample(0, "val", i, SIZE, (8, 12))[2].ravel() for i in range(16)])
    far = np.concatenate([make_sample(0, "val", i, SIZE, (48, 64))[2].ravel() for i in range(16)])
    near, far = near[np.isfinite(near)], far[np.isfinite(far)]
    assert near.max() <= 12 and np.percentile(far, 90) > 30


def test_bars_move_the_evidence_away_but_not_the_outline():
    """With object_width, context_distance sets how far object pixels are from their marker, while every object
    pixel stays within half the width of the background (what changes with the distance is reach, not boundaries)."""
    from scipy import ndimage

    def distances(context_distance):
        to_marker, to_outline = [], []
        for i in range(12):
            _, label, context = make_sample(0, "val", i, SIZE, context_distance, object_width=24)
            objects = (label >= 1) & (label <= len(OBJECTS))
            to_marker.append(context[objects])
            to_outline.append(ndimage.distance_transform_edt(np.pad(objects, 1))[1:-1, 1:-1][objects])  # the edge too
        return np.concatenate(to_marker), np.concatenate(to_outline)

    near, near_outline = distances((16, 24))
    far, far_outline = distances((64, 72))
    assert near.max() <= 24 and np.percentile(far, 75) > 30 and far.max() > 55  # from the marker's edge
    assert near_outline.max() <= 13 and far_outline.max() <= 13  # half of 24 px (and a pixel's rounding)
    assert abs(np.median(near_outline) - np.median(far_outline)) <= 2  # (short bars: more pixels near an end)


def test_labels_cover_every_class_and_the_ignore_border():
    ds = synthetic("train", 64, 96)
    _, labels = stacked(ds)
    assert set(labels.unique().tolist()) == set(range(len(CLASSES)))
    bordered = SyntheticData(num_train=8, num_val=8, image_size=96, context_distance=(10, 40), ignore_border=1)
    _, label = bordered.source("val").read(0)
    assert (label == IGNORE_INDEX).any() and CLASSES[LINE] == "line"


def test_object_appearance_says_nothing_of_the_class_off_the_marker():
    """Grey, texture and shape are drawn whatever the class: off the marker and its ring, per-class mean colour
    inside objects is close to the overall mean."""
    ds = synthetic("train", 128, 96)
    source = ds.source
    rgb = np.concatenate([source.read(i)[0].reshape(-1, 3) for i in range(len(source))]) / 255
    labels = np.concatenate([source.read(i)[1].ravel() for i in range(len(source))])
    context = np.concatenate([source.context(i).ravel() for i in range(len(source))])
    inside = (labels >= 1) & (labels <= len(OBJECTS)) & (context > 2)
    overall = rgb[inside].mean(0)
    for c in range(1, len(OBJECTS) + 1):
        assert np.abs(rgb[inside & (labels == c)].mean(0) - overall).max() < 0.06


@pytest.mark.parametrize(("value", "message"), [((10, 90), "do not fit a 160-px image"), ((30, 20), "0 < min <= max")])
def test_context_distance_is_checked(value, message):
    with pytest.raises(ValueError, match=message):
        SyntheticData(context_distance=value)


def test_generated_once_per_data_config_and_read_only():
    """The jobs of one process (a local worker runs job after job) share the generated arrays of one data config;
    they are read-only, so no job can change the data the next one trains on, and the tensors made from them are
    new (no warning from torch about wrapping a read-only array)."""
    import warnings

    from ablate.data.loader import SegmentationSet

    spec = SyntheticData(num_train=4, num_val=2, image_size=32, context_distance=(4, 12))
    first, again = spec.source("train"), SyntheticData(**spec.model_dump()).source("train")
    other = spec.model_copy(update={"seed": 1}).source("train")
    assert first.images is again.images and first.labels is again.labels  # the same data config: not redrawn
    assert other.images is not first.images and not np.array_equal(other.images, first.images)
    for array in (first.images, first.labels, first._context):
        assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        first.images[0, 0, 0, 0] = 1
    before = first.images.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = SegmentationSet(spec, "train", augment=True)
        image, label = ds[(0, (7, 0))]
        image[:] = 0  # a job may write into its tensors ...
        label[:] = 0
        plain, _ = ds[0]
    assert np.array_equal(first.images, before)  # ... never into the shared data
    assert plain.abs().sum() > 0
