"""The embedded default data set: synthetic scenes in which context, scale, thin structures and colour edges each
decide part of the score, as they do in the papers' ablations.

Each image is a smoothly shaded grey background crossed by 2-4 thin dark bars (class ``line``, ``line_width`` px:
narrower than a feature cell at output stride 16, so output stride and the decoder show on them), and 2-4
non-overlapping objects: ellipses or rectangles at random orientations, their semi-major axis drawn log-uniformly
from ``context_distance`` (px). Every object has a random grey and the same blotchy texture, so neither grey,
texture, shape, size nor orientation tells the classes apart. Only a saturated colour marker at the object's
centre (radius ``marker_radius``, framed by a class-independent dark or light ring) says which of the four classes
(red, green, blue, yellow) the object is. A pixel t px from its object's marker can be labelled only by a model
that sees t px away: ``context_distance`` is the reach the data demands, and each object pixel's distance to its
marker is kept for the validation split (``context``) so evaluation can score accuracy against it. Colour edges
lie on every label boundary, which a dense CRF can use. With ``object_width`` > 0 (the context-distance probe)
every object is instead a bar of that width: ``context_distance`` then sets how far its pixels are from the
marker but not how far from its outline. Training crops are scaled by 0.5-2.0, as DeepLab's and
PSPNet's are.

The scene is a pure function of (seed, split, index), and every random draw is made in the same order whatever the
classes are: rendering with the classes permuted (``make_sample(..., permute=...)``) changes only the marker pixels
and the labels (tests/test_synthetic.py checks what that promises). Generated in memory with numpy, no files.

Classes: 0 background, 1-4 red, green, blue, yellow objects, 5 line. With ``ignore_border`` > 0 the pixels within
that many px of an object's outline are labelled 255 (ignored), as VOC labels its object borders.
"""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from ablate.data.base import DATASETS, DataSpec, Source

OBJECTS = ("red", "green", "blue", "yellow")
CLASSES = ("background", *OBJECTS, "line")
LINE = len(CLASSES) - 1
IGNORE_INDEX = 255
MARKER_COLOURS = np.array([[0.92, 0.12, 0.12], [0.10, 0.78, 0.15], [0.15, 0.30, 0.95], [0.95, 0.85, 0.10]])
_SPLITS = {"train": 0, "val": 1}
_RECT = 0.886  # a rectangle's half side per unit radius: the area of the ellipse of that radius


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A bilinearly upsampled random grid: low-frequency noise in [0, 1]."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False)
    i = t.astype(int)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    return ~_dilate(~mask, 1)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cached arrays made read-only: a job that wrote into one would change the data of every later job of its
    process (a local worker runs job after job), so writing raises instead."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return _frozen(yy, xx)


