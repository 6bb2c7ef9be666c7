"""Context heads and the backbone's last-stage options: shapes, parameter counts, and checks against the papers and
reference implementations (torchvision's ASPP, identity inits, zero-offset deformable convs, multi-grid rule)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import timm
import torch
from torch import nn
from typer.testing import CliRunner

from ablate.cli import app
from ablate.core.errors import ConfigError
from ablate.models.backbone import Backbone, BuildError
from ablate.models.head_modules.context import ContextModule, large_widths
from ablate.models.heads import HEADS, HeadParams
from ablate.models.heads.aspp import ASPPParams
from ablate.models.heads.hdc import GriddingWarning, HDCParams, gridding_problem
from ablate.models.heads.ppm import PPMParams
from ablate.models.heads.spp import SPPParams
from ablate.models.layers.deform import DeformConv
from ablate.models.segmenter import build_head, build_model
from ablate.models.spec import ModelConfig
from ablate.study.load import load_study

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bn(c: int) -> int:
    return 2 * c


def expected_params(head: dict, cin: int) -> int | None:
    """Parameter count of each head from its paper's layout (convs without bias unless noted, BN = 2c); None for a
    head without a formula here."""
    c = head["channels"]
    name = head["name"]
    if name == "none":
        return cin * c * 9 + _bn(c)
    if name == "aspp":
        branches = 1 + len(head["rates"]) + 1
        return (cin * c + _bn(c)) * 2 + len(head["rates"]) * (cin * c * 9 + _bn(c)) + branches * c * c + _bn(c)
    if name == "ppm":
        r = cin // len(head["bins"])
        return len(head["bins"]) * (cin * r + _bn(r)) + (cin + len(head["bins"]) * r) * c * 9 + _bn(c)
    if name == "spp":
        return cin * (len(head["bins"]) + 1) * c * 9 + _bn(c)
    if name == "context":  # the FCN front end (3x3 conv-BN), then seven 3x3 + one 1x1 with bias, C channels (basic)
        return (cin * c * 9 + _bn(c)) + 7 * (c * c * 9 + c) + (c * c + c)
    if name == "hdc":
        n = len(head["rates"]) * head["repeats"]
        return cin * c * 9 + _bn(c) + (n - 1) * (c * c * 9 + _bn(c))
    if name == "deformable":  # weight + offset conv (18 channels, with bias) + BN per layer
        return (c * cin * 9 + cin * 18 * 9 + 18 + _bn(c)) + (c * c * 9 + c * 18 * 9 + 18 + _bn(c))
    return None


# Every registered head is tested; these keep some of them small (the others take their defaults, with 8 channels
# where they have channels).
SMALL = {
    "aspp": {"rates": [1, 2, 3]},
    "ppm": {"bins": [1, 2, 3, 6]},
    "spp": {"bins": [1, 2, 4]},
    "context": {"channels": 4},
    "hdc": {"rates": [1, 2, 5], "repeats": 2},
    "deformable": {"layers": 2},
}


def small_head(name: str) -> dict:
    channels = {"channels": 8} if "channels" in HEADS[name].model_fields else {}
    return {"name": name, **channels, **SMALL.get(name, {})}


HEAD_CASES = [small_head(name) for name in HEADS]


def test_every_head_is_registered_and_typed():
    """The papers' heads are registered; every registered head names itself, documents itself and every
    parameter (``ablate heads`` prints them), and builds from its defaults."""
    assert {"none", "aspp", "ppm", "spp", "context", "hdc", "deformable"} <= set(HEADS)
    for name, params in HEADS.items():
        assert params().name == name and (params.__doc__ or "").strip()
        assert all(f.description for key, f in params.model_fields.items() if key != "name"), name


@pytest.mark.parametrize("head", list(HEADS))
def test_an_unknown_head_parameter_names_the_head(tiny_study, head):
    study = tiny_study(f"name: b\nrecipe: recipe.yaml\naxes:\n  model.head: [{{name: {head}, bogus: 1}}]\n")
    with pytest.raises(ConfigError, match=f"unknown key 'bogus'.*allowed for head '{head}'"):
        load_study(study)


@pytest.mark.parametrize("backbone", ["test_resnet", "test_efficientnet"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("head", HEAD_CASES, ids=[h["name"] for h in HEAD_CASES])
def test_head_forward_backward_keeps_size(backbone, output_stride, head):
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate({"backbone": backbone, "output_stride": output_stride, "head": head})
    model = build_model(cfg, num_classes=3)
    cin = model.backbone.high_channels
    expected = expected_params(head, cin)
    assert expected is None or sum(p.numel() for p in model.head.parameters()) == expected
    x = torch.randn(2, 3, 64, 64)
    _, high = model.backbone(x)
    y = model.head(high)
    assert y.shape == (2, model.head.out_channels, 64 // output_stride, 64 // output_stride)
    assert model.head.out_channels == head.get("channels", model.head.out_channels)
    logits = model(x)
    assert logits.shape == (2, 3, 64, 64)
    logits.square().mean().backward()
    grads = [p.grad for p in model.head.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


# ---------------------------------------------------------------------------------------------------- ASPP
def _transplant(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and buffers in registration order (the layouts match module for module)."""
    s, d = src.state_dict(), dst.state_dict()
    assert [v.shape for v in s.values()] == [v.shape for v in d.values()]
    dst.load_state_dict(dict(zip(d, s.values(), strict=True)))


