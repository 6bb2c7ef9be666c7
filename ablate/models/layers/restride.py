"""Evaluating a trained network at an output stride below its training's, so that it computes the same function,
only denser (DeepLabv3 Sec. 4: train at OS 16, evaluate at OS 8).

Removing a stride and dilating what follows is exact for convolutions: the OS-8 map at even positions equals the
OS-16 map. Two pieces are not, and this module fixes them:

- timm's average-pool shortcut (``avg_down``) in a stage that is already dilated is a 2 x 2 average of adjacent
  positions, whatever the map's dilation; trained at OS 16 it averages positions one OS-16 pixel apart, so at OS 8
  its taps must be two pixels apart (``SpacedAvgPool``). Without it the last feature differs by as much as its size.
- bilinear upsampling (``align_corners=False``) puts map sample j at the centre of its stride cell. A net trained at
  OS 16 has learned to predict, from sample i, the pixels around 16 i + 7.5; at OS 8 the same sample index 2 i sits
  at 16 i + 3.5, half a training stride too early. ``upsample`` keeps training's anchor: ``shift`` moves the
  samples by (train OS / eval OS - 1) / 2 of their own spacing (0.5 from 16 to 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpacedAvgPool(nn.Module):
    """A trained stride-1 ``k x k`` average pool (timm's TF-"same" ``AvgPool2dSame``: zeros padded after, counted)
    on a map ``spacing`` times denser: the taps ``spacing`` apart, the padding ``spacing`` times wider."""

    def __init__(self, kernel_size: int, spacing: int):
        super().__init__()
        self.kernel_size, self.spacing = kernel_size, spacing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, d = self.kernel_size, self.spacing
        before = (k - 1) // 2 * d
        after = (k - 1) * d - before
        h, w = x.shape[-2:]
        padded = F.pad(x, (before, after, before, after))
        total = sum(padded[..., i * d : i * d + h, j * d : j * d + w] for i in range(k) for j in range(k))
        return total / (k * k)


def _pool_input_strides(net: nn.Module, size: int) -> dict[str, tuple[nn.Module, int]]:
    """{name: (pool, input stride in pixels)} of every average pool of ``net``, from one forward of a probe image
    (in eval mode: batch-norm statistics are not touched)."""
    found: dict[str, tuple[nn.Module, int]] = {}
    was_training = net.training
    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, nn.AvgPool2d):

            def hook(mod, args, name=name):
                found[name] = (mod, size // args[0].shape[-1])

            hooks.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, size, size))
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return found


def respace_pools(evaluated: nn.Module, trained: nn.Module, size: int = 64) -> None:
    """Give every stride-1 average pool of ``evaluated`` (a backbone at a lower output stride) the spacing its
    counterpart in ``trained`` (same network at training's output stride) had: training's input stride / this one's."""
    before = _pool_input_strides(trained, size)
    for name, (pool, stride) in _pool_input_strides(evaluated, size).items():
        kernel = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
        step = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
        spacing = before[name][1] // stride if name in before else 1
        if step == 1 and spacing > 1:
            parent, _, attr = name.rpartition(".")
            setattr(evaluated.get_submodule(parent), attr, SpacedAvgPool(kernel, spacing))


def _weights(out: int, src: int, shift: float, device: torch.device) -> torch.Tensor:
    """out x src bilinear weights (``align_corners=False``, edges clamped) with the samples moved by ``shift``."""
    u = ((torch.arange(out, dtype=torch.float64, device=device) + 0.5) * src / out - 0.5 - shift).clamp(0, src - 1)
    lo = u.floor().long()
    hi = (lo + 1).clamp(max=src - 1)
    frac = u - lo
    w = torch.zeros(out, src, dtype=torch.float64, device=device)
    rows = torch.arange(out, device=device)
    w.index_put_((rows, lo), 1 - frac, accumulate=True)
    w.index_put_((rows, hi), frac, accumulate=True)
    return w


def upsample(x: torch.Tensor, size: tuple[int, int] | torch.Size, shift: float = 0.0) -> torch.Tensor:
    """Bilinear resize of ``x`` (N x C x h x w) to ``size`` as ``F.interpolate(align_corners=False)``, with the
    input samples ``shift`` of their spacing further on (0: exactly ``F.interpolate``)."""
    if shift == 0.0:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    rows = _weights(size[0], x.shape[-2], shift, x.device).to(x.dtype)
    cols = _weights(size[1], x.shape[-1], shift, x.device).to(x.dtype)
    return torch.einsum("Hh,nchw,Ww->ncHW", rows, x, cols)