def make_sample(seed: int, split: str, index: int, size: int, context_distance: tuple[float, float] = (20, 80),
                objects: tuple[int, int] = (2, 4), lines: tuple[int, int] = (2, 4), line_width: float = 8.0,
                marker_radius: float = 8.0, ignore_border: int = 0, object_width: float = 0.0,
                permute: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One scene: (RGB float32 H x W x 3 in [0, 1], label uint8 H x W, context float32 H x W). ``context`` is
    each object pixel's distance (px) to its own marker's edge (0 on the marker), NaN elsewhere. ``permute[c]``
    is the class object class c is drawn as (every other pixel and draw unchanged). ``object_width`` > 0 makes
    every object a bar of that width (px) and semi-major axis from ``context_distance``: its pixels' distances to
    the marker spread over the whole range while their distance to the outline stays the same."""
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    yy, xx = _grid(size)
    grey = rng.uniform(0.3, 0.7)
    shading = smooth_noise(rng, size, int(rng.integers(2, 5)))[..., None]
    image = np.clip(grey + rng.uniform(-0.05, 0.05, 3) + 0.2 * (shading - 0.5), 0, 1)
    label = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(lines[0], lines[1] + 1))):  # thin bars; objects are drawn over them
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        length2 = max(1e-6, (x1 - x0) ** 2 + (y1 - y0) ** 2)
        across = np.abs((y1 - y0) * xx - (x1 - x0) * yy + x1 * y0 - y1 * x0) / np.sqrt(length2)
        along = ((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / length2
        bar = (across <= line_width / 2) & (along >= 0) & (along <= 1)
        image[bar], label[bar] = 0.05, LINE
    texture = smooth_noise(rng, size, max(4, size // 6))[..., None]
    occupied = np.zeros((size, size), bool)
    context = np.full((size, size), np.nan, np.float32)
    outlines = np.zeros((size, size), bool)
    low, high = np.log(context_distance[0]), np.log(context_distance[1])
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        cls = int(rng.integers(0, len(OBJECTS)))
        shade = rng.uniform(0.1, 0.9)
        for _ in range(20):  # an object stands out from the background by at least 0.2 in grey
            if abs(shade - grey) >= 0.2:
                break
            shade = rng.uniform(0.1, 0.9)
        tint = rng.uniform(-0.05, 0.05, 3)
        for _ in range(20):  # a place where it does not touch another object
            r = float(np.exp(rng.uniform(low, high)))
            aspect, angle, rect = rng.uniform(0.5, 1.0), rng.uniform(0, np.pi), rng.random() < 1 / 3
            cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
            u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
            v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
            if object_width:
                mask = (np.abs(u) <= r) & (np.abs(v) <= object_width / 2)
            elif rect:
                mask = (np.abs(u) <= _RECT * r) & (np.abs(v) <= _RECT * aspect * r)
            else:
                mask = (u / r) ** 2 + (v / (aspect * r)) ** 2 <= 1
            if mask.any() and not (mask & occupied).any():
                break
        else:
            continue
        drawn = cls if permute is None else permute[cls]
        fill = np.clip(shade + tint + 0.2 * (texture - 0.5), 0, 1)
        image[mask], label[mask] = fill[mask], 1 + drawn
        if object_width:  # a bar's marker keeps 2 px of bar beside its ring (a small marker is hard to find)
            radius = min(marker_radius, object_width / 2 - 3)
        else:
            radius = min(marker_radius, 0.4 * aspect * r * (_RECT if rect else 1.0))
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        image[(d2 <= (radius + 1) ** 2) & mask] = 0.0 if shade > 0.45 else 1.0  # the ring: says "a marker here"
        marker = (d2 <= radius**2) & mask
        image[marker] = MARKER_COLOURS[drawn]
        context[mask] = np.maximum(0.0, np.sqrt(d2[mask]) - radius)
        occupied |= _dilate(mask, 3)  # objects stay >= 3 px apart
        if ignore_border:
            outlines |= mask & ~_erode(mask)
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
    if ignore_border:  # the outline and the pixels within ignore_border - 1 of it
        label[_dilate(outlines, ignore_border - 1)] = IGNORE_INDEX
    return image, label, context


@functools.lru_cache(maxsize=8)
def _generate(split: str, num_samples: int, size: int, seed: int, shape: tuple) -> tuple[np.ndarray, ...]:
    """The uint8 RGB images, labels and context distances (float16) of one split, generated once per process and
    kept, keyed by everything that draws them: the runs of a study, and the jobs a local worker runs one after
    another, share them (read-only: a run's tensors are new arrays)."""
    samples = [make_sample(seed, split, i, size, *shape) for i in range(num_samples)]
    images = np.stack([(s[0] * 255).round().astype(np.uint8) for s in samples])
    return _frozen(images, np.stack([s[1] for s in samples]), np.stack([s[2] for s in samples]).astype(np.float16))


class SyntheticSource:
    def __init__(self, images: np.ndarray, labels: np.ndarray, context: np.ndarray):
        self.images, self.labels, self._context = images, labels, context

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]

    def context(self, index: int) -> np.ndarray:
        """Each object pixel's distance (px) to its class's evidence, NaN elsewhere (float32 H x W)."""
        return self._context[index].astype(np.float32)


@DATASETS.register
class SyntheticData(DataSpec):
    """The embedded synthetic data set (see the module doc): generated in memory, no files."""

    name: Literal["synthetic"] = "synthetic"
    image_size: int = Field(default=160, ge=32, le=1024)
    num_train: PositiveInt = 512
    num_val: PositiveInt = 128
    seed: int = 0
    # objects' semi-major axes (px, log-uniform): how far an object pixel can be from the marker naming its class
    context_distance: tuple[float, float] = Field(default=(20.0, 80.0), validate_default=True)
    objects: tuple[PositiveInt, PositiveInt] = (2, 4)  # objects per image (fewer where they do not fit)
    lines: tuple[int, int] = (2, 4)  # thin bars per image (class line)
    line_width: float = Field(default=8.0, ge=0)  # px
    marker_radius: float = Field(default=8.0, gt=0)  # px: <= 0.4 of a blob's minor semi-axis, a bar's half width - 3
    ignore_border: int = Field(default=0, ge=0)  # px around each object's outline labelled 255 (VOC style)
    # > 0: every object is a bar this wide (px), so that context_distance sets how far its pixels are from the marker
    # but not how far from its outline (the context-distance probe); 0: ellipses and rectangles
    object_width: float = Field(default=0.0, ge=0)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    classes: ClassVar[tuple[str, ...]] = CLASSES
    palette: ClassVar = ((26, 26, 26), (230, 77, 64), (77, 191, 89), (51, 140, 230), (242, 191, 51), (153, 89, 204))

    @field_validator("context_distance")
    @classmethod
    def _fits(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError(f"expected 0 < min <= max, got [{low:g}, {high:g}]")
        size = info.data.get("image_size")
        if size is not None and high > size / 2:
            raise ValueError(f"[{low:g}, {high:g}]: objects that large do not fit a {size}-px image (data.image_size); "
                             f"the largest may be image_size / 2 = {size / 2:g}")  # fmt: skip
        return value

    @field_validator("objects", "lines")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError(f"expected 0 <= min <= max, got [{value[0]}, {value[1]}]")
        return value

    @property
    def crop(self) -> int:
        return self.image_size

    def shape(self) -> tuple:
        """The generator's scene parameters, in ``make_sample``'s order after ``size``."""
        return (tuple(self.context_distance), tuple(self.objects), tuple(self.lines), self.line_width,
                self.marker_radius, self.ignore_border, self.object_width)  # fmt: skip

    def source(self, split: str) -> Source:
        n = self.num_train if split == "train" else self.num_val
        return SyntheticSource(*_generate(split, n, self.image_size, self.seed, self.shape()))
