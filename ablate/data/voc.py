"""PASCAL VOC 2012 with the SBD extra annotations (Hariharan et al.): 21 classes, borders 255 (ignored).

Splits: ``train`` / ``val`` (VOC's ImageSets/Segmentation lists) and ``trainaug``: VOC train + SBD train + SBD val,
minus VOC val (10,582 images with the full data sets), the training set of DeepLab v2/v3/v3+ and PSPNet.
Labels: VOC's palette PNGs (SegmentationClass, indices 0..20, 255 on object borders) where they exist, else SBD's
``cls/<id>.mat`` (``GTcls.Segmentation``, indices 0..20, no border label). Images: VOC's JPEGImages (SBD's images are
the same VOC photos).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import PositiveInt

from ablate.data.base import DATASETS, DataRootError, Source
from ablate.data.folder import FolderData, limit, read_index_png, read_list

CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC = "VOCdevkit/VOC2012"
SBD = "benchmark_RELEASE/dataset"
LAYOUT = (
    f"ROOT/{VOC}/{{JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/{{train,val}}.txt}} and, for "
    f"the trainaug split, ROOT/{SBD}/{{cls/*.mat, train.txt, val.txt}} (SBD)"
)


def read_sbd_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
        seg = np.asarray(mat["GTcls"].Segmentation)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line for the user
        raise DataRootError(f"data.root: {path}: not an SBD cls .mat (GTcls.Segmentation): {exc}") from None
    if seg.max(initial=0) > 20:
        raise DataRootError(f"data.root: {path}: SBD label {int(seg.max())} out of range 0..20")
    return seg.astype(np.uint8)


def read_label(source: Path) -> np.ndarray:
    if source.suffix == ".mat":
        return read_sbd_mat(source)
    label = read_index_png(source, "a VOC palette PNG")
    bad = (label > 20) & (label != 255)
    if bad.any():
        raise DataRootError(f"data.root: {source}: label values {sorted(set(label[bad].tolist()))} not in 0..20, 255")
    return label


def split_ids(root: Path, split: str) -> list[str]:
    lists = root / VOC / "ImageSets" / "Segmentation"
    if split != "trainaug":
        return read_list(lists / f"{split}.txt")
    val = set(read_list(lists / "val.txt"))
    ids = read_list(lists / "train.txt") + read_list(root / SBD / "train.txt") + read_list(root / SBD / "val.txt")
    return sorted(i for i in dict.fromkeys(ids) if i not in val)


@DATASETS.register
class VOCData(FolderData):
    """PASCAL VOC 2012 (+ SBD for ``trainaug``): 21 classes; DeepLab's crop 513."""

    name: Literal["voc"] = "voc"
    train_split: Literal["trainaug", "train", "val"] = "trainaug"
    val_split: Literal["val", "train"] = "val"
    crop_size: PositiveInt = 513

    classes: ClassVar[tuple[str, ...]] = CLASSES

    @classmethod
    def layout(cls) -> str:
        return LAYOUT

    def required(self, split: str) -> list[str]:
        need = [f"{VOC}/JPEGImages", f"{VOC}/SegmentationClass"]
        if split == "trainaug":
            need += [f"{VOC}/ImageSets/Segmentation/train.txt", f"{VOC}/ImageSets/Segmentation/val.txt"]
            return need + [f"{SBD}/cls", f"{SBD}/train.txt", f"{SBD}/val.txt"]
        return need + [f"{VOC}/ImageSets/Segmentation/{split}.txt"]

    def source(self, split: str) -> Source:
        name = self.split_name(split)
        root = self.checked_root((name,))
        items = []
        for i in limit(split_ids(root, name), self.limit_of(split)):
            png = root / VOC / "SegmentationClass" / f"{i}.png"
            if png.is_file():
                label = png
            elif name == "trainaug" and (root / SBD / "cls" / f"{i}.mat").is_file():
                label = root / SBD / "cls" / f"{i}.mat"
            else:
                raise DataRootError(f"data.root: '{root}': no label for image '{i}' of split {name} ({png})")
            items.append((root / VOC / "JPEGImages" / f"{i}.jpg", label))
        return self.folder_source(items, read_label)
