"""ADE20K SceneParsing (ADEChallengeData2016): 150 classes; annotation 0 ("other") -> 255 (ignored), k -> k - 1."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from ablate.data.base import DATASETS
from ablate.data.folder import PairedFiles, PairedFolderData

# objectInfo150 (first name of each class), in annotation order 1..150
CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
assert len(CLASSES) == 150

ADE = "ADEChallengeData2016"
LUT = np.full(256, 255, np.uint8)
LUT[1:151] = np.arange(150, dtype=np.uint8)


@DATASETS.register
class ADE20KData(PairedFolderData):
    """ADE20K SceneParsing (ADEChallengeData2016), 150 classes; PSPNet's crop 473."""

    name: Literal["ade20k"] = "ade20k"
    crop_size: PositiveInt = 473

    classes: ClassVar[tuple[str, ...]] = CLASSES
    FILES: ClassVar[PairedFiles] = PairedFiles(
        f"{ADE}/images",
        f"{ADE}/annotations",
        ".jpg",
        ".png",
        LUT,
        "an ADE20K annotation PNG",
        splits=("training", "validation"),
    )