def _randomize(module: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


@pytest.mark.parametrize("rates", [[12, 24, 36], [6, 12, 18], [2, 4]])
def test_aspp_matches_torchvision_with_transplanted_weights(rates):
    from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead

    torch.manual_seed(0)
    ref = TorchvisionASPP(24, rates, out_channels=16).eval()
    _randomize(ref)
    ours = build_head(ASPPParams(rates=rates, channels=16, dropout=0.5), 24).eval()
    _transplant(ref, ours)
    x = torch.randn(2, 24, 13, 11)
    assert (ours(x) - ref(x)).abs().max() < 1e-5
    # DeepLabHead = ASPP (256 channels) + 3x3 conv-BN-ReLU + classifier: its ASPP is ours with the default width
    head = DeepLabHead(24, 5, rates).eval()
    _randomize(head)
    ours = build_head(ASPPParams(rates=rates), 24).eval()
    _transplant(head[0], ours)
    rest = nn.Sequential(*list(head.children())[1:])
    assert (head(x) - rest(ours(x))).abs().max() < 1e-5
    with torch.no_grad():
        ours.branches[1][0].weight.add_(0.1)  # the comparison can fail
    assert (head(x) - rest(ours(x))).abs().max() > 1e-3


def test_aspp_separable_branches_are_depthwise_then_pointwise():
    cfg = ModelConfig.model_validate({"head": {"name": "aspp", "rates": [6, 12], "separable": True, "channels": 8}})
    head = build_model(cfg, 3).head
    cin = 96  # test_resnet's last feature
    for branch, rate in zip(head.branches[1:3], [6, 12], strict=True):
        depthwise, pointwise = branch[0][0], branch[1][0]
        assert depthwise.groups == cin and depthwise.dilation == (rate, rate) and depthwise.kernel_size == (3, 3)
        assert pointwise.kernel_size == (1, 1) and pointwise.out_channels == 8
    plain = build_model(ModelConfig.model_validate({"head": {"name": "aspp", "rates": [6, 12], "channels": 8}}), 3)
    assert sum(p.numel() for p in head.parameters()) < sum(p.numel() for p in plain.head.parameters())


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("cpu_path", [False, True], ids=["plain", "cpu_path"])
def test_aspp_gradients_match_torchvision(channels_last, cpu_path):
    """The input's and every weight's gradient equal torchvision's ASPP, in NCHW and channels_last, for the module
    as built and as the CPU path runs it (a small map: the wide rates drop taps)."""
    from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

    from ablate.train.cpu_speed import AtrousConv2d, use_atrous_convs

    rates = [2, 4, 12]
    ref = TorchvisionASPP(24, rates, out_channels=16).eval()
    _randomize(ref)
    ours = build_head(ASPPParams(rates=rates, channels=16), 24).eval()
    _transplant(ref, ours)
    if cpu_path:  # what prepare_for_device does to a model's head on CPU
        use_atrous_convs(ours)
        assert any(isinstance(m, AtrousConv2d) for m in ours.modules())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ref.to(memory_format=fmt)
    ours.to(memory_format=fmt)
    base = torch.randn(2, 24, 9, 11, generator=torch.Generator().manual_seed(3)).contiguous(memory_format=fmt)
    inputs = []
    for module in (ref, ours):
        x = base.clone().requires_grad_(True)
        module(x).square().mean().backward()
        inputs.append(x.grad)
    assert (inputs[0] - inputs[1]).abs().max() < 1e-5
    ref_grads = [p.grad for p in ref.parameters()]
    our_grads = [p.grad for p in ours.parameters()]
    assert len(ref_grads) == len(our_grads)
    for g, h in zip(ref_grads, our_grads, strict=True):
        assert g.shape == h.shape and (g - h).abs().max() <= 1e-5 * max(1.0, float(g.abs().max()))


# ---------------------------------------------------------------------------------------------------- PPM / SPP
def test_ppm_table1_axes():
    x = torch.randn(2, 12, 9, 9)
    b1_max = build_head(PPMParams(bins=[1], pooling="max", reduction=False, channels=8), 12)
    assert isinstance(b1_max.levels[0].pool, nn.AdaptiveMaxPool2d) and isinstance(b1_max.levels[0].reduce, nn.Identity)
    assert b1_max.bottleneck[0][0].in_channels == 12 + 12
    b1236_avg_dr = build_head(PPMParams(bins=[1, 2, 3, 6], pooling="avg", reduction=True, channels=8), 12)
    assert [lvl.pool.output_size for lvl in b1236_avg_dr.levels] == [1, 2, 3, 6]
    assert b1236_avg_dr.bottleneck[0][0].in_channels == 12 + 4 * 3  # DR: each level to in/4 channels
    assert b1236_avg_dr(x).shape == (2, 8, 9, 9)
    # the B1 level is global context: a pixel far away changes the output everywhere
    level = b1_max.levels[0]
    y0 = level(x)
    x2 = x.clone()
    x2[:, :, 0, 0] += 100
    assert (level(x2)[:, :, 8, 8] != y0[:, :, 8, 8]).any()


def test_spp_max_pyramid_without_reduction():
    head = build_head(SPPParams(channels=8), 10)
    assert [p.pool.output_size for p in head.pools] == [1, 2, 4]
    assert all(isinstance(p.pool, nn.AdaptiveMaxPool2d) for p in head.pools)
    assert head.fuse[0].in_channels == 10 * 4
    x = torch.randn(1, 10, 8, 8)
    assert head(x).shape == (1, 8, 8, 8)


# ---------------------------------------------------------------------------------------------------- context
def test_context_module_layout_follows_table1():
    module = ContextModule(21, [1, 1, 2, 4, 8, 16, 1], "basic")
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert [c.dilation[0] for c in convs] == [1, 1, 2, 4, 8, 16, 1, 1]
    assert [c.kernel_size[0] for c in convs] == [3] * 7 + [1]
    assert all(c.out_channels == 21 for c in convs)
    assert sum(isinstance(m, nn.ReLU) for m in module.modules()) == 7  # layer 8 is not truncated
    assert large_widths(7) == [2, 2, 4, 8, 16, 32, 32]
    large = ContextModule(3, [1, 1, 2, 4, 8, 16, 1], "large")
    assert [c.out_channels for c in large.modules() if isinstance(c, nn.Conv2d)] == [6, 6, 12, 24, 48, 96, 96, 3]
    d10 = ContextModule(3, [1, 1, 2, 4, 8, 16, 32, 64, 1])
    assert [c.dilation[0] for c in d10.modules() if isinstance(c, nn.Conv2d)] == [1, 1, 2, 4, 8, 16, 32, 64, 1, 1]


def test_context_basic_identity_init_returns_input():
    module = ContextModule(5, [1, 1, 2, 4, 8, 16, 1], "basic")
    x = torch.rand(2, 5, 20, 17)  # non-negative: the paper's truncation (ReLU) keeps it
    assert torch.allclose(module(x), x, atol=1e-6)
    assert not torch.allclose(module(x - 0.5), x - 0.5)  # negative values are truncated: the check can fail


def test_context_head_starts_as_the_fcn_baseline():
    """With the FCN front end, the identity-initialised module passes the front end's (non-negative) output on: at
    init the context head computes what the none head computes. The bare 1x1 front end does not (its signed output
    is cut at the module's first ReLU): the fall of Yu & Koltun's reduced Table 3."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 9, 9)
    none = build_head(HEADS["none"](channels=8), 16).eval()
    context = build_head(HEADS["context"](channels=8), 16).eval()
    context.project.load_state_dict(none.conv.state_dict())
    assert torch.allclose(context(x), none(x), atol=1e-6)
    project = build_head(HEADS["context"](channels=8, front_end="project"), 16).eval()
    signed = project.project(x)
    assert (signed < 0).any() and torch.allclose(project(x), signed.clamp(min=0), atol=1e-6)


def test_context_large_generalised_identity_init():
    torch.manual_seed(0)
    classes = 3
    exact = ContextModule(classes, [1, 1, 2, 4, 8, 16, 1], "large", init_noise=0.0)
    x = torch.rand(2, classes, 16, 16)
    assert torch.allclose(exact(x), x, atol=1e-5)
    # inside, a layer of width c holds input channel floor(b C / c) in channel b, scaled by C / c (block identity)
    h = x
    for layer, width in zip(exact.layers[0:14:2], exact.widths, strict=True):
        h = torch.relu(layer(h))
        block = x[:, torch.arange(width) * classes // width] * classes / width
        assert torch.allclose(h, block, atol=1e-5), width
    noisy = ContextModule(classes, [1, 1, 2, 4, 8, 16, 1], "large", init_noise=0.01)
    w = noisy.layers[2].weight  # 6 -> 12 channels: identity value C/c_out = 1/4, noise std 0.01 / 4
    off = w.clone()
    off[:, :, 1, 1] = 0
    assert 0 < off.std() < 0.05 * 3 / 12
    assert torch.allclose(noisy(x), x, atol=0.1) and not torch.allclose(noisy(x), x, atol=1e-4)


def test_context_large_with_bn_starts_as_the_basic_module_with_bn():
    """With BN, the block identity survives only if BN's scale starts at C / c_out: the large module at zero noise
    then computes what the basic one does (without it, the last 1x1 summed 32 unit copies: 32x the basic output)."""
    torch.manual_seed(0)
    dilations = [1, 1, 2, 4, 8, 16, 1]
    x = torch.randn(4, 3, 20, 20)
    basic = ContextModule(3, dilations, "basic", bn=True).train()
    large = ContextModule(3, dilations, "large", init_noise=0.0, bn=True).train()
    ref = basic(x)
    assert ref.abs().mean() > 0.1
    assert torch.allclose(large(x), ref, rtol=0.02, atol=0.02)  # BN eps: the scaled copies have a smaller variance


# ---------------------------------------------------------------------------------------------------- HDC
def test_gridding_rule():
    assert gridding_problem([1, 2, 5]) is None
    assert gridding_problem([1, 2, 3]) is None
    assert gridding_problem([1]) is None
    assert "common factor 2" in gridding_problem([2, 4, 8])
    assert "M_2 = 5" in gridding_problem([1, 2, 9])  # the paper's counter-example
    assert "common factor 2" in gridding_problem([2])


def test_hdc_warns_when_pattern_grids():
    with pytest.warns(GriddingWarning, match="common factor 2"):
        build_head(HDCParams(rates=[2, 4, 8], channels=4), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GriddingWarning)
        head = build_head(HDCParams(rates=[1, 2, 5], repeats=2, channels=4), 4)
    assert [m.dilation[0] for m in head.layers.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 5, 1, 2, 5]


def test_residual_hdc_starts_as_its_first_layer():
    """Each later layer is relu(x + BN(conv(x))) with BN's scale at 0: at init the cascade passes the first layer's
    (non-negative) output through unchanged, in training and in eval mode; the plain cascade does not."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 12, 12)
    for train in (True, False):
        head = build_head(HDCParams(rates=[1, 2, 5], repeats=2, channels=6), 4).train(train)
        first = head.layers[0](x)
        torch.testing.assert_close(head(x), first, rtol=0, atol=0)
        plain = build_head(HDCParams(rates=[1, 2, 5], repeats=2, channels=6, residual=False), 4).train(train)
        assert not torch.allclose(plain(x), plain.layers[0](x))


def test_hdc_pattern_covers_the_receptive_field_without_holes():
    """The centre output of a cascade with rates 1,2,5 depends on every input pixel within its reach; 2,4 does not."""
    def holes(rates):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GriddingWarning)
            # the plain cascade: the taps' union is the pattern's (the residual form adds shortcuts, not taps)
            head = build_head(HDCParams(rates=rates, repeats=1, channels=1, residual=False), 1).eval()
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 1.0)
        x = torch.ones(1, 1, 41, 41, requires_grad=True)
        head(x)[0, 0, 20, 20].backward()
        reach = sum(rates)
        window = x.grad[0, 0, 20 - reach : 21 + reach, 20 - reach : 21 + reach]
        return int((window == 0).sum())

    assert holes([1, 2, 5]) == 0
    assert holes([2, 4]) > 0


