"""Real data sets read from a local root folder (nothing is downloaded): the root, the layout check, and the readers
of images, palette/index PNGs and split lists. Torch-free (``ablate plan`` and the preflight use it).

A root comes from the recipe (``data.root``) or, when that is not given, from ``ABLATE_<NAME>_ROOT``, else
``$ABLATE_DATA_ROOT/<name>``. A missing or malformed root raises ``DataRootError``: one line with the layout that was
expected."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import PositiveInt

from ablate.data.base import DataRootError, DataSpec


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


def read_list(path: Path) -> list[str]:
    """Image ids of a split file (first token of each non-empty line)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def limit(items: list, n: int | None) -> list:
    return items if not n else items[:n]


@dataclass
class FolderSource:
    """(image file, label source) pairs; ``read_label`` turns a label source into train ids."""

    items: list[tuple[Path, Any]]
    read_label: Any

    def __len__(self) -> int:
        return len(self.items)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path, source = self.items[index]
        image, label = read_rgb(path), self.read_label(source)
        if image.shape[:2] != label.shape:
            raise DataRootError(f"data.root: {path}: image is {image.shape[:2]} but its label is {label.shape}")
        return image, label


class FolderData(DataSpec):
    """A data set under a root folder. Subclasses give ``LAYOUT`` (the expected layout, for errors),
    ``required(split)`` (paths the root must hold for that split) and ``source``."""

    root: str | None = None
    crop_size: PositiveInt = 513
    train_split: str = "train"
    val_split: str = "val"
    max_train: PositiveInt | None = None  # first N training images only (smoke tests, reduced runs)
    max_val: PositiveInt | None = None  # first N validation images only

    LAYOUT: ClassVar[str] = ""

    @property
    def crop(self) -> int:
        return self.crop_size

    def required(self, split: str) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def split_name(self, split: str) -> str:
        return self.train_split if split == "train" else self.val_split

    def limit_of(self, split: str) -> int | None:
        return self.max_train if split == "train" else self.max_val

    def resolve_root(self) -> Path:
        if self.root:
            return Path(os.path.expandvars(os.path.expanduser(self.root)))
        var = f"ABLATE_{self.name.upper()}_ROOT"
        if os.environ.get(var):
            return Path(os.environ[var])
        if os.environ.get("ABLATE_DATA_ROOT"):
            return Path(os.environ["ABLATE_DATA_ROOT"]) / self.name
        raise DataRootError(
            f"data.root: no root folder for data set '{self.name}': set data.root in the recipe (or --set "
            f"data.root=PATH), or the environment variable {var} (or ABLATE_DATA_ROOT, which holds {self.name}/); "
            f"expected layout: {self.LAYOUT}"
        )

    def checked_root(self, splits: tuple[str, ...]) -> Path:
        """The root, after checking it holds what ``splits`` need; raises ``DataRootError`` naming the first
        missing path and the layout."""
        path = self.resolve_root()
        if not path.is_dir():
            raise DataRootError(
                f"data.root: '{path}' is not a folder (data set '{self.name}'); expected layout: {self.LAYOUT}"
            )
        need = list(dict.fromkeys(p for split in splits for p in self.required(split)))
        for rel in need:
            if not (path / rel).exists():
                raise DataRootError(
                    f"data.root: '{path}' has no {rel} (data set '{self.name}', splits {', '.join(splits)}); "
                    f"expected layout: {self.LAYOUT}"
                )
        return path

    def check(self) -> None:
        self.checked_root((self.train_split, self.val_split))

    def folder_source(self, items: list[tuple[Path, Any]], read_label: Any) -> FolderSource:
        if not items:
            raise DataRootError(f"data.root: no images found for data set '{self.name}' (root {self.resolve_root()})")
        return FolderSource(items, read_label)


class PairedFolderData(FolderData):
    """A data set whose split folders hold the images (``IMAGES``/<split>/``IMAGE_GLOB``) and, beside them, one
    index label PNG per image (``LABELS``/<split>/``label_name(image)``), mapped to train ids by ``LUT``."""

    IMAGES: ClassVar[str] = ""
    LABELS: ClassVar[str] = ""
    IMAGE_GLOB: ClassVar[str] = "*.png"
    LUT: ClassVar[Any] = None  # 256 -> train id (255: ignored)
    LABEL_KIND: ClassVar[str] = "an index PNG"

    def label_name(self, image: Path) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def required(self, split: str) -> list[str]:
        return [f"{self.IMAGES}/{split}", f"{self.LABELS}/{split}"]

    def read_label(self, source: Path) -> np.ndarray:
        return self.LUT[read_index_png(source, self.LABEL_KIND)]

    def source(self, split: str) -> FolderSource:
        name = self.split_name(split)
        root = self.checked_root((name,))
        images = sorted((root / self.IMAGES / name).glob(self.IMAGE_GLOB))
        labels = root / self.LABELS / name
        items = [(image, labels / image.parent.relative_to(root / self.IMAGES / name) / self.label_name(image))
                 for image in images]  # fmt: skip
        return self.folder_source(limit(items, self.limit_of(split)), self.read_label)
