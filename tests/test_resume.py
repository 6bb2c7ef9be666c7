"""Exact resume: a realistic training (120 steps, dropout, random scale/crop/flip, the auxiliary head, a deformable
last block, DataLoader workers, validation every 30 steps) stopped by SIGINT, SIGTERM and SIGKILL at three points
ends with the very model.pt, val.csv and table.csv of a run never interrupted; Ctrl-C and SIGTERM say where they
stopped and how to go on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

RECIPE = """
seed: 0
data: {name: synthetic, image_size: 32, context_distance: [4, 12], num_train: 32, num_val: 8, scale_min: 0.5,
       scale_max: 2.0, flip: true,
       num_workers: 2}
model:
  backbone: test_resnet
  output_stride: 16
  head: {name: aspp, rates: [2, 4], channels: 16, dropout: 0.3}
  aux_loss: 0.4
  deformable_blocks: 1
train: {steps: 120, batch_size: 4, lr: 0.01, accelerator: cpu, log_every: 5, checkpoint_every: 40,
        val_every: 30}
eval: {batch_size: 8}
"""
STUDY = "name: resume\nrecipe: recipe.yaml\nseeds: [0]\n"


def _cmd(root: Path, results: str) -> list[str]:
    return [sys.executable, "-m", "ablate.cli", "run", "study.yaml", "--results", results, "--no-report"]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _stop_at(root: Path, results: str, step: int, sig: int) -> subprocess.CompletedProcess:
    """Start the study, send ``sig`` once its output shows a step >= ``step`` (SIGINT to the whole process group,
    as a terminal's Ctrl-C does: the loader's workers get it too); returns the finished process."""
    proc = subprocess.Popen(_cmd(root, results), cwd=root, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        hit = re.search(r"step\s+(\d+)/120", line)
        if hit and int(hit.group(1)) >= step:
            if sig == signal.SIGINT:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + out, err)


def _table(results: Path) -> str:
    return pd.read_csv(results / "resume" / "table.csv").drop(columns=["latency_ms"]).to_csv(index=False)


def _model(results: Path, name: str = "model.pt") -> bytes:
    (model,) = (results / "resume" / "trainings").glob(f"*/{name}")
    return model.read_bytes()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    (root / "recipe.yaml").write_text(RECIPE)
    (root / "study.yaml").write_text(STUDY)
    out = subprocess.run(_cmd(root, "straight"), cwd=root, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


def test_stopped_three_ways_resumes_to_the_same_bytes(root):
    first = _stop_at(root, "stopped", 25, signal.SIGINT)
    assert first.returncode == 130, first.stdout + first.stderr
    line = first.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted by SIGINT:") and "at step" in line and "checkpoint saved" in line
    assert "Resume with: ablate run study.yaml --results stopped" in line
    second = _stop_at(root, "stopped", 65, signal.SIGTERM)
    assert second.returncode == 143, second.stdout + second.stderr
    assert "resuming from step" in second.stdout
    assert second.stderr.strip().splitlines()[-1].startswith("interrupted by SIGTERM:")
    third = _stop_at(root, "stopped", 100, signal.SIGKILL)  # no chance to checkpoint: back to step 80
    assert third.returncode == -signal.SIGKILL
    last = subprocess.run(_cmd(root, "stopped"), cwd=root, env=_env(), capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stdout + last.stderr
    assert "resuming from step 80" in last.stdout
    assert _model(root / "stopped") == _model(root / "straight")
    assert _model(root / "stopped", "val.csv") == _model(root / "straight", "val.csv")  # validations at 30, 60, 90
    assert _table(root / "stopped") == _table(root / "straight")


def test_a_resumed_training_without_its_dropout_state_would_differ(root, tmp_path):
    """The check above can fail: the same training resumed from step 40 with another random state gives other
    bytes (what the random numbers of dropout and the loader's iterator did to resumed runs before)."""
    import torch
    import yaml

    from ablate.config.schema import Recipe
    from ablate.data.loader import build_datasets
    from ablate.train.checkpoint import CHECKPOINT_FILE, read_checkpoint, save_checkpoint
    from ablate.train.loop import train

    recipe = Recipe.model_validate(yaml.safe_load(RECIPE))
    recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"num_workers": 0})})
    data = build_datasets(recipe.data)
    torch.set_num_threads(1)
    stop = recipe.model_copy(update={"train": recipe.train.model_copy(update={"steps": 120})})
    first = tmp_path / "a"
    first.mkdir()
    train(stop, data, first)
    reference = (first / "model.pt").read_bytes()
    # a checkpoint at step 40 of the same training, then its random state replaced
    partial = tmp_path / "b"
    partial.mkdir()

    def stop_at_40(step: int) -> None:
        if step == 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(stop, data, partial, hooks=[stop_at_40])
    state = read_checkpoint(partial / CHECKPOINT_FILE)
    assert state is not None and state["global_step"] == 40
    resumed = tmp_path / "c"
    resumed.mkdir()
    save_checkpoint(state, resumed / CHECKPOINT_FILE)
    train(stop, data, resumed)
    assert (resumed / "model.pt").read_bytes() == reference  # exact, from the checkpoint as saved
    state["rng"]["torch"] = torch.Generator().manual_seed(1).get_state()
    other = tmp_path / "d"
    other.mkdir()
    save_checkpoint(state, other / CHECKPOINT_FILE)
    train(stop, data, other)
    assert (other / "model.pt").read_bytes() != reference


DDP_RECIPE = """
seed: 0
data: {name: synthetic, image_size: 32, context_distance: [4, 12], num_train: 32, num_val: 8, scale_min: 0.5,
       scale_max: 2.0, flip: true}
model: {backbone: test_resnet, output_stride: 16, head: {name: aspp, rates: [2, 4], channels: 16, dropout: 0.3}}
train: {steps: 60, batch_size: 4, lr: 0.01, accelerator: cpu, devices: 2, log_every: 5, checkpoint_every: 20}
eval: {batch_size: 8}
"""


def test_ddp_stopped_by_sigterm_resumes_to_the_same_bytes(tmp_path):
    """Two CPU processes (gloo): SIGTERM to the command stops both ranks at the same step (they agree through one
    all-reduce), rank 0 checkpoints, and the resumed training ends with the bytes of an uninterrupted one."""
    (tmp_path / "recipe.yaml").write_text(DDP_RECIPE)
    (tmp_path / "study.yaml").write_text(STUDY)
    straight = subprocess.run(_cmd(tmp_path, "straight"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    assert straight.returncode == 0, straight.stdout + straight.stderr
    proc = subprocess.Popen(_cmd(tmp_path, "stopped"), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        hit = re.search(r"step +(\d+)/60", line)
        if hit and int(hit.group(1)) >= 25:
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("interrupted by SIGTERM:")
    again = subprocess.run(_cmd(tmp_path, "stopped"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from step" in again.stdout
    assert _model(tmp_path / "stopped") == _model(tmp_path / "straight")
