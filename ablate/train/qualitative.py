"""Predictions on a few fixed validation images for the report's qualitative grid (torch; called lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.config import Recipe
from ablate.data.datamodule import build_datasets
from ablate.data.synthetic import denormalize
from ablate.models.segmenter import build_model
from ablate.train.evaluate import predict
from ablate.train.job import MODEL_FILE


def pick_images(labels: list[np.ndarray], count: int, ignore_index: int = 255) -> list[int]:
    """Fixed, informative validation images: the first ``count`` by number of classes present (ties: index)."""
    scored = [(-len(set(np.unique(lab).tolist()) - {ignore_index}), i) for i, lab in enumerate(labels)]
    return sorted(i for _, i in sorted(scored)[:count])


@torch.no_grad()
def predictions(configs: list[tuple[str, dict[str, Any], Path]], count: int = 4) -> dict[str, Any]:
    """``configs``: (label, resolved recipe, training folder with model.pt). Every config must share the data
    block's validation set (a study's runs do unless an axis changes ``data.``; the first config's set is used).

    Returns images (N×H×W×3 float in [0, 1]), labels (N×H×W), the chosen indices, class names and, per label,
    the predicted class maps (N×H×W) or None where the model file is missing."""
    first = Recipe.model_validate(configs[0][1])
    data = build_datasets(first.data)
    labels = [data.val[i][1].numpy() for i in range(len(data.val))]
    indices = pick_images(labels, min(count, len(labels)), data.ignore_index)
    images = torch.stack([data.val[i][0] for i in indices])
    preds: dict[str, np.ndarray | None] = {}
    for label, config, train_dir in configs:
        recipe = Recipe.model_validate(config)
        path = Path(train_dir) / MODEL_FILE
        if not path.is_file() or recipe.data != first.data:
            preds[label] = None
            continue
        model = build_model(recipe.model, len(data.classes))
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        preds[label] = predict(model, images, recipe.eval).argmax(1).numpy()
    return {
        "images": denormalize(images).permute(0, 2, 3, 1).numpy(),
        "labels": np.stack([labels[i] for i in indices]),
        "indices": indices,
        "classes": list(data.classes),
        "ignore_index": data.ignore_index,
        "predictions": preds,
    }
