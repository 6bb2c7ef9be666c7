"""The CPU's speed path for the heads' atrous (dilated) convolutions: no work on taps that only ever read zero
padding. Measured on CPUs only, so it runs on CPU only: the model is built from plain ``nn.Conv2d`` (dilated), and
``prepare_for_device`` swaps its head's dilated convs for ``AtrousConv2d`` (the same parameters, so the same state
dict) when training or evaluation runs on CPU; on any other device the model runs PyTorch's own conv.

A k x k kernel with dilation d places tap i at offset ``(i - k // 2) * d``. When d is large against the feature
map (ASPP rate 12 on a 16 x 16 map, rate 36 on a 65 x 65 one), most taps overlap the map only at its borders:

* a tap that cannot overlap the map at all multiplies zeros at every position: ``AtrousConv2d`` drops it from the
  kernel (DeepLabv3, Sec. 3.3: the 3x3 atrous conv "degenerates to a 1x1 filter");
* the forward pass and the input gradient are left to the conv kernel (oneDNN skips padding there), but the
  weight gradient of the library kernel sums over the padding too: for a map mostly made of padding, it is
  computed here instead, one matrix product per tap over the positions where that tap reads real input
  (``tap_weight_grad``). The result is the same gradient, at the cost of the real work only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

if TYPE_CHECKING:
    from ablate.models.segmenter import Segmenter

# The tap-by-tap weight gradient is used when at most this share of the k x k x H x W products read real input.
# In a micro-benchmark on a 2-core AVX-512 CPU (2048 -> 256 channels, batch 4, 16 x 16: the ResNet-50 ASPP branch)
# the weight gradient took 95 -> 10 ms at rate 12 (share 0.25) and 25 -> 23 ms at rate 6 (0.56); at share 0.84
# (rate 1) the taps were slower for narrow layers (64-256 channels).
TAP_GRAD_MAX_SHARE = 0.6


def _overlap(size: int, kernel: int, dilation: int) -> list[tuple[int, int, int]]:
    """(offset, first, end) of each tap along one axis: output positions first..end-1 read input at +offset."""
    taps = []
    for i in range(kernel):
        offset = (i - kernel // 2) * dilation
        taps.append((offset, max(0, -offset), min(size, size - offset)))
    return taps


def real_share(size: tuple[int, int], kernel: tuple[int, int], dilation: tuple[int, int]) -> float:
    """Share of a stride-1 'same' conv's k x k x H x W products that read the input rather than padding."""
    share = 1.0
    for n, k, d in zip(size, kernel, dilation, strict=True):
        share *= sum(max(0, end - first) for _, first, end in _overlap(n, k, d)) / (k * n)
    return share


def tap_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int], dilation: tuple[int, int]
                    ) -> torch.Tensor:  # fmt: skip
    """The weight gradient of a stride-1, ungrouped, 'same' conv: for each tap, grad_out at the positions where the
    tap reads real input times the input it reads there (an O x P by P x C product). Returned in the channels_last
    layout (the taps are written into it in place, no copy)."""
    (kh, kw), (dh, dw) = kernel, dilation
    n, c, h, w = x.shape
    o = grad_out.shape[1]
    xs, gs = x.permute(0, 2, 3, 1), grad_out.permute(0, 2, 3, 1)  # N H W C views (free for channels_last)
    out = torch.empty(o, kh, kw, c, dtype=grad_out.dtype, device=grad_out.device)
    for i, (oi, h0, h1) in enumerate(_overlap(h, kh, dh)):
        for j, (oj, w0, w1) in enumerate(_overlap(w, kw, dw)):
            if h0 < h1 and w0 < w1:
                g = gs[:, h0:h1, w0:w1].reshape(-1, o)
                torch.mm(g.t(), xs[:, h0 + oi : h1 + oi, w0 + oj : w1 + oj].reshape(-1, c), out=out[:, i, j])
            else:  # the tap never reads the input
                out[:, i, j].zero_()
    return out.permute(0, 3, 1, 2)