# ---------------------------------------------------------------------------------------------------- deformable
@pytest.mark.parametrize("stride,dilation,groups", [(1, 1, 1), (1, 2, 1), (2, 1, 1), (1, 2, 6)])
def test_deformable_with_zero_offsets_equals_plain_conv(stride, dilation, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 12, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=True)
    x = torch.randn(2, 6, 11, 13)
    deform = DeformConv.from_conv(conv)
    assert deform.weight is conv.weight and torch.count_nonzero(deform.offset.weight) == 0
    assert (deform(x) - conv(x)).abs().max() < 1e-5
    modulated = DeformConv.from_conv(conv, modulated=True)
    bias = conv.bias[None, :, None, None]
    assert (modulated(x) - (0.5 * (conv(x) - bias) + bias)).abs().max() < 1e-5  # DCNv2: mask sigmoid(0) = 0.5
    with torch.no_grad():
        deform.offset.bias.fill_(0.5)  # shifted sampling grid: no longer the plain conv
    assert (deform(x) - conv(x)).abs().max() > 1e-3
    deform(x).sum().backward()
    assert deform.offset.weight.grad is not None and deform.offset.weight.grad.abs().sum() > 0


def test_deformable_backbone_keeps_pretrained_weights(tmp_path):
    torch.manual_seed(0)
    plain = timm.create_model("test_resnet", pretrained=False)
    path = tmp_path / "test_resnet.pth"
    torch.save(plain.state_dict(), path)
    bb = Backbone("test_resnet", 16, weights=str(path), deformable_blocks=1, deformable_modulated=True)
    block = bb.last_stage_blocks()[-1]
    assert isinstance(block.conv2, DeformConv) and block.conv2.modulated
    assert torch.equal(block.conv2.weight, plain.state_dict()["layer4.0.conv2.weight"])
    assert torch.equal(bb.body.layer1[0].conv1.weight, plain.state_dict()["layer1.0.conv1.weight"])
    # a checkpoint of the plain backbone loads; only the new offset convs are missing
    result = bb.load_state_dict(Backbone("test_resnet", 16).state_dict(), strict=False)
    assert result.unexpected_keys == [] and result.missing_keys
    assert all(".offset." in k for k in result.missing_keys)
    low, high = bb(torch.randn(2, 3, 64, 64))
    assert high.shape == (2, 96, 4, 4)


