"""The ``folder`` data set (the user's own images and masks) on tiny generated folders: pairing, class-id and colour
masks, both ways of giving splits, each bad case as one line naming the file, ``ablate data check`` and a training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

from ablate.cli import app
from ablate.config.schema import Recipe
from ablate.data.base import DataRootError
from ablate.data.loader import build_datasets
from ablate.data.user_folder import UserFolderData

H, W = 32, 48
CLASSES = ["background", "leaf", "lesion"]
COLOURS = [(0, 0, 0), (0, 160, 0), (200, 30, 30)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))  # never the user's ~/.cache


def _ids(seed: int, border: bool = True) -> np.ndarray:
    """Background 0, a leaf box (1) with a lesion box (2) inside it, a 255 ring around the leaf."""
    rng = np.random.default_rng(seed)
    y, x = int(rng.integers(2, 10)), int(rng.integers(2, 20))
    label = np.zeros((H, W), np.uint8)
    if border:
        label[y - 1 : y + 19, x - 1 : x + 23] = 255
    label[y : y + 18, x : x + 22] = 1
    label[y + 4 : y + 10, x + 5 : x + 12] = 2
    return label


def _write_image(path: Path, seed: int, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _write_mask(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label).save(path)


def make_folder(root: Path, counts: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """root/images/<split>/<name>.{jpg,png} and root/masks/<split>/<name>.png (8-bit class ids, 255 ignored);
    returns {split/name: label}."""
    written = {}
    for split, n in (counts or {"train": 3, "val": 2}).items():
        for i in range(n):
            name, seed = f"{split}_{i}", 10 * len(written) + i
            suffix = ".png" if i % 2 else ".jpg"
            _write_image(root / "images" / split / f"{name}{suffix}", seed)
            written[f"{split}/{name}"] = _ids(seed)
            _write_mask(root / "masks" / split / f"{name}.png", written[f"{split}/{name}"])
    return written


def spec(root: Path, **changes) -> UserFolderData:
    return UserFolderData.model_validate({"root": str(root), "classes": CLASSES, "crop_size": 64, **changes})


def labels_of(ds) -> list[np.ndarray]:
    return [ds[i][1].numpy()[:H, :W] for i in range(len(ds))]


def test_pairs_by_name_and_reads_class_ids(tmp_path):
    written = make_folder(tmp_path)
    data = build_datasets(spec(tmp_path))
    assert data.classes == tuple(CLASSES) and data.ignore_index == 255
    assert [(p.name, m.name) for p, m in data.train.items] == [
        ("train_0.jpg", "train_0.png"), ("train_1.png", "train_1.png"), ("train_2.jpg", "train_2.png")
    ]  # fmt: skip
    for name, label in zip(["train_0", "train_1", "train_2"], labels_of(data.train), strict=True):
        np.testing.assert_array_equal(label, written[f"train/{name}"])
    for name, label in zip(["val_0", "val_1"], labels_of(data.val), strict=True):
        np.testing.assert_array_equal(label, written[f"val/{name}"])
    image, label = data.val[0]
    assert image.shape == (3, 64, 64) and (label[H:] == 255).all()  # padded to the crop with ignored labels


def test_mask_values_map_and_other_mask_modes(tmp_path):
    """Values 0/128/200 mapped by mask_values (7 ignored); the same labels as palette, 16-bit and grey RGB PNGs."""
    label = _ids(1, border=False)
    raw = np.choose(label, [0, 128, 200]).astype(np.uint8)
    raw[:2] = 7
    expected = label.copy()
    expected[:2] = 255
    _write_image(tmp_path / "images" / "train" / "a.jpg", 0)
    _write_image(tmp_path / "images" / "val" / "a.jpg", 1)
    for split in ("train", "val"):
        (tmp_path / "masks" / split).mkdir(parents=True)
    Image.fromarray(raw).convert("P").save(tmp_path / "masks" / "train" / "a.png")  # palette indices, as VOC's
    Image.fromarray(np.repeat(raw[..., None], 3, axis=2)).save(tmp_path / "masks" / "val" / "a.png")  # grey RGB
    values = {0: "background", 128: "leaf", 200: 2}
    data = build_datasets(spec(tmp_path, mask_values=values, ignore_value=7))
    assert Image.open(tmp_path / "masks" / "train" / "a.png").mode == "P"
    np.testing.assert_array_equal(labels_of(data.train)[0], expected)
    np.testing.assert_array_equal(labels_of(data.val)[0], expected)
    Image.fromarray(raw.astype(np.uint16) * 300).save(tmp_path / "masks" / "val" / "a.png")  # 16-bit values
    wide = {0: "background", 128 * 300: "leaf", 200 * 300: "lesion"}
    data = build_datasets(spec(tmp_path, mask_values=wide, ignore_value=7 * 300))
    assert Image.open(tmp_path / "masks" / "val" / "a.png").mode.startswith("I")
    np.testing.assert_array_equal(labels_of(data.val)[0], expected)


def test_colour_masks(tmp_path):
    label = _ids(2)
    rgb = np.zeros((H, W, 3), np.uint8)
    for k, colour in enumerate(COLOURS):
        rgb[label == k] = colour
    rgb[label == 255] = (255, 255, 255)
    for split in ("train", "val"):
        _write_image(tmp_path / "images" / split / "a.png", 3)
        _write_mask(tmp_path / "masks" / split / "a_mask.png", rgb)
    s = spec(tmp_path, mask_format="rgb", colours=COLOURS, ignore_colour=[255, 255, 255], mask_suffix="_mask")
    s.check()
    data = build_datasets(s)
    np.testing.assert_array_equal(labels_of(data.train)[0], label)
    np.testing.assert_array_equal(s.class_colours(), np.array(COLOURS, np.uint8))
    rgb[0, 0] = (1, 2, 3)
    _write_mask(tmp_path / "masks" / "val" / "a_mask.png", rgb)
    mask = tmp_path / "masks" / "val" / "a_mask.png"
    with pytest.raises(DataRootError) as err:
        s.check()
    assert str(err.value) == (
        f"data.root: {mask}: mask colour (1,2,3) is not a class (not in data.colours, nor data.ignore_colour "
        "[255, 255, 255])"
    )
    with pytest.raises(DataRootError, match=r"mask colour \(1,2,3\) is not a class"):
        build_datasets(s).val[0]  # a file changed after the check is caught when it is read
    with pytest.raises(DataRootError, match="mask is colour .RGB., but data.mask_format is ids"):
        spec(tmp_path, mask_suffix="_mask").check()


def test_list_file_splits(tmp_path):
    """split_lists: names with or without their extension, in nested folders; images not listed are not read."""
    for i, name in enumerate(["a/x", "a/y", "b/z", "w"]):
        _write_image(tmp_path / "images" / f"{name}.jpg", i)
        _write_mask(tmp_path / "masks" / f"{name}.png", np.full((H, W), i % 3, np.uint8))
    _write_image(tmp_path / "images" / "unlisted.jpg", 9)  # no mask, not listed: not an error
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.txt").write_text("a/x.jpg\nb/z\n\nw\n")
    (tmp_path / "lists" / "val.txt").write_text("a/y\n")
    s = spec(tmp_path, split_lists="lists/{split}.txt")
    data = build_datasets(s)
    assert [p.relative_to(tmp_path / "images").as_posix() for p, _ in data.train.items] == [
        "a/x.jpg",
        "b/z.jpg",
        "w.jpg",
    ]
    assert [int(lab[0, 0]) for lab in labels_of(data.train)] == [0, 2, 0] and len(data.val) == 1
    (tmp_path / "lists" / "val.txt").write_text("a/y\nmissing\n")
    with pytest.raises(DataRootError) as err:
        s.check()
    assert (
        str(err.value)
        == f"data.root: {tmp_path / 'lists' / 'val.txt'}: 'missing' has no image under {tmp_path / 'images'}"
    )
    with pytest.raises(DataRootError, match="has no lists/test.txt"):
        spec(tmp_path, split_lists="lists/{split}.txt", val_split="test").check()


def _bad(tmp_path: Path, **changes) -> str:
    with pytest.raises(DataRootError) as err:
        spec(tmp_path, **changes).check()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_each_bad_case_is_one_line_naming_the_file(tmp_path):
    make_folder(tmp_path, {"train": 3, "val": 2})
    spec(tmp_path).check()
    images, masks = tmp_path / "images", tmp_path / "masks"
    # an image without a mask
    (masks / "train" / "train_1.png").rename(tmp_path / "aside.png")
    assert _bad(tmp_path) == (
        f"data.root: {images / 'train' / 'train_1.png'}: no mask (no {masks / 'train' / 'train_1'}.<png|bmp|tif|tiff>)"
    )
    # a mask without an image
    (tmp_path / "aside.png").rename(masks / "train" / "train_1.png")
    (images / "val" / "val_0.jpg").unlink()
    message = _bad(tmp_path)
    assert message.startswith(
        f"data.root: {masks / 'val' / 'val_0.png'}: a mask without an image (no {images / 'val'}/val_0.<jpg|"
    )
    _write_image(images / "val" / "val_0.jpg", 0)
    # two images of one name
    _write_image(images / "val" / "val_0.png", 0)
    assert _bad(tmp_path) == (
        f"data.root: {images / 'val' / 'val_0.jpg'} and {images / 'val' / 'val_0.png'}: two files named 'val_0' (keep "
        "one, or rename it)"
    )
    (images / "val" / "val_0.png").unlink()
    # an image and its mask of different sizes
    _write_image(images / "train" / "train_2.jpg", 0, size=(H, W + 2))
    assert _bad(tmp_path) == (
        f"data.root: {images / 'train' / 'train_2.jpg'}: image is 50x32 px but its mask "
        f"{masks / 'train' / 'train_2.png'} is 48x32 (width x height)"
    )
    _write_image(images / "train" / "train_2.jpg", 0)
    # mask values that are not a class (and not the ignored value); the other bad masks are counted
    for name in ("train_0", "train_2"):
        label = _ids(0)
        label[0, :3] = [3, 7, 3]
        _write_mask(masks / "train" / f"{name}.png", label)
    assert _bad(tmp_path) == (
        f"data.root: {masks / 'train' / 'train_0.png'}: mask values 3, 7 are not classes (the classes are the values "
        "0..2; data.ignore_value 255 is ignored); 1 more mask has such values"
    )
    assert "mask values 3, 7, 255 are not classes" in _bad(tmp_path, ignore_value=None)
    # an unreadable mask
    (masks / "train" / "train_0.png").write_bytes(b"not a png")
    assert _bad(tmp_path).startswith(f"data.root: {masks / 'train' / 'train_0.png'}: cannot be read as an image")


def test_recipe_keys_are_checked_on_load():
    def error(**data) -> str:
        with pytest.raises(ValidationError) as err:
            Recipe.model_validate({"data": {"name": "folder", **data}})
        return str(err.value)

    assert "classes" in error() and "Field required" in error()
    assert "'laef' is not a class (did you mean 'leaf'?)" in error(classes=CLASSES, mask_values={0: "laef"})
    assert "mask_format rgb needs colours" in error(classes=CLASSES, mask_format="rgb")
    assert "2 colours for 3 classes" in error(classes=CLASSES, colours=COLOURS[:2])
    assert "1 is also a class's mask value" in error(classes=CLASSES, ignore_value=1)
    assert "class names must differ" in error(classes=["a", "a"])
    assert "three values in 0..255" in error(classes=CLASSES, colours=[(0, 0, 0), (0, 0, 0), (0, 0, 256)])
    assert "with '{split}' where the split's name goes" in error(classes=CLASSES, split_lists="lists/train.txt")
    assert "with '{split}' where the split's name goes" in error(classes=CLASSES, split_lists="{name}.txt")


def test_the_check_reads_each_mask_once_until_it_changes(tmp_path):
    """The mask check is cached by (path, mtime, size): a mask rewritten with the same size and mtime is not read
    again; a new mtime is."""
    make_folder(tmp_path, {"train": 2, "val": 1})
    bmp = tmp_path / "masks" / "val" / "val_0.bmp"  # BMP: the same size in bytes whatever the values
    (tmp_path / "masks" / "val" / "val_0.png").unlink()
    _write_mask(bmp, _ids(5))
    spec(tmp_path).check()
    assert len(json.loads(next((tmp_path / "cache" / "data-check").glob("*.json")).read_text())["entries"]) == 6
    stat = bmp.stat()
    bad = _ids(5)
    bad[0, 0] = 9
    _write_mask(bmp, bad)
    assert bmp.stat().st_size == stat.st_size
    os.utime(bmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    spec(tmp_path).check()  # from the cache
    os.utime(bmp, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert "mask value 9 is not a class" in _bad(tmp_path)


def _recipe(tmp_path: Path, root: Path, **data) -> Path:
    text = {
        "data": {"name": "folder", "root": str(root), "classes": CLASSES, "crop_size": 32, **data},
        "model": {"backbone": "test_resnet", "head": {"name": "aspp", "rates": [2], "channels": 8},
                  "decoder": {"enabled": False}},
        "train": {"steps": 2, "batch_size": 2, "accelerator": "cpu", "log_every": 1},
        "eval": {"batch_size": 2, "trimap": [2]},
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(text))
    return path


def test_data_check_prints_counts_shares_and_sizes(tmp_path):
    root = tmp_path / "leaves"
    written = make_folder(root, {"train": 3, "val": 2})
    _write_image(root / "images" / "val" / "val_1.png", 1, size=(H + 4, W))
    big = np.zeros((H + 4, W), np.uint8)
    big[:H] = written["val/val_1"]
    _write_mask(root / "masks" / "val" / "val_1.png", big)
    written["val/val_1"] = big
    result = CliRunner().invoke(app, ["data", "check", str(_recipe(tmp_path, root))], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "data set folder at" in out and "3 classes; checked, no problems" in out
    assert "│ train │ images/train │      3 │ 48x32 (3)" in out
    assert "│ val   │ images/val   │      2 │ 48x32 (1), 48x36 (1)" in out
    for k, name in enumerate([*CLASSES, "(ignored)"]):
        value = 255 if k == 3 else k
        shares = []
        for split in ("train", "val"):
            labels = [v for key, v in written.items() if key.startswith(split)]
            total = sum(lab.size for lab in labels)
            shares.append(f"{100 * sum(int((lab == value).sum()) for lab in labels) / total:.2f}")
        assert f"│ {name:<10} │ {shares[0]:>5} │ {shares[1]:>5} │" in out, (name, shares, out)
    # a bad mask: one line naming the recipe and the file, exit 2
    _write_mask(root / "masks" / "train" / "train_1.png", np.full((H, W), 4, np.uint8))
    result = CliRunner().invoke(app, ["data", "check", str(_recipe(tmp_path, root))], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'recipe.yaml'}: data.root: {root}/masks/train/")
    assert "train_1.png: mask value 4 is not a class" in lines[0]


def test_a_study_trains_on_the_folder_set(tmp_path):
    """Two training steps and the evaluation on a generated folder, through the study engine in this process."""
    from tests_helpers import Quiet, run_study

    root = tmp_path / "leaves"
    make_folder(root, {"train": 4, "val": 2})
    _recipe(tmp_path, root)
    study = tmp_path / "study.yaml"
    study.write_text("name: mine\nrecipe: recipe.yaml\naxes: {model.output_stride: [16]}\n")
    summary = run_study(study, tmp_path / "results", "ablate.train.job:run_job", Quiet())
    assert len(summary.done) == 1 and not summary.failed
    record = json.loads(next((tmp_path / "results" / "mine" / "runs").glob("*/metrics.json")).read_text())
    assert record["status"] == "done" and record["steps"] == 2
    assert list(record["per_class_iou"]) == CLASSES and record["classes"] == CLASSES
    assert record["comparable"]["data"] == "folder"


def test_a_study_checks_each_of_its_data_sets_and_the_preflight_names_the_file(tmp_path):
    from ablate.core.errors import ConfigError
    from ablate.study.grid import expand
    from ablate.study.load import load_study
    from ablate.train.preflight import preflight

    root = tmp_path / "leaves"
    make_folder(root, {"train": 2, "val": 1})
    _recipe(tmp_path, root)
    study = tmp_path / "study.yaml"
    study.write_text("name: mine\nrecipe: recipe.yaml\naxes: {data.crop_size: [32, 48]}\n")
    result = CliRunner().invoke(app, ["data", "check", str(study)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.count("3 classes; checked, no problems") == 2  # two data configurations
    _write_mask(root / "masks" / "val" / "val_0.png", np.full((H, W), 3, np.uint8))
    loaded = load_study(study)
    with pytest.raises(ConfigError) as err:
        preflight((r.config for r in expand(loaded)), loaded.source_of)
    assert str(err.value) == (
        f"{loaded.recipe_path}: data.root: {root / 'masks' / 'val' / 'val_0.png'}: mask value 3 is not a class (the "
        "classes are the values 0..2; data.ignore_value 255 is ignored)"
    )


def test_data_check_imports_no_torch(tmp_path):
    root = tmp_path / "leaves"
    make_folder(root, {"train": 1, "val": 1})
    code = (
        "import sys; from typer.testing import CliRunner; from ablate.cli import app; "
        f"r = CliRunner().invoke(app, ['data', 'check', {str(_recipe(tmp_path, root))!r}]); print(r.output); "
        "assert r.exit_code == 0; assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {**os.environ, "ABLATE_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "checked, no problems" in out.stdout


def test_a_study_switches_to_the_folder_set_with_its_keys_beside_the_name(tmp_path, tiny_study):
    """``data.name: folder`` in a study's ``set:`` (or ``--set``) needs ``data.classes`` set beside it: the keys are
    checked one by one, and a required key that the same block sets is not missing."""
    from ablate.core.errors import ConfigError
    from ablate.study.load import load_study

    root = tmp_path / "leaves"
    make_folder(root, {"train": 2, "val": 1})
    study = tiny_study(
        f"name: s\nrecipe: recipe.yaml\nset: {{data.name: folder, data.root: {root}, data.classes: {CLASSES}, "
        "data.crop_size: 32}\naxes: {model.output_stride: [16]}\n"
    )
    assert load_study(study).recipe["data"]["classes"] == CLASSES
    result = CliRunner().invoke(app, ["data", "check", str(study)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "3 classes; checked, no problems" in result.output, result.output
    alone = tiny_study("name: s\nrecipe: recipe.yaml\nset: {data.name: folder}\naxes: {model.output_stride: [16]}\n")
    with pytest.raises(ConfigError, match=r"set.data.name: required key is missing \(recipe key data.classes\)"):
        load_study(alone)
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "recipe.yaml"), "--set", "data.name=folder"])
    assert (
        result.exit_code == 2 and "--set data.name: required key is missing (recipe key data.classes)" in result.output
    )
