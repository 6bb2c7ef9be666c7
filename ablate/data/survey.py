"""What a data set holds, split by split: how many images, their sizes and the pixels of each class, for
``ablate data check``. A data set with a faster way to know (``folder``: image headers and cached mask histograms)
gives it as ``survey()``; any other is read item by item through its ``source``. Torch-free."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ablate.data.base import IGNORE_INDEX, DataSpec


@dataclass
class SplitSurvey:
    """One split: ``role`` (train or val), ``name`` (its folder, list or split name), ``count`` images, ``sizes``
    ((width, height) -> images), ``pixels`` per class (class-id order) and ``ignored`` pixels."""

    role: str
    name: str
    count: int
    sizes: Counter
    pixels: np.ndarray
    ignored: int

    def shares(self) -> list[float]:
        """Each class's share of all pixels (%), then the ignored pixels' share: they add up to 100."""
        total = int(self.pixels.sum()) + self.ignored
        return [100 * int(n) / total if total else 0.0 for n in [*self.pixels.tolist(), self.ignored]]


def survey(spec: DataSpec) -> list[SplitSurvey]:
    """The train and val splits of ``spec``, after its ``check()``. Raises ``DataRootError`` (one line)."""
    own = getattr(spec, "survey", None)
    if own is not None:
        return own()
    spec.check()
    k = len(spec.classes)
    out = []
    for role in ("train", "val"):
        source = spec.source(role)
        sizes: Counter = Counter()
        pixels = np.zeros(IGNORE_INDEX + 1, np.int64)
        for i in range(len(source)):
            image, label = source.read(i)
            sizes[(image.shape[1], image.shape[0])] += 1
            pixels += np.bincount(label.ravel(), minlength=IGNORE_INDEX + 1)[: IGNORE_INDEX + 1]
        name = getattr(spec, "split_name", lambda r: r)(role)
        out.append(SplitSurvey(role, str(name), len(source), sizes, pixels[:k], int(pixels[k:].sum())))
    return out