def test_deformable_blocks_beyond_the_last_stage_is_refused():
    with pytest.raises(BuildError, match="deformable_blocks must be 0..1") as info:
        Backbone("test_resnet", 16, deformable_blocks=2)
    assert info.value.key == "model.deformable_blocks"


# ---------------------------------------------------------------------------------------------------- multi-grid
@pytest.mark.parametrize("output_stride,expected", [(16, [2, 4, 8]), (8, [4, 8, 16]), (32, [1, 2, 4])])
def test_multi_grid_rates_follow_deeplabv3(output_stride, expected):
    """DeepLabv3 Sec. 3.2: block4's three convs get unit rate x stage rate; read from the built modules."""
    with torch.device("meta"):
        bb = Backbone("resnet50", output_stride, multi_grid=[1, 2, 4])
    assert [blk.conv2.dilation for blk in bb.body.layer4] == [(r, r) for r in expected]
    assert [blk.conv2.padding for blk in bb.body.layer4] == [(r, r) for r in expected]
    with torch.device("meta"):
        default = Backbone("resnet50", 16)
    assert [blk.conv2.dilation[0] for blk in default.body.layer4] == [1, 2, 2]  # timm: no multi-grid


def test_backbone_args_reach_timm_and_give_multi_grid_its_blocks():
    """``model.backbone_args`` go to timm.create_model: test_resnet with three last-stage blocks makes the three
    multi-grid settings that one block cannot tell apart (it has only two convs) into different networks."""
    dilations = {}
    for grid in ([1, 2, 1], [1, 2, 3], [1, 2, 4]):
        bb = Backbone("test_resnet", 16, multi_grid=grid, backbone_args={"layers": [1, 1, 1, 3]})
        assert len(bb.last_stage_blocks()) == 3
        dilations[tuple(grid)] = [c.dilation[0] for c in bb.last_stage_convs()]
    assert dilations[(1, 2, 4)] == [2, 4, 8, 2, 4, 8]  # unit rate x 2 at OS 16, cycled over the 6 convs
    assert len({tuple(d) for d in dilations.values()}) == 3
    one = [Backbone("test_resnet", 16, multi_grid=g).last_stage_convs() for g in ([1, 2, 3], [1, 2, 4])]
    assert [c.dilation for c in one[0]] == [c.dilation for c in one[1]]  # the default one block: the same model
    with pytest.raises(BuildError, match="unexpected keyword argument .no_such_arg.") as info:
        Backbone("test_resnet", 16, backbone_args={"no_such_arg": 1})
    assert info.value.key == "model.backbone_args"


