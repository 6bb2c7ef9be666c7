"""The CPU's atrous conv (``ablate.train.cpu_speed``): the same function and gradients as ``nn.Conv2d`` with less
work, swapped into a model's head on CPU only, with the same parameters and state dict; on any other device the model
keeps PyTorch's own ``nn.Conv2d``."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import TINY_RECIPE
from test_heads import _one_thread  # noqa: F401 - its autouse fixture: tiny tensors, one thread
from torch import nn

from ablate.models.heads import HEADS
from ablate.models.layers.deform import DeformConv
from ablate.models.segmenter import build_model
from ablate.models.spec import ModelConfig
from ablate.train.cpu_speed import AtrousConv2d, is_atrous, prepare_for_device, use_atrous_convs


@pytest.mark.parametrize(
    ("size", "dilation", "groups", "taps"),
    [((4, 4), 6, 1, 1), ((16, 16), 18, 1, 1), ((16, 16), 12, 1, 9), ((5, 20), 6, 1, 3), ((8, 8), 8, 4, 1),
     ((8, 8), 7, 4, 9), ((1, 1), 2, 1, 1)],
)  # fmt: skip
def test_atrous_conv_skips_padding_taps_with_the_same_output_and_gradients(size, dilation, groups, taps):
    """Taps that can only read zero padding are not computed; output and both gradients equal the full conv's."""
    from torch.utils.flop_counter import FlopCounterMode

    from ablate.train.cpu_speed import AtrousConv2d

    torch.manual_seed(0)
    conv = AtrousConv2d(8, 12, 3, dilation, groups=groups)
    x = torch.randn(2, 8, *size, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    counter = FlopCounterMode(display=False)
    with counter:
        out = conv(x)
    ref = nn.functional.conv2d(x_ref, conv.weight, conv.bias, 1, dilation, dilation, groups)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-5
    grad = torch.randn_like(ref)
    out.backward(grad)
    weight_grad = conv.weight.grad.clone()
    conv.weight.grad = None
    ref.backward(grad)
    assert (x.grad - x_ref.grad).abs().max() < 1e-5
    assert (weight_grad - conv.weight.grad).abs().max() < 1e-4
    full = 2 * 2 * 12 * (8 // groups) * 9 * size[0] * size[1]
    assert counter.get_total_flops() == full * taps // 9  # the skipped taps cost nothing


def test_atrous_conv_keeps_the_conv2d_state_dict():
    from ablate.train.cpu_speed import AtrousConv2d

    assert AtrousConv2d(4, 6, 3, 5).state_dict().keys() == nn.Conv2d(4, 6, 3).state_dict().keys()
    with pytest.raises(ValueError, match="odd kernel"):
        AtrousConv2d(4, 6, 2, 5)


@pytest.mark.parametrize(
    ("size", "dilation", "channels_last", "bias"),
    [((16, 16), 12, True, True), ((16, 16), 6, False, False), ((5, 20), 3, True, True), ((9, 9), 4, False, True)],
)  # fmt: skip
def test_atrous_tap_weight_gradient_equals_the_conv_gradient(size, dilation, channels_last, bias):
    """Where most products read padding, the weight gradient is summed tap by tap over the real input only: the
    gradients (input, weight, bias) are the conv's, and the weight gradient has the parameter's layout."""
    from ablate.train.cpu_speed import TAP_GRAD_MAX_SHARE, AtrousConv2d, real_share

    assert real_share(size, (3, 3), (dilation, dilation)) <= TAP_GRAD_MAX_SHARE
    torch.manual_seed(0)
    conv = AtrousConv2d(8, 12, 3, dilation, bias=bias)
    x = torch.randn(2, 8, *size)
    if channels_last:
        conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = conv(x)
    ref = nn.functional.conv2d(x, conv.weight, conv.bias, 1, dilation, dilation)
    assert _backward_flops(out) < _backward_flops(ref)  # only the products that read real input
    assert (out - ref).abs().max() < 1e-5
    grad = torch.randn_like(ref)
    wrt = [x, conv.weight] + ([conv.bias] if bias else [])
    got, want = torch.autograd.grad(out, wrt, grad), torch.autograd.grad(ref, wrt, grad)
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max() < 1e-4 * w.abs().max()
    assert got[1].stride() == conv.weight.stride()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 autocast: the same as autocast's own conv backward
        out, ref = conv(x), nn.functional.conv2d(x, conv.weight, conv.bias, 1, dilation, dilation)
    got, want = torch.autograd.grad(out.float(), wrt, grad), torch.autograd.grad(ref.float(), wrt, grad)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype == torch.float32 and (g - w).abs().max() < 1e-2 * w.abs().max()


def _backward_flops(out: torch.Tensor) -> int:
    """Multiply-adds (x2) the backward pass of ``out`` computes, by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out.sum().backward(retain_graph=True)
    return counter.get_total_flops()


def test_atrous_real_share_and_when_the_tap_gradient_is_used():
    from ablate.train.cpu_speed import AtrousConv2d, real_share

    assert real_share((16, 16), (3, 3), (12, 12)) == 0.25  # per axis: (16 + 4 + 4) / 48
    assert real_share((16, 16), (3, 3), (6, 6)) == 0.75**2
    assert real_share((16, 16), (1, 1), (18, 18)) == 1.0
    x = torch.randn(1, 4, 32, 32, requires_grad=True)

    def plain(conv, inp):
        return nn.functional.conv2d(inp, conv.weight, conv.bias, 1, conv.padding, conv.dilation, conv.groups)

    conv = AtrousConv2d(4, 4, 3, 2)  # share 0.88: the conv kernel's gradient, every product
    assert _backward_flops(conv(x)) == _backward_flops(plain(conv, x))
    wide = AtrousConv2d(4, 4, 3, 12)  # share 0.25: tap by tap, the real products only
    small = x[:, :, :16, :16]
    assert _backward_flops(wide(small)) < _backward_flops(plain(wide, small))
    with torch.no_grad():
        assert wide(small).grad_fn is None
    grouped = AtrousConv2d(4, 4, 3, 12, groups=4)  # depthwise (separable ASPP): the conv kernel's gradient
    assert _backward_flops(grouped(small)) == _backward_flops(plain(grouped, small))


# ------------------------------------------------------------------------------------------- where it is used
def _model(head: dict, backbone: str = "test_resnet", output_stride: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig.model_validate({"backbone": backbone, "output_stride": output_stride,
                                                   "head": head}), 3)  # fmt: skip


def _dilated_head_convs(model: nn.Module) -> list[str]:
    return [n for n, m in model.head.named_modules() if isinstance(m, nn.Conv2d) and max(m.dilation) > 1]


HEAD_CASES = [
    {"name": "aspp", "rates": [2, 6, 12], "channels": 8},
    {"name": "aspp", "rates": [3, 9], "separable": True, "channels": 8},  # depthwise atrous convs
    {"name": "context", "channels": 4, "variant": "large", "dilations": [1, 2, 4, 1]},  # with bias
    {"name": "hdc", "rates": [1, 2, 5], "channels": 8},
    {"name": "hdc", "rates": [1, 2, 5], "channels": 8, "residual": False},
]


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_is_built_from_plain_convs(name):
    """A head as built (on any device: the build does not know it) holds torch's own ``nn.Conv2d``, dilated ones
    included, or the deformable conv; no faster subclass."""
    model = _model({"name": name, **({"channels": 8} if "channels" in HEADS[name].model_fields else {})})
    convs = [m for m in model.head.modules() if isinstance(m, nn.Conv2d | DeformConv)]
    assert convs and all(type(m) in (nn.Conv2d, DeformConv) for m in convs)


@pytest.mark.parametrize("device", [torch.device("cuda"), "cuda:1", torch.device("meta"), "mps"])
def test_other_devices_keep_pytorchs_own_conv(device):
    """``prepare_for_device`` changes nothing for a device other than the CPU: every conv stays ``nn.Conv2d``."""
    model = _model({"name": "aspp", "rates": [2, 6, 12], "channels": 8})
    before = [(n, type(m)) for n, m in model.named_modules()]
    assert prepare_for_device(model, device) is model
    assert [(n, type(m)) for n, m in model.named_modules()] == before
    assert _dilated_head_convs(model) and not any(isinstance(m, AtrousConv2d) for m in model.modules())


@pytest.mark.parametrize("head", HEAD_CASES, ids=lambda h: f"{h['name']}-{len(h)}")
def test_cpu_swaps_the_heads_dilated_convs_keeping_parameters_and_random_stream(head):
    model = _model(head)
    dilated = _dilated_head_convs(model)
    params = dict(model.named_parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    backbone_types = [type(m) for m in model.backbone.modules()]
    rng = torch.random.get_rng_state()
    prepare_for_device(model, torch.device("cpu"))
    assert torch.equal(torch.random.get_rng_state(), rng)  # the training's random stream is the one without it
    assert dilated and [n for n, m in model.head.named_modules() if isinstance(m, AtrousConv2d)] == dilated
    assert all(type(m) is nn.Conv2d and m.dilation == (1, 1) for n, m in model.head.named_modules()
               if isinstance(m, nn.Conv2d) and n not in dilated)  # fmt: skip
    assert [type(m) for m in model.backbone.modules()] == backbone_types  # the backbone's dilated convs: timm's
    after = dict(model.named_parameters())
    assert list(after) == list(params) and all(after[k] is params[k] for k in params)  # the very parameters
    new_state = model.state_dict()
    assert list(new_state) == list(state) and all(torch.equal(new_state[k], state[k]) for k in state)
    assert use_atrous_convs(model.head) == 0  # once is all


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("head", HEAD_CASES, ids=lambda h: f"{h['name']}-{len(h)}")
def test_cpu_path_gives_the_plain_models_output_and_gradients(head, channels_last):
    """A model prepared for the CPU computes what the plain one does: output and every parameter's gradient, in
    NCHW and channels_last (the small map makes the wide rates drop taps and take the tap-by-tap gradient)."""
    plain = _model(head).train()
    fast = prepare_for_device(copy.deepcopy(plain), "cpu")
    assert any(isinstance(m, AtrousConv2d) for m in fast.modules())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # OS 16: a 4 x 4 map
    if channels_last:
        plain.to(memory_format=torch.channels_last)
        fast.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    outs = []
    for model in (plain, fast):
        torch.manual_seed(1)  # dropout
        out = model(x)
        out.square().mean().backward()
        outs.append(out)
    assert (outs[0] - outs[1]).abs().max() < 1e-5
    grads = dict(fast.named_parameters())
    for name, p in plain.named_parameters():
        g, h = p.grad, grads[name].grad
        assert (g is None) == (h is None), name
        if g is not None:
            assert (g - h).abs().max() <= 1e-4 * max(1.0, g.abs().max()), name
            if h.dim() == 4:  # the gradient in its parameter's layout
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                assert h.is_contiguous(memory_format=fmt) and g.is_contiguous(memory_format=fmt), name


def test_what_counts_as_an_atrous_conv():
    assert is_atrous(nn.Conv2d(4, 4, 3, padding=2, dilation=2))
    assert is_atrous(nn.Conv2d(4, 4, 3, padding="same", dilation=3, groups=4))
    assert is_atrous(nn.Conv2d(4, 4, (3, 1), padding=(3, 0), dilation=(3, 5)))
    assert not is_atrous(nn.Conv2d(4, 4, 3, padding=1))  # not dilated
    assert not is_atrous(nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2))
    assert not is_atrous(nn.Conv2d(4, 4, 3, padding=1, dilation=2))  # not 'same'
    assert not is_atrous(nn.Conv2d(4, 4, 2, padding=1, dilation=2))  # even kernel
    assert not is_atrous(nn.Conv2d(4, 4, 3, padding=2, dilation=2, padding_mode="reflect"))
    assert not is_atrous(AtrousConv2d(4, 4, 3, 2))  # already swapped
    conv = nn.Conv2d(4, 6, (3, 5), padding=(2, 6), dilation=(2, 3))
    fast = AtrousConv2d.from_conv(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias and fast.padding == conv.padding
    x = torch.randn(1, 4, 7, 9)
    assert (fast(x) - conv(x)).abs().max() < 1e-5


def test_training_and_evaluation_on_cpu_take_the_cpu_path(tmp_path, monkeypatch):
    """The training loop and the evaluation prepare the model for their device: on CPU, the tiny recipe's ASPP
    (rates 2 and 4 on a 2 x 2 map) runs the atrous convs; the saved model is the plain model's state dict."""
    from ablate.config.schema import Recipe
    from ablate.train import cpu_speed, loop, record
    from ablate.train.job import run_job
    from ablate.train.loop import MODEL_FILE

    seen = []

    def spy(model, device):
        out = cpu_speed.prepare_for_device(model, device)
        seen.append((torch.device(device).type, sum(isinstance(m, AtrousConv2d) for m in model.modules())))
        return out

    monkeypatch.setattr(loop, "prepare_for_device", spy)
    monkeypatch.setattr(record, "prepare_for_device", spy)
    config = Recipe.model_validate(yaml.safe_load(TINY_RECIPE)).model_dump()
    (tmp_path / "run").mkdir()
    (tmp_path / "train").mkdir()
    result = run_job(config, tmp_path / "run", tmp_path / "train")
    assert result["trained"] and seen == [("cpu", 2), ("cpu", 2)]  # the training's model, the evaluation's
    recipe = Recipe.model_validate(config)
    plain = build_model(recipe.model, 6)
    plain.load_state_dict(torch.load(tmp_path / "train" / MODEL_FILE, weights_only=True), strict=True)
