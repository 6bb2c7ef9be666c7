"""Validate one fixed model with Lightning on N CPU processes (gloo) and print the metrics as JSON (rank 0).

Run as a script (DDP re-launches this command per rank, which must not be pytest)."""

import json
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader

from ablate.config.schema import Recipe
from ablate.data.loader import build_datasets
from ablate.train.job import quiet
from ablate.train.module import SegmentationModule

if __name__ == "__main__":
    devices, weights = int(sys.argv[1]), sys.argv[2]
    quiet()
    recipe = Recipe.model_validate(
        {
            "data": {"image_size": 32, "num_train": 8, "num_val": 12, "context_distance": [4, 12]},
            "model": {"head": {"name": "aspp", "rates": [2], "channels": 8}},
        }
    )
    data = build_datasets(recipe.data)
    module = SegmentationModule(recipe, len(data.classes))
    module.model.load_state_dict(torch.load(weights))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(module, DataLoader(data.val, batch_size=2), verbose=False)
    if trainer.is_global_zero:
        print("METRICS " + json.dumps(module.last_metrics))
