"""The real data sets read back from tiny fixture folders in their exact on-disk formats (no downloads)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from data_fixtures import H, W, make_ade20k, make_cityscapes, make_voc, voc_palette
from pydantic import ValidationError

from ablate.config.schema import Recipe
from ablate.core.schema import describe_fields
from ablate.data import DATASETS
from ablate.data.ade20k import ADE20KData
from ablate.data.base import DataRootError
from ablate.data.cityscapes import CityscapesData
from ablate.data.loader import build_datasets
from ablate.data.voc import VOCData

CROP = 64


def _label(ds, i) -> np.ndarray:
    return ds[i][1].numpy()


def test_voc_val_and_trainaug(tmp_path):
    written = make_voc(tmp_path)
    data = build_datasets(VOCData(root=str(tmp_path), crop_size=CROP))
    assert len(data.classes) == 21 and data.classes[15] == "person" and data.ignore_index == 255
    # val: VOC's palette PNGs read back as indices, borders 255, padded to the crop with 255
    assert [p.stem for p, _ in data.val.items] == ["2008_000002", "2008_000003"]
    for i, (path, _) in enumerate(data.val.items):
        image, label = data.val[i]
        assert image.shape == (3, CROP, CROP) and label.dtype == torch.long
        lab = label.numpy()
        np.testing.assert_array_equal(lab[:H, :W], written["voc"][path.stem])
        assert (lab[H:, :] == 255).all() and (lab[:, W:] == 255).all()
        assert {0, 15, 20, 255} <= set(np.unique(lab).tolist())
    # trainaug = VOC train + SBD train + SBD val - VOC val; VOC's PNG where it exists, else SBD's .mat
    ids = [p.stem for p, _ in data.train.items]
    assert ids == ["2008_000000", "2008_000001", "2008_000004", "2008_000005"]
    sources = {p.stem: s.suffix for p, s in data.train.items}
    assert sources == {"2008_000000": ".png", "2008_000001": ".png", "2008_000004": ".mat", "2008_000005": ".mat"}
    for i, (path, _) in enumerate(data.train.items):
        expected = written["voc"].get(path.stem, written["sbd"].get(path.stem))
        np.testing.assert_array_equal(_label(data.train, i)[:H, :W], expected)
    sbd = _label(data.train, 2)[:H, :W]
    assert 255 not in sbd and set(np.unique(sbd).tolist()) == {0, 5, 15, 20}


def test_voc_augmentation_is_a_function_of_the_key(tmp_path):
    make_voc(tmp_path)
    data = build_datasets(VOCData(root=str(tmp_path), crop_size=48))
    a1, l1 = data.train[(0, (0, 3, 1))]
    a2, l2 = data.train[(0, (0, 3, 1))]
    assert a1.shape == (3, 48, 48) and l1.shape == (48, 48)
    assert torch.equal(a1, a2) and torch.equal(l1, l2)
    others = [data.train[(0, (0, s, 0))][1] for s in range(6)]
    assert any(not torch.equal(l1, o) for o in others)
    for _, lab in [data.train[(i, (1, 2, i))] for i in range(4)]:
        assert set(np.unique(lab.numpy()).tolist()) <= set(range(21)) | {255}
    # no augmentation without a key, and on the validation set even with one
    assert torch.equal(data.val[(0, (5, 5, 5))][1], data.val[0][1])


def test_rgb_is_aligned_with_the_item(tmp_path):
    make_voc(tmp_path)
    data = build_datasets(VOCData(root=str(tmp_path), crop_size=CROP))
    rgb = data.val.rgb(0)
    image, _ = data.val[0]
    assert rgb.dtype == np.uint8 and rgb.shape == (CROP, CROP, 3)
    back = (data.val.denormalize(image).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(back, rgb)


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    written = make_cityscapes(tmp_path)
    data = build_datasets(CityscapesData(root=str(tmp_path), crop_size=CROP))
    assert len(data.classes) == 19 and data.classes[0] == "road" and data.classes[18] == "bicycle"
    assert len(data.train) == 2 and len(data.val) == 1
    lab = _label(data.val, 0)[:H, :W]
    raw = next(v for k, v in written.items() if k.startswith("val/"))
    # labelIds 1 ego vehicle, 4 static, 6 ground, 30 trailer -> ignored; 7 road -> 0, 8 -> 1, 11 -> 2,
    # 24 person -> 11, 26 car -> 13, 33 bicycle -> 18
    expected = {1: 255, 4: 255, 7: 0, 8: 1, 11: 2, 24: 11, 26: 13, 33: 18, 6: 255, 30: 255}
    for lid, tid in expected.items():
        assert (lab[raw == lid] == tid).all(), lid
    assert set(np.unique(lab).tolist()) == {0, 1, 2, 11, 13, 18, 255}


def test_ade20k_150_classes_zero_ignored(tmp_path):
    written = make_ade20k(tmp_path)
    data = build_datasets(ADE20KData(root=str(tmp_path), crop_size=CROP))
    assert len(data.classes) == 150 and data.classes[0] == "wall" and data.classes[149] == "flag"
    assert len(data.train) == 2 and len(data.val) == 1
    lab = _label(data.val, 0)[:H, :W]
    raw = next(iter(v for k, v in written.items() if k.startswith("validation/")))
    for ann, tid in {0: 255, 1: 0, 13: 12, 150: 149}.items():
        assert (lab[raw == ann] == tid).all(), ann
    image, label = data.train[(1, (0, 0, 0))]
    assert image.shape == (3, CROP, CROP)


def test_missing_root_is_one_line_with_the_layout(tmp_path, monkeypatch):
    for var in ("ABLATE_VOC_ROOT", "ABLATE_DATA_ROOT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DataRootError) as err:
        VOCData().check()
    msg = str(err.value)
    assert "\n" not in msg and "ABLATE_VOC_ROOT" in msg and "VOCdevkit/VOC2012" in msg
    with pytest.raises(DataRootError, match="is not a folder"):
        CityscapesData(root=str(tmp_path / "nope")).check()
    (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DataRootError, match="has no VOCdevkit/VOC2012/SegmentationClass") as err:
        build_datasets(VOCData(root=str(tmp_path)))
    assert "\n" not in str(err.value)
    # from the environment
    make_ade20k(tmp_path / "common" / "ade20k")
    monkeypatch.setenv("ABLATE_DATA_ROOT", str(tmp_path / "common"))
    assert len(build_datasets(ADE20KData(crop_size=CROP)).val) == 1


def test_data_union_in_recipes():
    assert Recipe.model_validate({"data": {"image_size": 32, "context_distance": [4, 12]}}).data.name == "synthetic"
    assert Recipe.model_validate({"data": {"name": "voc"}}).data.crop_size == 513
    assert Recipe.model_validate({"data": {"name": "cityscapes"}}).data.crop_size == 769
    assert Recipe.model_validate({"data": {"name": "ade20k"}}).data.crop_size == 473


def test_split_folders_come_from_the_layout(tmp_path):
    ade = Recipe.model_validate({"data": {"name": "ade20k"}}).data
    assert (ade.train_split, ade.val_split) == ("training", "validation")
    assert "images/{training,validation}/" in ade.layout()
    assert [row[2] for row in describe_fields(ADE20KData) if row[0].endswith("_split")] == ["training", "validation"]
    with pytest.raises(ValidationError, match="'train' is not a split folder of this data set; allowed: training"):
        Recipe.model_validate({"data": {"name": "ade20k", "train_split": "train"}})
    make_cityscapes(tmp_path)  # 2 training images, 1 validation image
    data = build_datasets(CityscapesData(root=str(tmp_path), crop_size=CROP, train_split="val"))
    assert len(data.train) == 1 and len(data.val) == 1


# the keys a data set needs that have no default (its classes, for the folder set)
REQUIRED = {"folder": {"classes": [f"class {k}" for k in range(30)]}}


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_data_set_draws_each_class_in_its_own_colour(name):
    spec = DATASETS[name].model_validate(REQUIRED.get(name, {}))
    colours = spec.class_colours()
    assert colours.shape == (len(spec.classes), 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours.tolist()}) == len(spec.classes)


def test_class_colours_are_the_data_sets_own():
    """VOC's are the colours of its palette PNGs (the fixture's independent colour map); Cityscapes' its official
    ones (cityscapesScripts); ADE20K has none of its own here and takes VOC's colour map for its 150 classes."""
    np.testing.assert_array_equal(VOCData().class_colours(), np.array(voc_palette()).reshape(256, 3)[:21])
    assert VOCData().class_colours()[15].tolist() == [192, 128, 128]  # person
    cityscapes = dict(zip(CityscapesData.classes, CityscapesData().class_colours().tolist(), strict=True))
    assert cityscapes["road"] == [128, 64, 128] and cityscapes["bicycle"] == [119, 11, 32]
    np.testing.assert_array_equal(ADE20KData().class_colours(), np.array(voc_palette()).reshape(256, 3)[:150])


def test_cli_names_the_missing_root(tiny_study, tmp_path):
    study = tiny_study(
        "name: r\nrecipe: recipe.yaml\nset: {data.name: voc, data.root: /nonexistent/voc}\n"
        "axes: {model.output_stride: [16]}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "set.data.root" in lines[0] and "/nonexistent/voc' is not a folder" in lines[0]
    assert "VOCdevkit/VOC2012" in lines[0]