def test_hdc_rates_in_the_backbone_and_forward():
    with pytest.warns(GriddingWarning):
        Backbone("test_resnet", 16, hdc_rates=[2, 4])
    bb = Backbone("test_resnet", 8, hdc_rates=[1, 2, 5])
    assert [c.dilation[0] for c in bb.last_stage_convs()] == [1, 2]  # BasicBlock: two 3x3 convs
    mg = Backbone("test_efficientnet", 16, multi_grid=[1, 2])
    assert [c.dilation[0] for c in mg.last_stage_convs()] == [2]
    _, high = mg(torch.randn(1, 3, 64, 64))
    assert high.shape[-2:] == (4, 4)


def test_multi_grid_and_hdc_rates_are_exclusive(tiny_study):
    study = tiny_study("name: s\nrecipe: recipe.yaml\nset: {model.multi_grid: [1, 2], model.hdc_rates: [1, 2, 5]}\n")
    result = runner.invoke(app, ["run", str(study), "--results", str(study.parent / "results")])
    out = result.output.strip()
    assert result.exit_code == 2 and len(out.splitlines()) == 1, out
    assert "set.model.hdc_rates" in out and "multi_grid or hdc_rates, not both" in out
    assert not (study.parent / "results").exists()


BAD_HEADS = {
    "unknown_key": (
        "{name: ppm, bin: [1, 2]}",
        ["axes.model.head", "unknown key 'bin'", "did you mean 'bins'", "allowed for head 'ppm': name, bins, pooling"],
    ),
    "ill_typed_literal": (
        "{name: ppm, pooling: median}",
        ["axes.model.head", "head 'ppm'", "pooling", "'median'", "'avg' | 'max'"],
    ),
    "ill_typed_list": (
        "{name: hdc, rates: [1, two]}",
        ["axes.model.head", "head 'hdc'", "model.head.rates[1]", "'two'", "allowed: list[int > 0]"],
    ),
    "ill_typed_bool": (
        "{name: deformable, modulated: maybe}",
        ["axes.model.head", "head 'deformable'", "model.head.modulated", "'maybe'", "allowed: bool"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_HEADS))
def test_bad_head_parameter_is_one_line(tiny_study, case):
    value, expected = BAD_HEADS[case]
    study = tiny_study(f"name: s\nrecipe: recipe.yaml\naxes:\n  model.head: [{value}]\n")
    result = runner.invoke(app, ["run", str(study), "--results", str(study.parent / "results")])
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert len(out.splitlines()) == 1 and "Traceback" not in out, out
    for fragment in expected:
        assert fragment in out, (fragment, out)
    assert not (study.parent / "results").exists()


def test_heads_command_lists_every_head_without_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from ablate.cli import app; "
        "r = CliRunner().invoke(app, ['heads']); print(r.output); assert r.exit_code == 0; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert out.returncode == 0, out.stderr
    for name, params in HEADS.items():
        assert f"{name}: " in out.stdout
        for key in params.model_fields:
            if key != "name":
                assert key in out.stdout, (name, key)
    assert "[1, 2, 3, 6]" in out.stdout and "'avg' | 'max'" in out.stdout and "list[int > 0]" in out.stdout
    result = runner.invoke(app, ["heads", "pp"])
    assert result.exit_code == 2 and "did you mean" in result.output


def test_last_stage_options_build_on_meta_for_preflight():
    cfg = ModelConfig.model_validate(
        {"backbone": "resnet50", "multi_grid": [1, 2, 4], "deformable_blocks": 3, "head": {"name": "deformable"}}
    )
    with torch.device("meta"):
        model = build_model(cfg, 21)
    convs = model.backbone.last_stage_convs()
    assert all(isinstance(c, DeformConv) for c in convs) and [c.dilation[0] for c in convs] == [2, 4, 8]


@pytest.mark.parametrize("head", [n for n in HEADS if n != "deformable"])  # torchvision's deform_conv2d is NCHW
def test_heads_keep_channels_last_through_every_module(head):
    """A branch that comes out NCHW (a broadcast image-pooling feature, an upsampled pyramid level) would turn the
    concatenation and every branch's gradient NCHW."""
    cfg = ModelConfig.model_validate({"backbone": "test_resnet", "output_stride": 8, "head": {"name": head}})
    model = build_model(cfg, 5).to(memory_format=torch.channels_last).train()
    nchw: list[str] = []

    def check(name, out):
        if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[1] > 1 and out.shape[2] * out.shape[3] > 1:
            if not out.is_contiguous(memory_format=torch.channels_last):
                nchw.append(name)

    for name, module in model.head.named_modules():
        module.register_forward_hook(lambda m, i, o, name=name: check(name, o))
    model(torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last))
    assert nchw == []


