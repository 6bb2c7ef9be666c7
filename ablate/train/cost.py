"""What a model costs at inference: parameters, multiply-adds, latency and peak activation memory.

Measured once per run after evaluation (never inside a training step), on the evaluation device, for one image
(batch 1) at the evaluation size, in ``torch.inference_mode``:

- ``params``: number of parameters.
- ``macs``: multiply-accumulates of convolutions and matrix products, counted by ``torch.utils.flop_counter``
  (FLOPs / 2); element-wise ops, pooling and interpolation are not counted (as in most papers' tables).
- ``latency_ms``: median wall time of ``repeats`` forward passes after ``warmup`` passes (CUDA synchronised).
- ``peak_mem_mb``: peak memory of the tensors the forward pass allocates (activations; weights and input not
  counted). On CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before the pass. On CPU, where
  PyTorch keeps no allocator statistics: the peak of the live bytes of every storage the pass allocates, tracked
  with a ``TorchDispatchMode`` (each new storage added when created, removed when freed). Both count what PyTorch
  asks for, not allocator caching or fragmentation.
- ``hardware``: the device, named (CPU model and thread count, or the GPU's name).
"""

from __future__ import annotations

import statistics
import time
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from ablate.core.machine import cpu_name

MEMORY_METHOD = {
    "cuda": "torch.cuda.max_memory_allocated during the pass",
    "cpu": "peak live bytes of the storages the pass allocates (TorchDispatchMode)",
}


def hardware_name(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU {cpu_name()} ({torch.get_num_threads()} threads)"


class _LiveBytes(TorchDispatchMode):
    """Tracks the bytes of every storage created by the ops run under it, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure(
    model: nn.Module,
    image_size: int | tuple[int, int],
    device: torch.device | str = "cpu",
    warmup: int = 3,
    repeats: int = 10,
) -> dict[str, Any]:
    """Cost of ``model`` for one 3-channel image of ``image_size`` on ``device`` (see the module docstring)."""
    device = torch.device(device)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    was_training = model.training
    model.eval().to(device)
    x = torch.randn(1, 3, h, w, device=device)
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
        macs = counter.get_total_flops() // 2

        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            model(x)
            _sync(device)
            times.append(time.perf_counter() - start)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model(x)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device) - before
        else:
            with _LiveBytes() as tracker:
                y = model(x)
                del y
            peak = tracker.peak
    finally:
        model.train(was_training)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": int(macs),
        "latency_ms": round(1000 * statistics.median(times), 3),
        "peak_mem_mb": round(peak / 2**20, 3),
        "image_size": [h, w],
        "batch_size": 1,
        "repeats": repeats,
        "device": device.type,
        "hardware": hardware_name(device),
        "memory_method": MEMORY_METHOD.get(device.type, MEMORY_METHOD["cpu"]),
    }
