"""Class weights for the loss from the training labels: median frequency balancing (Eigen & Fergus 2015, as SegNet
trains on CamVid). f(c) = pixels of class c / pixels of the training images that hold c; weight(c) = median(f) / f(c),
so a rare class weighs more and a class of median frequency weighs 1. A class absent from every training image gets
weight 0 (nothing to learn it from).

Counting reads every training label once; the result is cached by the data set's identity under ``cache_dir()``.
Torch-free."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ablate.core.files import atomic_write
from ablate.core.hashing import stable_hash
from ablate.data.base import DataSpec, Source

# the keys of a data set's config that change how its data is drawn or normalised, not which labels it has
NOT_LABELS = ("scale_min", "scale_max", "flip", "mean", "std", "num_workers", "crop_size", "val_split", "max_val")


def cache_dir() -> Path:
    """``$ABLATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ablate`` (``~/.cache/ablate``)."""
    if os.environ.get("ABLATE_CACHE_DIR"):
        return Path(os.environ["ABLATE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ablate"


def read_label(source: Source, index: int) -> np.ndarray:
    """One training label without decoding its image where the source can (folder data sets)."""
    items, reader = getattr(source, "items", None), getattr(source, "read_label", None)
    if items is not None and callable(reader):
        return reader(items[index][1])
    return source.read(index)[1]


def class_frequencies(source: Source, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels of each class, pixels of the images that hold each class), over every item of ``source``."""
    pixels = np.zeros(num_classes, np.int64)
    holding = np.zeros(num_classes, np.int64)
    for i in range(len(source)):
        label = read_label(source, i)
        counts = np.bincount(label.ravel(), minlength=256)[:num_classes]
        pixels += counts
        holding += np.where(counts > 0, label.size, 0)
    return pixels, holding


def median_frequency(pixels: np.ndarray, holding: np.ndarray) -> np.ndarray:
    """median(f) / f(c) for every class with pixels, 0 for the others."""
    present = pixels > 0
    freq = np.where(present, pixels / np.maximum(holding, 1), np.nan)
    median = np.nanmedian(freq)
    return np.where(present, median / np.where(present, freq, 1.0), 0.0)


def class_weights(spec: DataSpec, method: str) -> list[float] | None:
    """The loss's class weights for ``train.class_weights`` (None for ``none``), counted once per data set and then
    read from the cache."""
    if method == "none":
        return None
    if method != "median_frequency":
        raise ValueError(f"train.class_weights: unknown method '{method}'")
    identity = {k: v for k, v in spec.model_dump(mode="json").items() if k not in NOT_LABELS}
    path = cache_dir() / "class_weights" / f"{spec.name}-{stable_hash([identity, method], 16)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())["weights"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is counted again
    pixels, holding = class_frequencies(spec.source("train"), len(spec.classes))
    weights = median_frequency(pixels, holding).round(6).tolist()
    record = {"data": identity, "method": method, "classes": list(spec.classes), "pixels": pixels.tolist(),
              "image_pixels": holding.tolist(), "weights": weights}  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(record, indent=1))
    except OSError:
        pass  # no cache where the cache dir is read-only: counted again next time
    return weights
