"""Cityscapes, gtFine: the 34 ``labelIds`` mapped to the 19 evaluation ("train") ids; everything else 255."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from ablate.data.base import DATASETS, Source
from ablate.data.folder import FolderData, limit, read_index_png

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



def read_label(source) -> np.ndarray:
    return LUT[read_index_png(source, "a gtFine labelIds PNG")]


@DATASETS.register
class CityscapesData(FolderData):
    """Cityscapes gtFine, 19 train ids; DeepLabv3's crop 769."""

    name: Literal["cityscapes"] = "cityscapes"
    train_split: Literal["train", "val"] = "train"
    val_split: Literal["val", "train"] = "val"
    crop_size: PositiveInt = 769

    classes: ClassVar[tuple[str, ...]] = CLASSES
    LAYOUT: ClassVar[str] = (
        "ROOT/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and "
        "ROOT/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png"
    )

    def required(self, split: str) -> list[str]:
        return [f"leftImg8bit/{split}", f"gtFine/{split}"]

    def source(self, split: str) -> Source:
        name = self.split_name(split)
        root = self.checked_root((name,))
        items = []
        for image in sorted((root / "leftImg8bit" / name).glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            items.append((image, root / "gtFine" / name / image.parent.name / f"{stem}_gtFine_labelIds.png"))
        return self.folder_source(limit(items, self.limit_of(split)), read_label)
