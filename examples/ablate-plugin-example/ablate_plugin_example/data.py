"""The ``bars`` data set: generated scenes of long thin bars on a noisy background, each bar labelled by its
orientation (1 horizontal, 2 vertical). A pure function of (seed, split, index); numpy only, no files."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, PositiveInt

from ablate.data.base import DATASETS, DataSpec

_SPLITS = {"train": 0, "val": 1}


def make_bars(seed: int, split: str, index: int, size: int, bars: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 size x size x 3, label uint8 size x size) of one scene."""
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    image = rng.normal(0.5, 0.08, (size, size, 3))
    label = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, bars + 1))):
        at = int(rng.integers(0, size - width))
        start, stop = sorted(int(v) for v in rng.integers(0, size, 2))
        stop = max(stop, start + size // 2)  # long: half the image at least
        grey = rng.uniform(0.1, 0.9)
        if rng.random() < 0.5:
            image[at : at + width, start:stop], label[at : at + width, start:stop] = grey, 1
        else:
            image[start:stop, at : at + width], label[start:stop, at : at + width] = grey, 2
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), label


class BarsSource:
    def __init__(self, spec: BarsData, split: str, n: int):
        self.spec, self.split, self.n = spec, split, n

    def __len__(self) -> int:
        return self.n

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.spec
        return make_bars(s.seed, self.split, index, s.image_size, s.bars, s.width)


@DATASETS.register
class BarsData(DataSpec):
    """Generated long thin bars labelled by orientation (horizontal, vertical): no files."""

    name: Literal["bars"] = "bars"
    image_size: int = Field(default=64, ge=16, le=512)
    num_train: PositiveInt = 64
    num_val: PositiveInt = 16
    seed: int = 0
    bars: PositiveInt = Field(default=4, description="bars per image, at most")
    width: PositiveInt = Field(default=3, description="px")
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    classes: ClassVar[tuple[str, ...]] = ("background", "horizontal", "vertical")

    @property
    def crop(self) -> int:
        return self.image_size

    def source(self, split: str) -> BarsSource:
        return BarsSource(self, split, self.num_train if split == "train" else self.num_val)
