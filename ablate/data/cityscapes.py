"""Cityscapes, gtFine: the 34 ``labelIds`` mapped to the 19 evaluation ("train") ids; everything else 255."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from ablate.data.base import DATASETS
from ablate.data.folder import PairedFiles, PairedFolderData

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


@DATASETS.register
class CityscapesData(PairedFolderData):
    """Cityscapes gtFine, 19 train ids; DeepLabv3's crop 769."""

    name: Literal["cityscapes"] = "cityscapes"
    train_split: Literal["train", "val"] = "train"
    val_split: Literal["val", "train"] = "val"
    crop_size: PositiveInt = 769

    classes: ClassVar[tuple[str, ...]] = CLASSES
    FILES: ClassVar[PairedFiles] = PairedFiles(
        "leftImg8bit", "gtFine", "_leftImg8bit.png", "_gtFine_labelIds.png", LUT, "a gtFine labelIds PNG", sub="<city>/"
    )
