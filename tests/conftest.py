from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny test models: threads cost more than they give

REPO = Path(__file__).resolve().parents[1]

TINY_RECIPE = """
seed: 0
data: {name: synthetic, image_size: 32, num_train: 16, num_val: 8, context_distance: [4, 12]}
model:
  backbone: test_resnet
  output_stride: 16
  head: {name: aspp, rates: [2, 4], channels: 16}
  decoder: {enabled: false, low_level_channels: 8, channels: 16}
train: {steps: 3, batch_size: 4, lr: 0.01, accelerator: cpu, log_every: 1}
eval: {batch_size: 8}
"""


@pytest.fixture
def tiny_study(tmp_path: Path):
    """Write a tiny recipe and a study over it; returns a function (study text -> study path)."""
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)

    def make(body: str, name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(body))
        return path

    return make
