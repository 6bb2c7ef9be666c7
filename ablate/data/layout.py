"""Where the real data sets live on disk and what their folders must hold. Torch-free (``ablate plan`` and the
CLI's preflight use it before anything heavy is imported).

A data set's root comes from the recipe (``data.root``) or, when that is not given, from an environment variable:
``ABLATE_VOC_ROOT`` / ``ABLATE_CITYSCAPES_ROOT`` / ``ABLATE_ADE20K_ROOT``, else ``$ABLATE_DATA_ROOT/<voc|cityscapes|
ade20k>``. A missing or malformed root raises ``DataRootError`` (a ``ConfigError``): one line with the folder
layout that was expected.
"""

from __future__ import annotations

import os
from pathlib import Path

from ablate.errors import ConfigError


class DataRootError(ConfigError):
    """A data set root that is missing or does not hold the expected folders (one line, with the layout)."""


ENV = {"voc": "ABLATE_VOC_ROOT", "cityscapes": "ABLATE_CITYSCAPES_ROOT", "ade20k": "ABLATE_ADE20K_ROOT"}

# what each root must contain (checked in this order; the first one missing is reported)
LAYOUT = {
    "voc": (
        "ROOT/VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/{train,val}.txt} "
        "and, for the trainaug split, ROOT/benchmark_RELEASE/dataset/{cls/*.mat, train.txt, val.txt} (SBD)"
    ),
    "cityscapes": (
        "ROOT/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and "
        "ROOT/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png"
    ),
    "ade20k": (
        "ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg and "
        "ROOT/ADEChallengeData2016/annotations/{training,validation}/*.png"
    ),
}


def required_paths(name: str, splits: tuple[str, ...]) -> list[str]:
    """Relative paths (folders or files) a root must hold to serve ``splits`` of data set ``name``."""
    if name == "voc":
        voc = "VOCdevkit/VOC2012"
        need = [f"{voc}/JPEGImages", f"{voc}/SegmentationClass"]
        for split in splits:
            if split == "trainaug":
                need += [f"{voc}/ImageSets/Segmentation/train.txt", f"{voc}/ImageSets/Segmentation/val.txt"]
                need += ["benchmark_RELEASE/dataset/cls", "benchmark_RELEASE/dataset/train.txt"]
                need += ["benchmark_RELEASE/dataset/val.txt"]
            else:
                need.append(f"{voc}/ImageSets/Segmentation/{split}.txt")
        return list(dict.fromkeys(need))
    if name == "cityscapes":
        return [p for s in splits for p in (f"leftImg8bit/{s}", f"gtFine/{s}")]
    if name == "ade20k":
        base = "ADEChallengeData2016"
        return [p for s in splits for p in (f"{base}/images/{s}", f"{base}/annotations/{s}")]
    raise ValueError(name)


def resolve_root(name: str, root: str | None) -> Path:
    """The root folder of data set ``name``: ``root`` if given, else the environment (see the module doc)."""
    if root:
        return Path(os.path.expandvars(os.path.expanduser(root)))
    env = os.environ.get(ENV[name])
    if env:
        return Path(env)
    common = os.environ.get("ABLATE_DATA_ROOT")
    if common:
        return Path(common) / name
    raise DataRootError(
        f"data.root: no root folder for data set '{name}': set data.root in the recipe (or --set data.root=PATH), "
        f"or the environment variable {ENV[name]} (or ABLATE_DATA_ROOT, which holds {name}/); expected layout: "
        f"{LAYOUT[name]}"
    )


def check_root(name: str, root: str | None, splits: tuple[str, ...]) -> Path:
    """Resolve and check a root; raises ``DataRootError`` naming the first missing path and the layout."""
    path = resolve_root(name, root)
    if not path.is_dir():
        raise DataRootError(f"data.root: '{path}' is not a folder (data set '{name}'); expected layout: {LAYOUT[name]}")
    for rel in required_paths(name, splits):
        if not (path / rel).exists():
            raise DataRootError(
                f"data.root: '{path}' has no {rel} (data set '{name}', splits {', '.join(splits)}); "
                f"expected layout: {LAYOUT[name]}"
            )
    return path


def check_data(cfg) -> Path | None:
    """Check a recipe's ``data:`` config (the CLI's preflight, before anything trains): the root of a real data set
    and the folders its splits need. Raises ``DataRootError``; nothing to check for the synthetic set."""
    if cfg.name == "synthetic":
        return None
    return check_root(cfg.name, cfg.root, (cfg.train_split, cfg.val_split))
