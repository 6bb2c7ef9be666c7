"""``train.ema``: an exponential moving average of the weights over training, evaluated and saved in place of the
raw weights (torch's ``AveragedModel`` with its EMA update; BN statistics averaged too). Its state is part of the
checkpoint, so a resumed training ends with the same average, byte for byte."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ablate.config.schema import EMAConfig


class WeightAverage:
    """The average of ``model``'s weights and buffers: a copy of them after step ``start`` + 1, then
    ``decay * average + (1 - decay) * weights`` after every later step."""

    def __init__(self, model: torch.nn.Module, cfg: EMAConfig):
        self.cfg = cfg
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.decay), use_buffers=True)
        self.averaged.eval()

    @property
    def started(self) -> bool:
        return int(self.averaged.n_averaged) > 0

    def update(self, model: torch.nn.Module, step: int) -> None:
        """After training step ``step`` (1-based): average ``model`` in from the step after ``start`` on."""
        if step > self.cfg.start:
            self.averaged.update_parameters(model)

    def weights(self) -> dict[str, Any]:
        """The averaged state dict, with the model's own keys (what model.pt holds)."""
        return self.averaged.module.state_dict()

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