class _TapGradConv(torch.autograd.Function):
    """``F.conv2d`` (stride 1, groups 1) whose weight gradient is ``tap_weight_grad``."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: tuple[int, int], dilation: tuple[int, int]):  # noqa: ANN001
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.has_bias = padding, dilation, bias is not None
        return F.conv2d(x, weight, bias, 1, padding, dilation)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001
        x, weight = ctx.saved_tensors
        dtype = grad_out.dtype  # under autocast the forward ran in bf16: so does the backward, as autocast's would
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x.to(dtype), weight.to(dtype), None, [1, 1], list(ctx.padding), list(ctx.dilation),
                False, [0, 0], 1, [True, False, False],
            )[0].to(x.dtype)  # fmt: skip
        if ctx.needs_input_grad[1]:
            grad_w = tap_weight_grad(x.to(dtype), grad_out, weight.shape[-2:], ctx.dilation).to(weight.dtype)
            if weight.is_contiguous():  # an NCHW weight (channels_last off) gets its gradient in its own layout
                grad_w = grad_w.contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None


class AtrousConv2d(nn.Conv2d):
    """A stride-1 'same' dilated conv that does no work on kernel taps reading zero padding (see the module doc).

    Same output and gradients as ``nn.Conv2d`` with the same arguments, and the same parameters (state dict)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], dilation: int | tuple[int, int],
                 groups: int = 1, bias: bool = True, **factory):  # fmt: skip
        kernel, dilation = _pair(kernel), _pair(dilation)
        if kernel[0] % 2 != 1 or kernel[1] % 2 != 1:
            raise ValueError(f"AtrousConv2d needs an odd kernel, got {kernel}")
        padding = (dilation[0] * (kernel[0] // 2), dilation[1] * (kernel[1] // 2))
        super().__init__(cin, cout, kernel, padding=padding, dilation=dilation, groups=groups, bias=bias, **factory)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> AtrousConv2d:
        """An ``AtrousConv2d`` that takes over ``conv``'s parameters (built on the meta device: no memory, and no
        draw from the random generator, so the training's random stream is the one without the swap)."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.dilation, conv.groups,
                  conv.bias is not None, device="meta")  # fmt: skip
        new.weight = conv.weight
        if conv.bias is not None:
            new.bias = conv.bias
        return new.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        rh = min(kh // 2, (x.shape[-2] - 1) // dh)  # taps each side that can touch the input
        rw = min(kw // 2, (x.shape[-1] - 1) // dw)
        weight = self.weight
        if rh < kh // 2 or rw < kw // 2:
            weight = weight[:, :, kh // 2 - rh : kh // 2 + rh + 1, kw // 2 - rw : kw // 2 + rw + 1]
        padding = (rh * dh, rw * dw)
        if (
            self.groups == 1
            and torch.is_grad_enabled()
            and weight.requires_grad
            and real_share(tuple(x.shape[-2:]), tuple(weight.shape[-2:]), self.dilation) <= TAP_GRAD_MAX_SHARE
        ):
            return _TapGradConv.apply(x, weight, self.bias, padding, self.dilation)
        return F.conv2d(x, weight, self.bias, 1, padding, self.dilation, self.groups)


def is_atrous(conv: nn.Module) -> bool:
    """A plain stride-1 'same' dilated ``nn.Conv2d`` with an odd kernel: what ``AtrousConv2d`` computes faster."""
    if type(conv) is not nn.Conv2d or conv.stride != (1, 1) or conv.padding_mode != "zeros":
        return False
    (kh, kw), (dh, dw) = conv.kernel_size, conv.dilation
    same = conv.padding == "same" or tuple(conv.padding) == (dh * (kh // 2), dw * (kw // 2))
    return max(dh, dw) > 1 and kh % 2 == 1 and kw % 2 == 1 and same


def use_atrous_convs(module: nn.Module) -> int:
    """Swap every dilated conv inside ``module`` (``is_atrous``) for an ``AtrousConv2d`` with its parameters, in
    place; the number swapped."""
    found = [name for name, m in module.named_modules() if name and is_atrous(m)]
    for name in found:
        parent, _, attr = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        setattr(owner, attr, AtrousConv2d.from_conv(getattr(owner, attr)))
    return len(found)


def prepare_for_device(model: Segmenter, device: torch.device | str) -> Segmenter:
    """``model`` (in place) as it runs fastest on ``device``, with the same parameters and state dict. On CPU the
    head's dilated convs become ``AtrousConv2d`` (the head: where it was measured to pay, ASPP's wide rates on
    small maps; the backbone's dilated convs stay timm's); on any other device nothing changes."""
    if torch.device(device).type == "cpu":
        use_atrous_convs(model.head)
    return model