# ---------------------------------------------------------------------------------------------------- kept layouts
FROZEN = json.loads((Path(__file__).parent / "head_state_dicts.json").read_text())


def _fingerprint(module: nn.Module, x: torch.Tensor) -> dict:
    state = module.state_dict()
    with torch.no_grad():
        out = module.eval()(x).double()
    return {
        "state_dict": [f"{k} {'x'.join(map(str, v.shape)) or 'scalar'}" for k, v in state.items()],
        "param_count": sum(p.numel() for p in module.parameters()),
        "weight_sum": float(sum(v.double().sum() for v in state.values() if v.is_floating_point())),
        "out_shape": list(out.shape),
        "out_sum": float(out.sum()),
        "out_abs_sum": float(out.abs().sum()),
    }


def _same_as_frozen(got: dict, frozen: dict) -> None:
    assert got["state_dict"] == frozen["state_dict"]  # keys, their order and shapes: checkpoints load
    assert got["param_count"] == frozen["param_count"]
    assert got["weight_sum"] == pytest.approx(frozen["weight_sum"], rel=1e-6)  # the same init from the same seed
    assert got["out_shape"] == frozen["out_shape"]
    scale = frozen["out_abs_sum"]  # the same function
    assert got["out_abs_sum"] == pytest.approx(scale, rel=1e-5)
    assert got["out_sum"] == pytest.approx(frozen["out_sum"], abs=1e-5 * scale)


