"""What a model costs at inference: parameters, multiply-adds, latency and peak activation memory.

Measured once per run after evaluation (never inside a training step), on the evaluation device, for one image
(batch 1) at the evaluation size, in ``torch.inference_mode``:

- ``params``: number of parameters.
- ``macs``: multiply-accumulates of convolutions and matrix products, counted by ``torch.utils.flop_counter``
  (FLOPs / 2), and of torchvision's deformable convolution (``torchvision::deform_conv2d``, which that counter has
  no formula for: registered here on import, see ``deform_conv2d_macs``); element-wise ops, pooling and
  interpolation are not counted (as in most papers' tables), except the deformable conv's bilinear sampling and
  modulation, which are part of its count.
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
from math import prod
from typing import Any

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from ablate.core.machine import cpu_name

try:  # loads the torchvision:: ops (their flop formulas are registered below); a missing torchvision is no error
    import torchvision  # noqa: F401
except Exception:  # noqa: BLE001 - ImportError, or a torchvision whose compiled ops do not load
    torchvision = None

MEMORY_METHOD = {
    "cuda": "torch.cuda.max_memory_allocated during the pass",
    "cpu": "peak live bytes of the storages the pass allocates (TorchDispatchMode)",
}


def deform_conv2d_macs(x_shape, w_shape, out_shape, use_mask: bool) -> int:
    """Multiply-adds of one ``torchvision::deform_conv2d`` (input N x C_in x H x W, weight C_out x C_in/groups x kh
    x kw, output N x C_out x H_out x W_out):

    * the convolution of the sampled columns: N x C_out x (C_in / groups) x kh x kw x H_out x W_out, exactly the
      count of a plain conv of the same shape (``torch.utils.flop_counter.conv_flop_count``);
    * the bilinear sampling: each of the N x C_in x kh x kw x H_out x W_out sampled input values is its 4
      neighbours weighted and summed, counted as 4 multiply-adds per sampled value (computing the 4 weights from
      the offset, shared by the C_in / offset_groups channels, is not counted);
    * the v2 modulation (``use_mask``): 1 multiply per sampled value, counted as one multiply-add.

    The offsets (and mask) come from an ordinary conv, counted as such by the flop counter: not here. Positions
    that sample padding are counted like the others (as the flop counter does for a padded conv)."""
    n, c_in = x_shape[0], x_shape[1]
    c_out, c_in_group, kh, kw = w_shape
    positions = prod(out_shape[2:])
    sampled = n * c_in * kh * kw * positions
    return n * c_out * c_in_group * kh * kw * positions + 4 * sampled + (sampled if use_mask else 0)


def deform_conv2d_backward_macs(grad_shape, x_shape, w_shape, use_mask: bool) -> int:
    """Multiply-adds of ``torchvision::_deform_conv2d_backward`` (training only; the cost record is inference),
    which computes every gradient at once. Per the conventions of ``deform_conv2d_macs``: the conv twice (the
    column gradient W^T grad_out and the weight gradient grad_out columns^T, as torch counts a conv's backward),
    and per sampled value 4 (scattering its gradient to the 4 input neighbours) + 8 (the offset gradient: the 4
    neighbours weighted by the derivative of the bilinear weights, for y and for x) + 4 (re-sampling the columns
    for the weight gradient); with a mask, 3 more multiplies (the mask in each of those three) and 5 for the mask
    gradient (the 4-neighbour sample times the column gradient)."""
    n, c_in = x_shape[0], x_shape[1]
    c_out, c_in_group, kh, kw = w_shape
    positions = prod(grad_shape[2:])
    sampled = n * c_in * kh * kw * positions
    return 2 * n * c_out * c_in_group * kh * kw * positions + (16 + (8 if use_mask else 0)) * sampled


def register_deform_conv2d_flops() -> bool:
    """Registers the formulas above (FLOPs = 2 x MACs) for torchvision's deformable conv and its backward with
    ``torch.utils.flop_counter`` (a ``FlopCounterMode`` created afterwards uses them). Idempotent; without
    torchvision or its compiled ops, registers nothing. True if the forward formula is registered."""
    try:
        ops = torch.ops.torchvision
        forward, backward = ops.deform_conv2d, ops._deform_conv2d_backward
    except (AttributeError, RuntimeError):
        return False
    if forward not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(forward)
        def _deform_conv2d_flop(x_shape, w_shape, _offset, _mask, _bias, *args, out_shape=None, **kwargs) -> int:
            return 2 * deform_conv2d_macs(x_shape, w_shape, out_shape, bool(args[-1]))

    if backward not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(backward)
        def _deform_conv2d_backward_flop(grad_shape, x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
            return 2 * deform_conv2d_backward_macs(grad_shape, x_shape, w_shape, bool(args[-1]))

    return True


DEFORM_CONV2D_COUNTED = register_deform_conv2d_flops()


def hardware_name(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return f"CPU {cpu_name()} ({threads} thread{'' if threads == 1 else 's'})"


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
