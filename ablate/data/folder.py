"""Base class of the real data sets: a list of (image file, label source) pairs read from a root folder.

``ds[i]`` is the item without augmentation (validation: padded bottom/right to at least the crop size, label
padding = ignore); ``ds[(i, key)]`` draws the papers' augmentation from ``numpy.random.default_rng(key)`` (see
``ablate.data.sampling`` and ``ablate.data.transforms``). ``ds.rgb(i)`` is the uint8 H x W x 3 RGB image exactly
aligned with ``ds[i]`` (same padding), for post-processing such as the dense CRF; ``ds.denormalize`` maps
normalised tensors back to RGB in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ablate.data import transforms as T
from ablate.data.layout import DataRootError

IGNORE_INDEX = 255


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_index_png(path: Path, what: str) -> np.ndarray:
    """A label PNG holding class indices: palette ('P', VOC) or grey ('L', Cityscapes/ADE20K)."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise DataRootError(
                f"data.root: {path}: label PNG has mode {im.mode}, expected {what} (palette or 8-bit indices, "
                "not colour-coded RGB)"
            )
        return np.asarray(im)


class FolderSegmentation(Dataset):
    """Items: ``self.items`` = list of (image path, label source); subclasses implement ``read_label``."""

    classes: tuple[str, ...] = ()
    ignore_index = IGNORE_INDEX

    def __init__(self, items: list[tuple[Path, Any]], cfg: Any, augment: bool):
        if not items:
            raise DataRootError(f"data.root: no images found for data set '{cfg.name}' ({self.describe(cfg)})")
        self.items = items
        self.augment = augment
        self.crop = cfg.crop_size
        self.scale = (cfg.scale_min, cfg.scale_max)
        self.flip = cfg.flip
        self.mean = tuple(cfg.mean)
        self.std = tuple(cfg.std)

    @staticmethod
    def describe(cfg: Any) -> str:
        return f"root {cfg.root or '(from the environment)'}"

    def __len__(self) -> int:
        return len(self.items)

    def read_label(self, source: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (RGB uint8 H x W x 3, train-id label uint8 H x W) pair of item ``index``."""
        path, source = self.items[index]
        image, label = read_rgb(path), self.read_label(source)
        if image.shape[:2] != label.shape:
            raise DataRootError(f"data.root: {path}: image is {image.shape[:2]} but its label is {label.shape}")
        return image, label

    def _padded(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.load(index)
        fill = tuple(int(round(255 * m)) for m in self.mean)
        return T.pad_to(image, label, self.crop, self.crop, fill, self.ignore_index)

    def rgb(self, index: int) -> np.ndarray:
        """uint8 H x W x 3 RGB of ``ds[index]`` (un-augmented, same padding), e.g. for the dense CRF."""
        return self._padded(index)[0]

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        return T.denormalize(images, self.mean, self.std)

    def __getitem__(self, item: int | tuple[int, tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        index, key = item if isinstance(item, tuple) else (item, None)
        if self.augment and key is not None:
            image, label = self.load(index)
            rng = np.random.default_rng(key)
            image, label = T.augment(image, label, rng, self.crop, self.scale, self.flip, self.mean, self.ignore_index)
        else:
            image, label = self._padded(index)
        return T.to_tensors(image, label, self.mean, self.std)


def read_list(path: Path) -> list[str]:
    """Image ids of a split file (first token of each non-empty line)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def limit(items: list, n: int | None) -> list:
    return items if not n else items[:n]
