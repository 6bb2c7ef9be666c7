"""Cityscapes, gtFine: the 34 ``labelIds`` mapped to the 19 evaluation ("train") ids; everything else 255."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from ablate.data.base import DATASETS
from ablate.data.folder import PairedFiles, PairedFolderData

# The 19 evaluated classes in train-id order: (name, labelId, colour), from cityscapesScripts' labels.py; every
# other labelId -> 255
LABELS = (
    ("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)), ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)), ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)), ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)), ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)),
)  # fmt: skip
LUT = np.full(256, 255, np.uint8)
LUT[[label for _, label, _ in LABELS]] = np.arange(len(LABELS), dtype=np.uint8)


@DATASETS.register
class CityscapesData(PairedFolderData):
    """Cityscapes gtFine, 19 train ids; DeepLabv3's crop 769."""

    name: Literal["cityscapes"] = "cityscapes"
    crop_size: PositiveInt = 769

    classes: ClassVar[tuple[str, ...]] = tuple(name for name, _, _ in LABELS)
    palette: ClassVar = tuple(colour for _, _, colour in LABELS)
    FILES: ClassVar[PairedFiles] = PairedFiles(
        "leftImg8bit",
        "gtFine",
        "_leftImg8bit.png",
        "_gtFine_labelIds.png",
        LUT,
        "a gtFine labelIds PNG",
        sub="<city>/",
        splits=("train", "val"),
    )
