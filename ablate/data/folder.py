"""Real data sets read from a local root folder (nothing is downloaded): the root, the layout check, and the readers
of images, palette/index PNGs and split lists. Torch-free (``ablate plan`` and the preflight use it).

A root comes from the recipe (``data.root``) or, when that is not given, from ``ABLATE_<NAME>_ROOT``, else
``$ABLATE_DATA_ROOT/<name>``, else, for a data set ``ablate data fetch`` can download, where that command puts it
(``data_home()/<name>``). A missing or malformed root raises ``DataRootError``: one line with the layout that was
expected."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from ablate.core.errors import ConfigError
from ablate.data.base import DataRootError, DataSpec
from ablate.data.fetch import Download


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


def data_home() -> Path:
    """Where ``ablate data fetch`` puts a data set by default: ``$ABLATE_DATA_ROOT``, else
    ``$XDG_DATA_HOME/ablate`` (``~/.local/share/ablate``)."""
    if os.environ.get("ABLATE_DATA_ROOT"):
        return Path(os.environ["ABLATE_DATA_ROOT"])
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "ablate"


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
    """A data set under a root folder. Subclasses give ``layout()`` (the expected layout, for errors),
    ``required(split)`` (paths the root must hold for that split) and ``source``."""

    root: str | None = None
    crop_size: PositiveInt = 513
    train_split: str = "train"
    val_split: str = "val"
    max_train: PositiveInt | None = None  # first N training images only (smoke tests, reduced runs)
    max_val: PositiveInt | None = None  # first N validation images only

    # where ``ablate data fetch <name>`` downloads this data set from (None: it cannot); its default root is where
    # that command puts it
    download: ClassVar[Download | None] = None

    @classmethod
    def layout(cls) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def crop(self) -> int:
        return self.crop_size

    def splits(self) -> tuple[str, ...]:
        splits = type(self).model_fields["val_split"].annotation
        return tuple(dict.fromkeys((*typing.get_args(splits), self.train_split, self.val_split)))

    def eval_split(self) -> str:
        return self.val_split

    def for_eval(self, split: str) -> FolderData:
        if split not in self.splits():
            allowed = ", ".join(self.splits())
            raise ConfigError(f"eval.split: '{split}' is not a split of data set '{self.name}'; allowed: {allowed}")
        return self if split == self.val_split else self.model_copy(update={"val_split": split})

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
        if os.environ.get("ABLATE_DATA_ROOT") or self.download is not None:
            return data_home() / self.name
        raise DataRootError(
            f"data.root: no root folder for data set '{self.name}': set data.root in the recipe (or --set "
            f"data.root=PATH), or the environment variable {var} (or ABLATE_DATA_ROOT, which holds {self.name}/); "
            f"expected layout: {self.layout()}"
        )

    def checked_root(self, splits: tuple[str, ...]) -> Path:
        """The root, after checking it holds what ``splits`` need; raises ``DataRootError`` naming the first
        missing path and the layout."""
        path = self.resolve_root()
        if not path.is_dir():
            fetch = f"; download it with 'ablate data fetch {self.name} {path}'" if self.download else ""
            raise DataRootError(
                f"data.root: '{path}' is not a folder (data set '{self.name}'){fetch}; expected layout: {self.layout()}"
            )
        need = list(dict.fromkeys(p for split in splits for p in self.required(split)))
        for rel in need:
            if not (path / rel).exists():
                raise DataRootError(
                    f"data.root: '{path}' has no {rel} (data set '{self.name}', splits {', '.join(splits)}); "
                    f"expected layout: {self.layout()}"
                )
        return path

    def check(self) -> None:
        self.checked_root((self.train_split, self.val_split))

    def folder_source(self, items: list[tuple[Path, Any]], read_label: Any) -> FolderSource:
        if not items:
            raise DataRootError(f"data.root: no images found for data set '{self.name}' (root {self.resolve_root()})")
        return FolderSource(items, read_label)


@dataclass(frozen=True)
class PairedFiles:
    """Where a data set keeps each image and its label: ROOT/``images``/<split>/``sub``<name>``image_suffix`` and
    ROOT/``labels``/<split>/``sub``<name>``label_suffix``, an index PNG (``kind``, for errors) mapped to train ids
    by ``lut``; <split> is one of ``splits`` (training's default first, evaluation's second). The layout that errors
    print, the allowed splits, the image glob and each label's path all come from this one record."""

    images: str
    labels: str
    image_suffix: str
    label_suffix: str
    lut: np.ndarray  # 256 -> train id (255: ignored)
    kind: str
    sub: str = ""  # a folder level between the split and the files, e.g. "<city>/"
    splits: tuple[str, ...] = ("train", "val")

    def layout(self) -> str:
        where = f"{{{','.join(self.splits)}}}/{self.sub}<name>"
        return f"ROOT/{self.images}/{where}{self.image_suffix} and ROOT/{self.labels}/{where}{self.label_suffix}"

    def label_of(self, image: Path, images: Path, labels: Path) -> Path:
        """The label file of ``image`` (found under the split folder ``images``) under the split folder ``labels``."""
        stem = image.name.removesuffix(self.image_suffix)
        return labels / image.parent.relative_to(images) / f"{stem}{self.label_suffix}"


class PairedFolderData(FolderData):
    """A data set whose split folders hold the images and, beside them, one index label PNG per image, as its
    ``FILES`` record says, which also names the split folders that ``train_split`` and ``val_split`` may pick."""

    FILES: ClassVar[PairedFiles]
    train_split: str | None = Field(
        None, validate_default=True, description="split folder (default: the layout's first)"
    )
    val_split: str | None = Field(
        None, validate_default=True, description="split folder (default: the layout's second)"
    )

    @field_validator("train_split", "val_split", mode="before")
    @classmethod
    def a_split_of_the_layout(cls, value: Any, info: ValidationInfo) -> Any:
        splits = cls.FILES.splits
        if value is None:
            return splits[0] if info.field_name == "train_split" else splits[1]
        if value not in splits:
            raise ValueError(f"'{value}' is not a split folder of this data set; allowed: {', '.join(splits)}")
        return value

    @classmethod
    def layout(cls) -> str:
        return cls.FILES.layout()

    def splits(self) -> tuple[str, ...]:
        return self.FILES.splits

    def required(self, split: str) -> list[str]:
        return [f"{self.FILES.images}/{split}", f"{self.FILES.labels}/{split}"]

    def read_label(self, source: Path) -> np.ndarray:
        return self.FILES.lut[read_index_png(source, self.FILES.kind)]

    def source(self, split: str) -> FolderSource:
        name = self.split_name(split)
        root = self.checked_root((name,))
        images, labels = root / self.FILES.images / name, root / self.FILES.labels / name
        glob = f"{'*/' if self.FILES.sub else ''}*{self.FILES.image_suffix}"
        items = [(image, self.FILES.label_of(image, images, labels)) for image in sorted(images.glob(glob))]
        return self.folder_source(limit(items, self.limit_of(split)), self.read_label)
