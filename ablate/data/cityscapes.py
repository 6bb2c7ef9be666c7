"""Cityscapes, gtFine: the 34 ``labelIds`` mapped to the 19 evaluation ("train") ids; everything else 255."""

from __future__ import annotations

from typing import Any

import numpy as np

from ablate.data.folder import FolderSegmentation, limit, read_index_png
from ablate.data.layout import check_root

CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# labelId -> trainId of the 19 evaluated classes (cityscapesScripts labels.py); all other ids -> 255
LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
                  27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
LUT = np.full(256, 255, np.uint8)
for _label, _train in LABEL_TO_TRAIN.items():
    LUT[_label] = _train


class CityscapesSegmentation(FolderSegmentation):
    classes = CLASSES

    def __init__(self, cfg: Any, split: str, augment: bool, max_items: int | None = None):
        root = check_root("cityscapes", cfg.root, (split,))
        items = []
        for image in sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            items.append((image, root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"))
        super().__init__(limit(items, max_items), cfg, augment)

    def read_label(self, source) -> np.ndarray:
        return LUT[read_index_png(source, "a gtFine labelIds PNG")]
