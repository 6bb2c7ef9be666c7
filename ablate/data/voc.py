"""PASCAL VOC 2012 with the SBD extra annotations (Hariharan et al.): 21 classes, borders 255 (ignored).

Splits: ``train`` / ``val`` (VOC's ImageSets/Segmentation lists) and ``trainaug``: VOC train + SBD train + SBD val,
minus VOC val (10,582 images with the full data sets), the training set of DeepLab v2/v3/v3+ and PSPNet.
Labels: VOC's palette PNGs (SegmentationClass, indices 0..20, 255 on object borders) where they exist, else SBD's
``cls/<id>.mat`` (``GTcls.Segmentation``, indices 0..20, no border label). Images: VOC's JPEGImages (SBD's images are
the same VOC photos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ablate.data.folder import FolderSegmentation, limit, read_index_png, read_list
from ablate.data.layout import DataRootError, check_root

CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


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


def split_ids(root: Path, split: str) -> list[str]:
    voc = root / "VOCdevkit" / "VOC2012"
    if split != "trainaug":
        return read_list(voc / "ImageSets" / "Segmentation" / f"{split}.txt")
    val = set(read_list(voc / "ImageSets" / "Segmentation" / "val.txt"))
    sbd = root / "benchmark_RELEASE" / "dataset"
    ids = read_list(voc / "ImageSets" / "Segmentation" / "train.txt")
    ids += read_list(sbd / "train.txt") + read_list(sbd / "val.txt")
    return sorted(i for i in dict.fromkeys(ids) if i not in val)


class VOCSegmentation(FolderSegmentation):
    classes = CLASSES

    def __init__(self, cfg: Any, split: str, augment: bool, max_items: int | None = None):
        root = check_root("voc", cfg.root, (split,))
        voc = root / "VOCdevkit" / "VOC2012"
        sbd = root / "benchmark_RELEASE" / "dataset" / "cls"
        items = []
        for i in limit(split_ids(root, split), max_items):
            png = voc / "SegmentationClass" / f"{i}.png"
            if png.is_file():
                source = png
            elif split == "trainaug" and (sbd / f"{i}.mat").is_file():
                source = sbd / f"{i}.mat"
            else:
                raise DataRootError(f"data.root: '{root}': no label for image '{i}' of split {split} ({png})")
            items.append((voc / "JPEGImages" / f"{i}.jpg", source))
        super().__init__(items, cfg, augment)

    def read_label(self, source: Path) -> np.ndarray:
        if source.suffix == ".mat":
            return read_sbd_mat(source)
        label = read_index_png(source, "a VOC palette PNG")
        bad = (label > 20) & (label != 255)
        if bad.any():
            values = sorted(set(label[bad].tolist()))
            raise DataRootError(f"data.root: {source}: label values {values} not in 0..20, 255")
        return label
