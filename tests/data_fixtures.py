"""Tiny data set folders in the exact on-disk formats of VOC 2012 + SBD, Cityscapes and ADE20K (40 x 60 images).

Each writer returns the labels it wrote (as the data set should read them back, in train ids) by image id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 40, 60


def voc_palette() -> list[int]:
    """The standard VOC colour map (bit-interleaved), 256 RGB triples."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _image(rng: np.random.Generator, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path, fmt)


def _boxes(rng: np.random.Generator, classes: list[int], border: int | None) -> np.ndarray:
    """Background 0 with one box per class; a one-pixel ``border`` ring around each box when given."""
    label = np.zeros((H, W), np.uint8)
    for k, c in enumerate(classes):
        y, x = 4 + 6 * k, 5 + 12 * k
        label[y : y + 12, x : x + 16] = c
        if border is not None:
            label[y - 1, x - 1 : x + 17] = border
            label[y + 12, x - 1 : x + 17] = border
            label[y - 1 : y + 13, x - 1] = border
            label[y - 1 : y + 13, x + 16] = border
    return label


def make_voc(root: Path, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """VOCdevkit/VOC2012 (palette PNGs, borders 255) + benchmark_RELEASE/dataset (SBD cls .mat, no borders).

    VOC train: a, b; VOC val: c, d; SBD train: b, e; SBD val: d, f. trainaug = VOC train + SBD - VOC val
    = a, b, e, f (b's label from VOC's PNG; e and f from SBD's .mat)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    ids = {k: f"2008_00000{i}" for i, k in enumerate("abcdef")}
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    (sets / "train.txt").write_text(f"{ids['a']}\n{ids['b']}\n")
    (sets / "val.txt").write_text(f"{ids['c']}\n{ids['d']}\n")
    (sbd / "train.txt").write_text(f"{ids['b']}\n{ids['e']}\n")
    (sbd / "val.txt").write_text(f"{ids['d']}\n{ids['f']}\n")
    out: dict[str, dict[str, np.ndarray]] = {"voc": {}, "sbd": {}}
    for k, i in ids.items():
        _image(rng, voc / "JPEGImages" / f"{i}.jpg", "JPEG")
        classes = [1 + (ord(k) - ord("a")) % 20, 15, 20]
        if k in "abcd":
            label = _boxes(rng, classes, border=255)
            png = Image.fromarray(label, mode="P")
            png.putpalette(voc_palette())
            (voc / "SegmentationClass").mkdir(exist_ok=True)
            png.save(voc / "SegmentationClass" / f"{i}.png")
            out["voc"][i] = label
        if k in "bdef":
            seg = _boxes(rng, classes[::-1], border=None)
            boundaries = np.zeros((H, W), np.uint8)
            savemat(
                sbd / "cls" / f"{i}.mat",
                {"GTcls": {"Segmentation": seg, "Boundaries": boundaries, "CategoriesPresent": np.unique(seg)[1:]}},
            )
            out["sbd"][i] = seg
    return out


def make_cityscapes(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """leftImg8bit/{train,val}/<city>/*_leftImg8bit.png + gtFine/.../*_gtFine_labelIds.png with raw labelIds."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, city, n in (("train", "aachen", 2), ("val", "frankfurt", 1)):
        for k in range(n):
            stem = f"{city}_{k:06d}_000019"
            _image(rng, root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", "PNG")
            label = np.zeros((H, W), np.uint8)  # 0 unlabeled
            for band, lid in enumerate([1, 4, 7, 8, 11, 24, 26, 33, 6, 30]):  # 6 ground, 30 trailer: not evaluated
                label[:, band * 6 : band * 6 + 6] = lid
            path = root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label, mode="L").save(path)
            out[f"{split}/{stem}"] = label
    return out


def make_ade20k(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """ADEChallengeData2016/images/{training,validation}/*.jpg + annotations/.../*.png (0 = other, 1..150)."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    out = {}
    for split, n in (("training", 2), ("validation", 1)):
        for k in range(n):
            stem = f"ADE_{split[:5]}_{k + 1:08d}"
            _image(rng, base / "images" / split / f"{stem}.jpg", "JPEG")
            label = np.zeros((H, W), np.uint8)
            label[:, 10:20] = 1
            label[:, 20:30] = 150
            label[:, 30:40] = 13
            path = base / "annotations" / split / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(label, mode="L").save(path)
            out[f"{split}/{stem}"] = label
    return out


def write_voc(root: Path, train: list[tuple[np.ndarray, np.ndarray]], val: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Given (RGB uint8, label uint8) pairs in the VOC 2012 layout (JPEGs, palette PNGs, split lists)."""
    voc = root / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    for folder in (voc / "JPEGImages", voc / "SegmentationClass", sets):
        folder.mkdir(parents=True, exist_ok=True)
    for split, pairs in (("train", train), ("val", val)):
        ids = [f"{split}_{i:04d}" for i in range(len(pairs))]
        (sets / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for i, (rgb, label) in zip(ids, pairs, strict=True):
            Image.fromarray(rgb).save(voc / "JPEGImages" / f"{i}.jpg", quality=95)
            png = Image.fromarray(label, mode="P")
            png.putpalette(voc_palette())
            png.save(voc / "SegmentationClass" / f"{i}.png")
