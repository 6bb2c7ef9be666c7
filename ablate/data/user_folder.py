"""``data.name: folder``: your own images and masks, in two folders under a root, paired by name, with the classes
given in the recipe (no code). Torch-free.

Layout (``images`` and ``masks`` name the two folders, ``mask_suffix`` what a mask's name adds to its image's)::

    ROOT/images/train/a.jpg   ROOT/masks/train/a.png      splits as sub-folders (the default), nested folders kept,
    ROOT/images/val/b.jpg     ROOT/masks/val/b.png        or
    ROOT/train.txt, ROOT/val.txt (``split_lists: "{split}.txt"``), a name per line relative to images/ (with or
    without its extension), and images/<name>.jpg, masks/<name>.png

Masks hold class ids (``mask_format: ids``, the default: 8- or 16-bit grey, palette indices, or grey RGB; value k is
class k, or ``mask_values`` maps values to classes) or colours (``mask_format: rgb``: ``colours`` gives each
class's colour). ``ignore_value`` (ids) or ``ignore_colour`` (rgb) marks pixels that are not scored; every other
value is an error. ``check()`` (the preflight, ``ablate data check``) reads every image header and every mask of
both splits, with a cache (``ablate.data.scan``), and stops at the first problem in one line naming the file:
an image without a mask or the reverse, two images of one name, an image and its mask of different sizes, or mask
values that are not a class."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from ablate.core.errors import did_you_mean
from ablate.core.text import plural
from ablate.data.base import DATASETS, IGNORE_INDEX, DataRootError, pascal_colour_map
from ablate.data.folder import FolderData, FolderSource, limit, read_list
from ablate.data.scan import (
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    MaskFormat,
    colour_code,
    colour_of,
    read_colour_codes,
    read_ids,
    scan,
)
from ablate.data.survey import SplitSurvey

Colour = tuple[int, int, int]  # RGB, 0-255
SHOWN = 8  # values or names an error lists before "..."


def _listed(values: Iterable[Any]) -> str:
    values = list(values)
    return ", ".join(str(v) for v in values[:SHOWN]) + (f", ... ({len(values)} in all)" if len(values) > SHOWN else "")


def _channels(colour: Colour) -> None:
    if not all(0 <= c <= 255 for c in colour):
        raise ValueError(f"{list(colour)}: an RGB colour has three values in 0..255")


def _more(n: int, one: str, many: str) -> str:
    """``; 1 more image has none`` after the first file an error names (empty when there is no other)."""
    return f"; {plural(n, 'more ' + one, 'more ' + many)}" if n else ""


class MaskMap:
    """How a mask's values (ids, or colours as 0xRRGGBB) become class ids: ``table`` maps each value a mask may hold
    to its class id, or to ``IGNORE_INDEX`` (not scored); any other value is an error naming the file."""

    def __init__(self, fmt: MaskFormat, table: dict[int, int], allowed: str):
        self.fmt, self.table, self.allowed = fmt, table, allowed
        self.keys = np.array(sorted(table), np.int64)
        self.ids = np.array([table[k] for k in self.keys.tolist()], np.uint8)

    def shown(self, value: int) -> str:
        return str(colour_of(value)).replace(" ", "") if self.fmt == "rgb" else str(value)

    def unknown(self, values: Iterable[int]) -> list[int]:
        return sorted(v for v in values if v not in self.table)

    def error(self, path: Path, bad: list[int], others: int = 0) -> DataRootError:
        what = "colour" if self.fmt == "rgb" else "value"
        which = (
            f"{what} {self.shown(bad[0])} is not a class"
            if len(bad) == 1
            else f"{what}s {_listed(self.shown(v) for v in bad)} are not classes"
        )
        return DataRootError(
            f"data.root: {path}: mask {which} ({self.allowed})"
            + _more(others, "mask has such values", "masks have such values")
        )

    def read(self, path: Path) -> np.ndarray:
        """The mask at ``path`` as class ids (uint8 H x W, ``IGNORE_INDEX`` where not scored)."""
        values = read_colour_codes(path) if self.fmt == "rgb" else read_ids(path)
        pos = np.minimum(np.searchsorted(self.keys, values), len(self.keys) - 1)
        known = self.keys[pos] == values
        if not known.all():
            raise self.error(path, sorted(set(values[~known].tolist())))
        return self.ids[pos]


@DATASETS.register
class UserFolderData(FolderData):
    """Your own images and masks: two folders under ``root``, paired by name, the classes named in the recipe."""

    name: Literal["folder"] = "folder"
    images: str = Field("images", description="folder under the root holding the images (jpg, png, bmp, tif, webp)")
    masks: str = Field("masks", description="folder under the root holding a mask (png, bmp, tif) per image")
    split_lists: str | None = Field(
        None,
        description="list file of a split under the root, e.g. '{split}.txt': a name per line, relative to the "
        "images folder; none: the splits are sub-folders, images/<split>/ and masks/<split>/",
    )
    mask_suffix: str = Field("", description="what a mask's name adds to its image's, e.g. '_mask'")
    classes: tuple[str, ...] = Field(
        min_length=2, max_length=IGNORE_INDEX, description="the class names, in class-id order"
    )
    mask_format: Literal["ids", "rgb"] = Field(
        "ids", description="ids: a mask value is a class id (or see mask_values); rgb: a mask colour is a class"
    )
    colours: list[Colour] | None = Field(
        None,
        validate_default=True,
        description="an RGB colour per class: the report's colours and, with mask_format rgb, the masks' (default: "
        "VOC's colour map)",
    )
    mask_values: dict[int, int | str] | None = Field(
        None, description="ids masks: mask value -> class (name or id), where the values are not the class ids"
    )
    ignore_value: int | None = Field(
        255, validate_default=True, description="ids masks: the mask value that is not scored (null: none)"
    )
    ignore_colour: Colour | None = Field(None, description="rgb masks: the mask colour that is not scored")
    crop_size: PositiveInt = 512

    @field_validator("classes")
    @classmethod
    def _distinct_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"class names must differ (each is a column of the per-class results): {repeated}")
        return names

    @field_validator("split_lists")
    @classmethod
    def _names_the_split(cls, pattern: str | None) -> str | None:
        try:
            if pattern is None or pattern.format(split="train") != pattern.format(split="val"):
                return pattern
        except (KeyError, IndexError, ValueError):
            pass
        raise ValueError(f"'{pattern}': a path under the root with '{{split}}' where the split's name goes, e.g. "
                         "'lists/{split}.txt'")  # fmt: skip

    @field_validator("colours", mode="after")
    @classmethod
    def _a_colour_per_class(cls, colours: list[Colour] | None, info: ValidationInfo) -> list[Colour] | None:
        rgb = info.data.get("mask_format") == "rgb"
        if colours is None:
            if rgb:
                raise ValueError("mask_format rgb needs colours: the colour of each class in the masks, in class order")
            return colours
        for colour in colours:
            _channels(colour)
        names = info.data.get("classes")
        if names is not None and len(colours) != len(names):
            raise ValueError(f"{len(colours)} colours for {len(names)} classes; give one per class, in class order")
        repeated = [c for i, c in enumerate(colours) if c in colours[:i]]
        if rgb and repeated:
            raise ValueError(f"two classes have the colour {list(repeated[0])}; in colour masks each needs its own")
        return colours

    @field_validator("mask_values")
    @classmethod
    def _values_name_classes(cls, values: dict[int, Any] | None, info: ValidationInfo) -> dict[int, Any] | None:
        if values is not None and info.data.get("mask_format") == "rgb":
            raise ValueError("mask_values goes with mask_format ids (colour masks are mapped by colours)")
        names = info.data.get("classes") or ()
        for value, target in (values or {}).items():
            if isinstance(target, str) and target not in names:
                raise ValueError(
                    f"{value}: '{target}' is not a class{did_you_mean(target, names)}; classes: {', '.join(names)}"
                )
            if isinstance(target, int) and not 0 <= target < len(names):
                raise ValueError(f"{value}: class id {target} is not in 0..{len(names) - 1}")
        return values

    @field_validator("ignore_value", mode="after")
    @classmethod
    def _not_a_class_value(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None or info.data.get("mask_format") != "ids" or "mask_values" not in info.data:
            return value
        values, names = info.data["mask_values"], info.data.get("classes") or ()
        if value in (values if values is not None else range(len(names))):
            raise ValueError(f"{value} is also a class's mask value; choose another value, or null for none")
        return value

    @field_validator("ignore_colour", mode="after")
    @classmethod
    def _not_a_class_colour(cls, colour: Colour | None, info: ValidationInfo) -> Colour | None:
        if colour is None:
            return colour
        if info.data.get("mask_format") != "rgb":
            raise ValueError("ignore_colour goes with mask_format rgb (class-id masks: ignore_value)")
        _channels(colour)
        if colour in (info.data.get("colours") or []):
            raise ValueError(f"{list(colour)} is also a class's colour (data.colours)")
        return colour

    @classmethod
    def layout(cls) -> str:
        return (
            "ROOT/<images>/<split>/<name>.<jpg|png|...> and ROOT/<masks>/<split>/<name><mask_suffix>.png, or with "
            "data.split_lists ROOT/<list of the split> naming images under ROOT/<images>/ (masks under ROOT/<masks>/)"
        )

    # ------------------------------------------------------------------------------------------------- classes
    def class_colours(self) -> np.ndarray:
        if self.colours is not None:
            return np.array(self.colours, np.uint8).reshape(-1, 3)
        return pascal_colour_map(len(self.classes))

    def mask_map(self) -> MaskMap:
        names = self.classes
        if self.mask_format == "rgb":
            table = {colour_code(c): k for k, c in enumerate(self.colours or [])}
            allowed = "not in data.colours"
            if self.ignore_colour is not None:
                table[colour_code(self.ignore_colour)] = IGNORE_INDEX
                allowed += f", nor data.ignore_colour {list(self.ignore_colour)}"
            return MaskMap("rgb", table, allowed)
        if self.mask_values is None:
            table = {k: k for k in range(len(names))}
            allowed = f"the classes are the values 0..{len(names) - 1}"
        else:
            table = {v: names.index(t) if isinstance(t, str) else t for v, t in self.mask_values.items()}
            allowed = f"data.mask_values maps {_listed(sorted(table))}"
        if self.ignore_value is not None:
            table[self.ignore_value] = IGNORE_INDEX
            allowed += f"; data.ignore_value {self.ignore_value} is ignored"
        return MaskMap("ids", table, allowed)

    # ------------------------------------------------------------------------------------------------- files
    def required(self, split: str) -> list[str]:
        if self.split_lists:
            return [self.split_lists.format(split=split), self.images, self.masks]
        return [f"{self.images}/{split}", f"{self.masks}/{split}"]

    def _files(self, folder: Path, suffixes: tuple[str, ...], strip: str = "") -> tuple[dict[str, Path], list[Path]]:
        """{name: file} of the files under ``folder`` with those suffixes, a name being the path below the folder
        without its suffix (and without ``strip`` at its end); and the files whose name does not end in ``strip``.
        Hidden files are skipped; two files of one name are an error."""
        found: dict[str, Path] = {}
        odd = []
        for path in sorted(folder.rglob("*")):
            if path.name.startswith(".") or path.suffix.lower() not in suffixes or not path.is_file():
                continue
            name = path.relative_to(folder).with_suffix("").as_posix()
            if strip:
                if not name.endswith(strip):
                    odd.append(path)
                    continue
                name = name.removesuffix(strip)
            if name in found:
                raise DataRootError(
                    f"data.root: {found[name]} and {path}: two files named '{name}' (keep one, or rename it)"
                )
            found[name] = path
        return found, odd

    def _mask_name(self, masks: Path, name: str) -> str:
        return f"{masks / name}{self.mask_suffix}.<{'|'.join(s[1:] for s in MASK_SUFFIXES)}>"

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        """(image, mask) of every image of the split folder or list ``split``, in name order (list order for a list).
        Raises ``DataRootError`` for a missing folder, an image without a mask or (sub-folder splits) a mask without
        an image, naming the first such file and how many more there are."""
        root = self.checked_root((split,))
        if self.split_lists:
            images_dir, masks_dir = root / self.images, root / self.masks
        else:
            images_dir, masks_dir = root / self.images / split, root / self.masks / split
        images, _ = self._files(images_dir, IMAGE_SUFFIXES)
        masks, odd = self._files(masks_dir, MASK_SUFFIXES, self.mask_suffix)
        if self.split_lists:
            listed = root / self.split_lists.format(split=split)
            names = list(dict.fromkeys(self._listed_name(n) for n in read_list(listed)))
            absent = [n for n in names if n not in images]
            if absent:
                raise DataRootError(
                    f"data.root: {listed}: '{absent[0]}' has no image under {images_dir}"
                    + _more(len(absent) - 1, "listed name has none", "listed names have none")
                )
            if not names:
                raise DataRootError(f"data.root: {listed}: the list names no image")
        else:
            names = list(images)
            strays = odd + [masks[n] for n in masks if n not in images]
            if strays:
                need = f"{images_dir}/{self._stem(strays[0], masks_dir)}.<{'|'.join(s[1:] for s in IMAGE_SUFFIXES)}>"
                raise DataRootError(
                    f"data.root: {strays[0]}: a mask without an image (no {need})"
                    + _more(len(strays) - 1, "mask has none", "masks have none")
                )
            if not names:
                raise DataRootError(f"data.root: {images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        missing = [n for n in names if n not in masks]
        if missing:
            raise DataRootError(
                f"data.root: {images[missing[0]]}: no mask (no {self._mask_name(masks_dir, missing[0])})"
                + _more(len(missing) - 1, "image has none", "images have none")
            )
        return [(images[n], masks[n]) for n in names]

    def _stem(self, mask: Path, masks_dir: Path) -> str:
        return mask.relative_to(masks_dir).with_suffix("").as_posix().removesuffix(self.mask_suffix)

    @staticmethod
    def _listed_name(entry: str) -> str:
        path = Path(entry)
        return path.with_suffix("").as_posix() if path.suffix.lower() in IMAGE_SUFFIXES else path.as_posix()

    def source(self, split: str) -> FolderSource:
        items = limit(self.pairs(self.split_name(split)), self.limit_of(split))
        return self.folder_source(items, self.mask_map().read)

    # ------------------------------------------------------------------------------------------------- checks
    def survey(self) -> list[SplitSurvey]:
        """Every split the recipe uses, checked (see the module doc): its images, their sizes and its class
        pixels. Raises ``DataRootError`` (one line, naming the file) at the first problem."""
        mapping, k = self.mask_map(), len(self.classes)
        roles = {"train": self.split_name("train"), "val": self.split_name("val")}
        pairs = {role: limit(self.pairs(name), self.limit_of(role)) for role, name in roles.items()}
        out = []
        for role, name in roles.items():
            images, masks = [p[0] for p in pairs[role]], [p[1] for p in pairs[role]]
            sizes, infos = scan(self.resolve_root(), images, masks, mapping.fmt)
            unequal = [i for i, (s, m) in enumerate(zip(sizes, infos, strict=True)) if s != m.size]
            if unequal:
                i = unequal[0]
                (w, h), (mw, mh) = sizes[i], infos[i].size
                raise DataRootError(
                    f"data.root: {images[i]}: image is {w}x{h} px but its mask {masks[i]} is {mw}x{mh} (width x "
                    f"height)" + _more(len(unequal) - 1, "pair differs", "pairs differ")
                )
            bad = [i for i, m in enumerate(infos) if mapping.unknown(m.counts)]
            if bad:
                raise mapping.error(masks[bad[0]], mapping.unknown(infos[bad[0]].counts), len(bad) - 1)
            pixels = np.zeros(IGNORE_INDEX + 1, np.int64)
            for info in infos:
                for value, n in info.counts.items():
                    pixels[mapping.table[value]] += n
            folder = self.split_lists.format(split=name) if self.split_lists else f"{self.images}/{name}"
            out.append(SplitSurvey(role, folder, len(images), Counter(sizes), pixels[:k], int(pixels[IGNORE_INDEX])))
        return out

    def check(self) -> None:
        self.survey()
