"""The report's qualitative grid shows what was evaluated: on a real data set (VOC files) its image panel is the
image in the data set's own colours, its classes are drawn in VOC's palette, and its predictions are the evaluated
model's (here at eval OS 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_fixtures import write_voc
from PIL import Image
from tests_helpers import run_study

from ablate.config.schema import EvalConfig, Recipe
from ablate.data.folder import read_rgb
from ablate.data.loader import build_datasets
from ablate.data.synthetic import make_sample
from ablate.report.plots.qualitative import qualitative_grid
from ablate.study.session import StudySession
from ablate.train.inference import build_eval_model, predict

RECIPE = """
seed: 0
data: {name: voc, train_split: train, crop_size: 48, scale_min: 1.0, scale_max: 1.0}
model: {backbone: test_resnet, output_stride: 16, head: {name: aspp, rates: [2, 4], channels: 8}}
train: {steps: 300, batch_size: 4, lr: 0.05, accelerator: cpu, log_every: 100}
eval: {batch_size: 4, output_stride: 8}
"""


def _scene(split: str, i: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    image, label, _ = make_sample(0, split, i, size, (6, 20))
    return (image * 255).round().astype(np.uint8), label


@pytest.mark.slow
def test_voc_grid_has_the_images_colours_and_the_evaluated_predictions(tmp_path):
    write_voc(tmp_path / "voc", [_scene("train", i, 48) for i in range(16)], [_scene("val", i, 40) for i in range(4)])
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("name: voc,", f"name: voc, root: {tmp_path / 'voc'},"))
    (tmp_path / "study.yaml").write_text("name: g\nrecipe: recipe.yaml\naxes: {model.head.rates: [[2, 4]]}\n")
    summary = run_study(tmp_path / "study.yaml", tmp_path / "results", "ablate.train.job:run_job")
    assert len(summary.done) == 1, summary.failed
    session = StudySession(tmp_path / "study.yaml", {}, tmp_path / "results")
    grid = qualitative_grid(session.table(), list(session.study.axes), session.store.root)
    run = session.runs[0]
    recipe = Recipe.model_validate(run.config)
    data = build_datasets(recipe.data)
    state = torch.load(session.store.training_dir(run) / "model.pt", weights_only=True)
    model = build_eval_model(recipe.model, recipe.eval, len(data.classes), state)
    assert model.backbone.output_stride == 8
    at16 = build_eval_model(recipe.model, EvalConfig(), len(data.classes), state)  # what a grid at OS 16 shows
    differs = []
    mean_fill = np.array([round(255 * m) for m in recipe.data.mean], np.uint8)
    for index, panels in zip(grid.indices, grid.rows, strict=True):
        (_, image), (_, truth), (_, prediction) = panels
        path, label_path = data.val.items[index]
        raw = read_rgb(path)
        h, w = raw.shape[:2]
        np.testing.assert_array_equal(np.round(image[:h, :w] * 255).astype(np.uint8), raw)  # the JPEG's colours
        with Image.open(label_path) as png:  # the ground truth in the colours of VOC's own palette PNG
            labelled, drawn = np.asarray(png) < 21, np.asarray(png.convert("RGB"))
        np.testing.assert_array_equal(np.round(truth[:h, :w][labelled] * 255).astype(np.uint8), drawn[labelled])
        assert labelled.any() and (truth[:h, :w][~labelled] == 1).all()  # ignored: white
        assert (np.round(image[h:] * 255).astype(np.uint8) == mean_fill).all()  # validation padding
        with torch.no_grad():
            expected = predict(model, data.val[index][0][None], recipe.eval).argmax(1)[0].numpy()
            other = predict(at16, data.val[index][0][None], EvalConfig()).argmax(1)[0].numpy()
        np.testing.assert_array_equal(prediction, _colour(expected, grid))
        differs.append((expected != other).any())
        assert truth.shape == prediction.shape == image.shape
    assert any(differs)  # the OS 16 model predicts otherwise: the check can tell them apart
    drawn = {tuple(c) for panels in grid.rows for _, img in panels[1:] for c in np.unique(img.reshape(-1, 3), axis=0)}
    assert grid.present == [k for k, c in enumerate(grid.palette) if tuple(c) in drawn]  # the legend's classes
    assert 0 < len(grid.present) < len(grid.classes)


def _colour(mask: np.ndarray, grid) -> np.ndarray:
    img = np.ones((*mask.shape, 3))
    valid = mask < len(grid.classes)
    img[valid] = grid.palette[mask[valid]]
    return img