@pytest.mark.parametrize("case", FROZEN["heads"], ids=lambda c: f"{c['name']}-{c['in_channels']}-{len(c['config'])}")
def test_heads_keep_their_state_dicts_parameters_and_init(case):
    """Every built-in head, at its defaults and other configs, has the state dict (keys, order, shapes), parameter
    count, seeded init and function it had when heads were built by ``HeadParams.build`` (frozen in
    ``head_state_dicts.json``): committed checkpoints load and seeded runs start where they did."""
    params = HEADS[case["name"]](**case["config"])
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GriddingWarning)
        head = build_head(params, case["in_channels"])
    x = torch.randn(2, case["in_channels"], 9, 11, generator=torch.Generator().manual_seed(1))
    _same_as_frozen(_fingerprint(head, x), case)


def test_every_head_is_frozen():
    assert {c["name"] for c in FROZEN["heads"]} == set(HEADS)


@pytest.mark.parametrize("case", FROZEN["models"], ids=lambda c: c["model"]["head"]["name"])
def test_models_keep_their_state_dicts(case):
    torch.manual_seed(0)
    model = build_model(ModelConfig.model_validate(case["model"]), case["classes"])
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    _same_as_frozen(_fingerprint(model, x), case)


# ---------------------------------------------------------------------------------------------------- the contract
class _Doubler(nn.Module):
    """A head as a user writes one: a plain module with its own forward."""

    def __init__(self, in_channels: int, params: HeadParams):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, params.width, 1)
        self.out_channels = params.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.conv(x)


