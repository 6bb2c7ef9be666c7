"""The papers' training augmentation, as pure functions of an RNG (numpy; torch-free).

Training (DeepLab v2/v3/v3+, PSPNet): random scale in [scale_min, scale_max] (bilinear image, nearest label),
pad to the crop size (image with the mean colour, i.e. 0 after normalisation; label with ``ignore_index``), random
crop, random left-right flip (normalisation: ``ablate.data.loader``). Every random number is drawn from the
``numpy.random.Generator`` passed in (made from the sampler's augmentation key), so a training's batches are a pure
function of (seed, step) and a resumed training is bit-identical.

Validation: no resizing (metrics are on the original pixels); the image is padded bottom/right to at least the
crop size (label padding = ignore), so equally sized images batch together (VOC: all fit in 513 x 513).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def random_scale(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Resize by a factor drawn uniformly from [lo, hi] (image bilinear, label nearest)."""
    s = float(rng.uniform(lo, hi))
    h, w = label.shape
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) == (h, w):
        return image, label
    img = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    lab = np.asarray(Image.fromarray(label).resize((nw, nh), Image.NEAREST))
    return img, lab


def pad_to(
    image: np.ndarray, label: np.ndarray, height: int, width: int, fill: tuple[int, int, int], ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to at least (height, width): image with ``fill`` (uint8 RGB), label with ``ignore_index``."""
    h, w = label.shape
    ph, pw = max(0, height - h), max(0, width - w)
    if ph == 0 and pw == 0:
        return image, label
    img = np.empty((h + ph, w + pw, 3), np.uint8)
    img[:] = np.asarray(fill, np.uint8)
    img[:h, :w] = image
    lab = np.full((h + ph, w + pw), ignore_index, np.uint8)
    lab[:h, :w] = label
    return img, lab


def random_crop(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    h, w = label.shape
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size], label[y : y + size, x : x + size]


def augment(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    crop: int,
    scale: tuple[float, float],
    flip: bool,
    mean: tuple[float, float, float],
    ignore_index: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale, pad, crop and flip one (H x W x 3 uint8, H x W uint8) pair; the draws are in a fixed order."""
    if scale != (1.0, 1.0):
        image, label = random_scale(image, label, rng, *scale)
    fill = tuple(int(round(255 * m)) for m in mean)
    image, label = pad_to(image, label, crop, crop, fill, ignore_index)
    image, label = random_crop(image, label, rng, crop)
    if flip and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)
