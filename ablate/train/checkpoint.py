"""The resumable checkpoint (trainings/<id>/last.ckpt): everything that decides the rest of a training, so a resumed
training ends with the same weights, byte for byte, as one never interrupted.

Batches are a pure function of (seed, step) (``ablate.data.sampling``), so the data needs no state here; the
random state that dropout and the like draw from is saved and restored, and so is the number of CPU threads, which
changes the order of floating-point sums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ablate.core.files import atomic_save

CHECKPOINT_FILE = "last.ckpt"
CHECKPOINT_FORMAT = "ablate-checkpoint-2"


def checkpoint_state(model: torch.nn.Module, optimizer: Any, scheduler: Any, precision: dict, step: int,
                     ema: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """Weights (BN statistics included), optimizer and schedule state, the fp16 loss scaler (``precision``: empty
    unless 16-mixed on GPUs), the step, the random state, the CPU threads and the weights' moving average (``ema``,
    with ``train.ema``)."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format": CHECKPOINT_FORMAT,
        "global_step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "precision": precision,
        "rng": rng,
        "threads": torch.get_num_threads(),
        **({"ema": ema} if ema is not None else {}),
    }


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    atomic_save(path, lambda fh: torch.save(state, fh))


def read_checkpoint(path: Path, progress: Any = None) -> dict[str, Any] | None:
    """The checkpoint an interrupted training left, or None (none there, or not one this version wrote: the
    training then starts again from step 0; a checkpoint is never a finished result)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        if progress is not None:
            progress.note(f"{path} is not an ablate checkpoint of this version: training from step 0")
        return None
    if progress is not None:
        progress.note(f"resuming from step {state['global_step']} ({path})")
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
