"""What every data set is: a typed ``data:`` section that names its classes, reads its images and labels as numpy
arrays (``source(split)``), checks its files (``check``) and carries its normalisation and training augmentation.

A data set file (one per data set, next to this one) holds a ``DataSpec`` subclass with a ``name`` literal,
registered by ``@DATASETS.register`` and named in ``ablate/data/__init__.py``. Torch-free: ``ablate.data.loader``
turns a spec into torch datasets."""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from ablate.core.errors import ConfigError
from ablate.core.registry import Registry
from ablate.core.schema import Strict

IGNORE_INDEX = 255
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Split = Literal["train", "val"]


def pascal_colour_map(n: int) -> np.ndarray:
    """n x 3 uint8: PASCAL VOC's colour map (the colours of VOC's palette PNGs), the three lowest bits of a class
    index going to the highest bits of R, G and B, the next three to the next bits, and so on."""
    index = np.arange(n)
    rgb = np.zeros((n, 3), np.uint8)
    for level in range(8):
        for channel in range(3):
            rgb[:, channel] |= (((index >> (3 * level + channel)) & 1) << (7 - level)).astype(np.uint8)
    return rgb


class DataRootError(ConfigError):
    """A data set root that is missing or does not hold the expected folders (one line, with the layout)."""


class Source(Protocol):
    """The raw items of one split: ``read(i)`` is (RGB uint8 H x W x 3, label uint8 H x W)."""

    def __len__(self) -> int: ...

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


class DataSpec(Strict):
    """Training augmentation as in the papers: random scale in [scale_min, scale_max], pad + random crop of
    ``crop_size``, random left-right flip; then ``(rgb / 255 - mean) / std``. Validation images are not resized;
    they are padded bottom/right to at least the crop size (labels with ``ignore_index``)."""

    name: str
    scale_min: float = Field(default=0.5, gt=0)
    scale_max: float = Field(default=2.0, gt=0)
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_workers: int = Field(default=0, ge=0)

    # ``classes``, the class names in class-id order, read on an instance (``spec.classes``): a ClassVar of a data
    # set with fixed classes, a field of one whose recipe names them (``folder``); not declared here, so that such a
    # field does not shadow a ClassVar
    ignore_index: ClassVar[int] = IGNORE_INDEX  # the class id of unscored pixels, in every data set's labels
    # the colours (RGB 0-255) the data set draws its classes in, in class order; () : VOC's colour map
    palette: ClassVar[tuple[tuple[int, int, int], ...]] = ()

    @model_validator(mode="after")
    def _scale_order(self) -> DataSpec:
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} > scale_max {self.scale_max}")
        return self

    def class_colours(self) -> np.ndarray:
        """len(classes) x 3 uint8: the data set's own palette, else VOC's colour map (distinct for any class count)."""
        return np.array(self.palette, np.uint8).reshape(-1, 3) if self.palette else pascal_colour_map(len(self.classes))

    def check(self) -> None:
        """Raise ``DataRootError`` (one line) when the data cannot be read; nothing to check by default."""

    def splits(self) -> tuple[str, ...]:
        """The splits this data set has (what ``eval.split`` may name)."""
        return ("train", "val")

    def eval_split(self) -> str:
        """The split evaluation reads by default: the one training validates on."""
        return "val"

    def for_eval(self, split: str) -> DataSpec:
        """This data set with ``split`` in the validation role (what ``eval.split`` evaluates)."""
        if split != self.eval_split():
            raise ConfigError(
                f"eval.split: '{split}' is not a split data set '{self.name}' evaluates; allowed: {self.eval_split()}"
            )
        return self

    def source(self, split: Split) -> Source:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def crop(self) -> int:  # pragma: no cover - abstract
        """The side of training crops, and the least side validation images are padded to."""
        raise NotImplementedError


DATASETS: Registry = Registry("data set")
