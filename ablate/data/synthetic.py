"""The embedded default data set: synthetic scenes where context decides the label.

Each image shows 1-4 shapes of four classes (disc, square, triangle, cross) at sizes from a few pixels to most of
the image, drawn over a smooth noisy background. Every shape in an image is filled with the *same* blotchy texture
and each shape's colour is drawn at random, so neither interior texture nor colour tells the classes apart. What
does is the shape's outline and a 3-pixel rim just inside it that carries a class code (disc: row stripes,
square: column stripes, triangle: a checkerboard, cross: plain). Deep inside a large shape the pixels look
alike whatever the shape is, so a network labels them correctly only if its receptive field reaches the rim.
That is what the papers' context modules (ASPP rates, pyramid pooling, image pooling, dilation) are for;
output stride and the decoder show on the small shapes and on boundaries.

Classes: 0 background, 1 disc, 2 square, 3 triangle, 4 cross. Pixels on a one-pixel ring around each shape's
outline are labelled 255 (ignored), like VOC's object borders, so ``ignore_index`` is always exercised.

Generated in memory with numpy, deterministic by (seed, split, index); no files, no downloads.
"""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from ablate.data.base import DATASETS, DataSpec, Source

CLASSES = ("background", "disc", "square", "triangle", "cross")
IGNORE_INDEX = 255
_SPLITS = {"train": 0, "val": 1}


def _shape_mask(kind: int, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if kind == 1:  # disc
        return dx * dx + dy * dy <= r * r
    if kind == 2:  # square (axis-aligned), same area scale as the disc
        half = 0.886 * r
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if kind == 3:  # upward equilateral triangle centred on (cx, cy)
        h = 2.2 * r
        rel = dy + 2 * h / 3  # 0 at the apex, h at the base
        return (rel >= 0) & (rel <= h) & (np.abs(dx) <= rel * 0.577)
    arm = r / 2.5  # cross
    return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled random grid: low-frequency noise in [0, 1]."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False)
    i = t.astype(int)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


BAND = 3  # width in pixels of the class-coded rim inside each shape's outline


def _rim_pattern(kind: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The class code on the rim, in [0, 1]: row stripes, column stripes, a checkerboard, or plain."""
    if kind == 1:
        return (yy % 3 == 0).astype(np.float32)
    if kind == 2:
        return (xx % 3 == 0).astype(np.float32)
    if kind == 3:
        return ((xx // 2 + yy // 2) % 2).astype(np.float32)
    return np.full_like(xx, 0.5)


def make_sample(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (image HxWx3 float32 in [0, 1], label HxW uint8) pair."""
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # background: smooth, low-frequency noise in a random colour
    bg_colour = rng.uniform(0.15, 0.85, size=3)
    noise = _smooth_noise(rng, size, int(rng.integers(2, 5)))
    image = np.clip(bg_colour[None, None, :] + 0.3 * (noise[..., None] - 0.5), 0, 1)
    label = np.zeros((size, size), np.uint8)
    # the one interior texture every shape of this image shares: blotchy, higher-frequency noise
    blotches = _smooth_noise(rng, size, max(4, size // 5))
    n_shapes = int(rng.integers(1, 5))
    # sizes log-uniform from a few pixels to most of the image; large ones first so small ones stay visible
    radii = np.sort(np.exp(rng.uniform(np.log(0.05 * size), np.log(0.45 * size), n_shapes)))[::-1]
    outlines = np.zeros((size, size), bool)
    for r in radii:
        kind = int(rng.integers(1, len(CLASSES)))
        cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
        mask = _shape_mask(kind, xx, yy, cx, cy, r)
        if not mask.any():
            continue
        colour = rng.uniform(0.15, 0.85, size=3)
        fill = colour[None, None, :] + 0.4 * (blotches[..., None] - 0.5)
        inner = mask
        for _ in range(BAND):
            inner = _erode(inner)
        rim = mask & ~inner
        rim_fill = colour[None, None, :] + 0.5 * (_rim_pattern(kind, xx, yy)[..., None] - 0.5)
        image[inner] = np.clip(fill, 0, 1)[inner]
        image[rim] = np.clip(rim_fill, 0, 1)[rim]
        label[mask] = kind
        outlines |= mask ^ _erode(mask)
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
    label[outlines] = IGNORE_INDEX
    return image, label


def _erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


@functools.lru_cache(maxsize=8)
def _generate(split: str, num_samples: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 RGB images and labels of one split, generated once per process: the runs of a study share them."""
    pairs = [make_sample(seed, split, i, size) for i in range(num_samples)]
    images = np.stack([(p[0] * 255).round().astype(np.uint8) for p in pairs])
    return images, np.stack([p[1] for p in pairs])  # shared between runs: never written (tensors are new arrays)


class SyntheticSource:
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]


@DATASETS.register
class SyntheticData(DataSpec):
    """The embedded synthetic data set (see the module doc): generated in memory, no files."""

    name: Literal["synthetic"] = "synthetic"
    image_size: int = Field(default=96, ge=32, le=1024)
    num_train: PositiveInt = 256
    num_val: PositiveInt = 64
    seed: int = 0
    scale_min: float = Field(default=1.0, gt=0)
    scale_max: float = Field(default=1.0, gt=0)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    classes: ClassVar[tuple[str, ...]] = CLASSES

    @property
    def crop(self) -> int:
        return self.image_size

    def source(self, split: str) -> Source:
        n = self.num_train if split == "train" else self.num_val
        return SyntheticSource(*_generate(split, n, self.image_size, self.seed))
