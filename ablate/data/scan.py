"""What checking a folder of images and masks reads: each image's size (its header only, no decode) and each mask's
size and value histogram (one decode), on a few threads (PIL decodes without the GIL), cached by (path, mtime,
size). Checking a large folder thus costs one full read of its masks, and a stat of each file after that.

The cache is one JSON file per data root under ``$ABLATE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/ablate``, else
``~/.cache/ablate``), in ``data-check/``: never inside the user's data folder, which may be read-only or shared. A
file whose mtime or size changed is read again; a cache that cannot be read or written only costs the speed.
Torch-free."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ablate.core.files import atomic_write
from ablate.data.base import DataRootError

MaskFormat = Literal["ids", "rgb"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")  # lossless only: a JPEG mask has values no class has
MAX_COLOURS = 1 << 16  # a colour mask with more colours than this is a photo or a JPEG, not a label map
CACHE_VERSION = 1


def colour_code(rgb: Sequence[int]) -> int:
    """An RGB colour as one integer, 0xRRGGBB (how colour masks' values are counted and looked up)."""
    return (int(rgb[0]) << 16) | (int(rgb[1]) << 8) | int(rgb[2])


def colour_of(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataRootError(f"data.root: {path}: cannot be read as an image ({exc})") from None


def read_ids(path: Path) -> np.ndarray:
    """A mask whose values are class ids (or values ``mask_values`` maps): 8-bit grey or palette (the palette index,
    as VOC's), 16-bit grey, 1-bit (0/1), or an RGB(A) mask that is grey (R = G = B) as image editors often save it.
    H x W integers."""
    with _open(path) as im:
        try:
            if im.mode in ("L", "P", "I", "1") or im.mode.startswith("I;16"):
                values = np.asarray(im)
                return values.astype(np.uint8) if values.dtype == bool else values
            if im.mode in ("RGB", "RGBA", "LA"):
                rgb = np.asarray(im)
                if im.mode == "LA" or ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                    return rgb[..., 0]
                raise DataRootError(
                    f"data.root: {path}: mask is colour ({im.mode}), but data.mask_format is ids: set "
                    "data.mask_format: rgb with a colour per class (data.colours), or save the masks as 8-bit "
                    "class ids"
                )
        except OSError as exc:  # a truncated file decodes only here
            raise DataRootError(f"data.root: {path}: cannot be read as an image ({exc})") from None
        raise DataRootError(f"data.root: {path}: mask has mode {im.mode}; expected 8- or 16-bit class ids or RGB")


def read_colour_codes(path: Path) -> np.ndarray:
    """A colour mask (any mode, as RGB) as H x W 0xRRGGBB codes."""
    with _open(path) as im:
        try:
            rgb = np.asarray(im.convert("RGB")).astype(np.uint32)
        except OSError as exc:
            raise DataRootError(f"data.root: {path}: cannot be read as an image ({exc})") from None
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _histogram(path: Path, fmt: MaskFormat) -> tuple[tuple[int, int], dict[int, int]]:
    if fmt == "rgb":
        with _open(path) as im:
            try:
                colours = im.convert("RGB").getcolors(MAX_COLOURS)  # counted in C, no array
            except OSError as exc:
                raise DataRootError(f"data.root: {path}: cannot be read as an image ({exc})") from None
            if colours is None:
                raise DataRootError(
                    f"data.root: {path}: mask has more than {MAX_COLOURS} colours: not a label mask (a photo, or a "
                    "mask saved as JPEG?)"
                )
            return im.size, {colour_code(rgb): n for n, rgb in colours}
    values = read_ids(path)
    if values.dtype in (np.uint8, np.uint16):
        counts = np.bincount(values.ravel())
        found = np.flatnonzero(counts)
        return (values.shape[1], values.shape[0]), dict(zip(found.tolist(), counts[found].tolist(), strict=True))
    found, counts = np.unique(values, return_counts=True)
    return (values.shape[1], values.shape[0]), dict(zip(found.tolist(), counts.tolist(), strict=True))


def _header_size(path: Path) -> tuple[int, int]:
    with _open(path) as im:
        return im.size


@dataclass(frozen=True)
class MaskInfo:
    """A mask's size (width, height) and pixels per value (class id, or 0xRRGGBB for a colour mask)."""

    size: tuple[int, int]
    counts: dict[int, int]


def cache_dir() -> Path:
    if os.environ.get("ABLATE_CACHE_DIR"):
        return Path(os.environ["ABLATE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ablate"


class ScanCache:
    """(what, path) -> the value read, valid while the file's mtime and size are those it was read at."""

    def __init__(self, root: Path):
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        self.path = cache_dir() / "data-check" / f"{key}.json"
        self.changed = False
        try:
            data = json.loads(self.path.read_text())
            self.entries: dict[str, list] = data["entries"] if data.get("version") == CACHE_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError):
            self.entries = {}

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_mtime_ns, st.st_size]

    def get(self, what: str, path: Path) -> object | None:
        entry = self.entries.get(f"{what}:{path}")
        if entry is None:
            return None
        try:
            return entry[2] if entry[:2] == self._stamp(path) else None
        except OSError:
            return None

    def put(self, what: str, path: Path, value: object) -> None:
        self.entries[f"{what}:{path}"] = [*self._stamp(path), value]
        self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"version": CACHE_VERSION, "entries": self.entries}))
        except OSError:
            pass  # the next check reads the files again
        self.changed = False


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _cached_map(cache: ScanCache, what: str, paths: Sequence[Path], read: Callable[[Path], object]) -> list:
    """``read(path)`` of every path, from the cache where it holds the file as it is now, else read on threads."""
    out: list = [cache.get(what, p) for p in paths]
    todo = [i for i, value in enumerate(out) if value is None]
    if todo:
        with ThreadPoolExecutor(_threads()) as pool:
            for i, value in zip(todo, pool.map(read, [paths[i] for i in todo]), strict=True):
                out[i] = value
                cache.put(what, paths[i], value)
    return out


def scan(root: Path, images: Sequence[Path], masks: Sequence[Path], fmt: MaskFormat) -> tuple[list, list[MaskInfo]]:
    """(each image's (width, height), each mask's ``MaskInfo``). Raises ``DataRootError`` naming an unreadable
    file (or, for ids masks, a colour one)."""
    cache = ScanCache(root)
    try:
        sizes = [tuple(s) for s in _cached_map(cache, "size", images, lambda p: list(_header_size(p)))]
        read = _cached_map(cache, f"mask-{fmt}", masks, lambda p: _entry(*_histogram(p, fmt)))
    finally:
        cache.save()  # what was read before an error stays read
    return sizes, [MaskInfo(tuple(e[0]), {int(v): n for v, n in e[1]}) for e in read]


def _entry(size: tuple[int, int], counts: dict[int, int]) -> list:
    return [list(size), [[v, n] for v, n in counts.items()]]  # JSON: lists, not tuples or int keys