def _params(target, **fields):
    """An (unregistered) head params class whose ``module`` is ``target``."""

    class Params(HeadParams):
        name: Literal["mine"] = "mine"
        width: int = 3
        module: ClassVar = target

    return Params(**fields)


def test_a_head_is_its_params_and_a_plain_module():
    head = build_head(_params(_Doubler, width=5), 4)
    assert isinstance(head, _Doubler) and head.out_channels == 5
    x = torch.randn(1, 4, 3, 3)
    assert torch.allclose(head(x), 2 * head.conv(x))
    assert HEADS["aspp"].module_class().__name__ == "ASPP"  # the import path, resolved
    assert ASPPParams().module_class() is HEADS["aspp"].module_class()
    for name, params in HEADS.items():  # every built-in head: a params class naming an nn.Module class
        assert issubclass(params.module_class(), nn.Module), name
        assert params.module.startswith("ablate.models.head_modules." + name + ":"), name


class _NoWidth(nn.Identity):
    def __init__(self, in_channels: int, params: HeadParams):
        super().__init__()


class _ZeroWidth(_NoWidth):
    out_channels = 0


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_package.heads:Head", r"cannot import 'no_such_package.heads:Head': ModuleNotFoundError"),
        ("ablate.models.head_modules.aspp:Nope", r"cannot import .*AttributeError.*Nope"),
        ("ablate.models.head_modules.aspp", r"needs the import path of its nn.Module class, 'package.module:Class'"),
        ("torch.nn:functional", r"'torch.nn:functional' is not a class"),
        (dict, r"builtins.dict is not a torch.nn.Module"),
        (_NoWidth, r"_NoWidth must set self.out_channels to a positive int in __init__ \(got None\)"),
        (_ZeroWidth, r"_ZeroWidth must set self.out_channels to a positive int in __init__ \(got 0\)"),
    ],
)
def test_a_head_that_cannot_be_built_is_one_line_naming_it(target, message):
    with pytest.raises(BuildError, match=message) as info:
        build_head(_params(target), 4)
    assert info.value.key == "model.head.name" and "model.head.name 'mine'" in str(info.value)
    assert "\n" not in str(info.value)
