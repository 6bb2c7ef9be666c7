"""Multiply-adds the cost record reports, against counts written out by hand: one deformable conv (v1 and v2, with
groups, dilation and stride), every context head on a small map (on CPU, where the record's model runs the CPU's
``AtrousConv2d``, without the taps it drops; elsewhere every tap), and the deformable head no longer cheaper than the
plain FCN head (torchvision's op had no flop formula)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from ablate.models.heads import HEADS
from ablate.models.heads.aspp import ASPPParams
from ablate.models.heads.context import ContextParams
from ablate.models.heads.deformable import DeformableParams
from ablate.models.heads.hdc import HDCParams
from ablate.models.heads.none import NoneParams
from ablate.models.heads.ppm import PPMParams
from ablate.models.heads.spp import SPPParams
from ablate.models.layers.deform import DeformConv
from ablate.models.segmenter import build_head, build_model
from ablate.models.spec import ModelConfig
from ablate.train import cost
from ablate.train.cost import measure
from ablate.train.cpu_speed import use_atrous_convs

torch.set_num_threads(1)

DEFORM = torch.ops.torchvision.deform_conv2d


def counted(module: torch.nn.Module, shape: tuple[int, ...]) -> tuple[int, dict]:
    """MACs of ``module`` on a random input of ``shape`` as ``measure`` counts them (eval, inference mode), and the
    FLOPs per op."""
    module.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(torch.randn(*shape))
    return counter.get_total_flops() // 2, counter.get_flop_counts()["Global"]


def conv(cin: int, cout: int, taps: int, positions: int, groups: int = 1) -> int:
    """MACs of a conv: every output position, every output channel, the taps of its group's input channels."""
    return cout * (cin // groups) * taps * positions


# ------------------------------------------------------------------------------------------------- one layer
@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "padding", "dilation", "groups", "modulated"),
    [
        (4, 6, 3, 1, 1, 1, 1, False),
        (4, 6, 3, 1, 1, 1, 1, True),
        (6, 4, 3, 2, 2, 2, 2, False),  # stride, dilation, groups
        (6, 9, 3, 2, 2, 2, 3, True),
        (4, 8, (3, 5), (1, 2), (1, 2), (2, 1), 2, True),  # non-square kernel, per-axis stride and dilation
    ],
)
def test_deform_conv_counts_conv_sampling_and_mask(cin, cout, kernel, stride, padding, dilation, groups, modulated):
    n, h, w = 2, 9, 7
    layer = DeformConv(cin, cout, kernel, stride, padding, dilation, groups, bias=True, modulated=modulated)
    with torch.no_grad():
        layer.offset.weight.normal_(0, 0.5)  # real offsets (and mask): the count must not depend on them
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel, layer.stride, layer.padding, layer.dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    positions = n * ho * wo
    sampled = cin * kh * kw * positions
    deform = conv(cin, cout, kh * kw, positions, groups) + 4 * sampled + (sampled if modulated else 0)
    offsets = conv(cin, (3 if modulated else 2) * kh * kw, kh * kw, positions)  # the plain conv predicting them

    macs, per_op = counted(layer, (n, cin, h, w))
    assert per_op[DEFORM] == 2 * deform
    assert macs == deform + offsets  # the offset conv once, not twice


def test_deform_conv_backward_is_counted():
    layer = DeformConv(4, 6, 3, modulated=True)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        layer(x).sum().backward()
    per_op = counter.get_flop_counts()["Global"]
    positions, sampled = 2 * 5 * 5, 2 * 4 * 9 * 5 * 5
    assert per_op[DEFORM] == 2 * (conv(4, 6, 9, positions) + 5 * sampled)
    assert per_op[torch.ops.torchvision._deform_conv2d_backward] == 2 * (2 * conv(4, 6, 9, positions) + 24 * sampled)


def test_registration_is_idempotent_and_skips_without_torchvision(monkeypatch):
    formula = flop_counter.flop_registry[DEFORM]
    assert cost.DEFORM_CONV2D_COUNTED and cost.register_deform_conv2d_flops() and cost.register_deform_conv2d_flops()
    assert flop_counter.flop_registry[DEFORM] is formula

    class NoOps:  # torch.ops without the torchvision:: ops
        ops = type("ops", (), {"torchvision": object()})

    monkeypatch.setattr(cost, "torch", NoOps)
    assert cost.register_deform_conv2d_flops() is False


def test_cost_imports_without_torchvision():
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import torch; torch.set_num_threads(1)\n"
        "from ablate.train.cost import DEFORM_CONV2D_COUNTED, measure\n"
        "print(DEFORM_CONV2D_COUNTED, measure(torch.nn.Conv2d(3, 2, 1, bias=False), 4, warmup=0, repeats=1)['macs'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", str(3 * 2 * 16)]


# ------------------------------------------------------------------------------------------------- every head
CIN = 8


def aspp(h: int, w: int, rates: list[int], c: int, image_pooling: bool = True, separable: bool = False) -> int:
    p = h * w
    total = conv(CIN, c, 1, p)  # 1x1 branch
    for r in rates:
        # AtrousConv2d keeps the taps that can reach inside the map: min(1, (size - 1) // rate) each side
        taps = (1 + 2 * min(1, (h - 1) // r)) * (1 + 2 * min(1, (w - 1) // r))
        total += conv(CIN, CIN, taps, p, CIN) + conv(CIN, c, 1, p) if separable else conv(CIN, c, taps, p)
    if image_pooling:
        total += conv(CIN, c, 1, 1)  # the 1x1 conv on the pooled 1x1 map
    branches = 1 + len(rates) + image_pooling
    return total + conv(branches * c, c, 1, p)  # projection


HEAD_CASES = [
    ("none", NoneParams(channels=16), 8, 8, conv(CIN, 16, 9, 64)),
    # 1x1 branch, three full 3x3 branches (rates that reach inside 8 x 8), image pooling on 1 x 1, projection
    (
        "aspp",
        ASPPParams(rates=[2, 3, 7], channels=4),
        8,
        8,
        conv(CIN, 4, 1, 64) + 3 * conv(CIN, 4, 9, 64) + conv(CIN, 4, 1, 1) + conv(5 * 4, 4, 1, 64),
    ),
    # dropped taps: rate 12 on an 8 x 4 map keeps the centre tap only (a 1x1 conv), rate 4 keeps 3 x 1 taps
    (
        "aspp",
        ASPPParams(rates=[12, 4], channels=4, image_pooling=False),
        8,
        4,
        conv(CIN, 4, 1, 32) + conv(CIN, 4, 1, 32) + conv(CIN, 4, 3, 32) + conv(3 * 4, 4, 1, 32),
    ),
    ("aspp", ASPPParams(rates=[2, 9], channels=4, separable=True), 8, 8, aspp(8, 8, [2, 9], 4, True, True)),
    # PPM: each level's 1x1 reduction (to 8 / 4 = 2 channels) on its bins x bins map; 3x3 on 4 x 2 + 8 channels
    ("ppm", PPMParams(channels=4), 8, 8, sum(conv(CIN, 2, 1, b * b) for b in (1, 2, 3, 6)) + conv(16, 4, 9, 64)),
    ("ppm", PPMParams(bins=[1, 2], reduction=False, concat_input=False, channels=4), 6, 6, conv(2 * CIN, 4, 9, 36)),
    # SPP: no reduction, the 3x3 fuse on 3 levels + the input
    ("spp", SPPParams(channels=4), 8, 8, conv(4 * CIN, 4, 9, 64)),
    ("spp", SPPParams(bins=[1], concat_input=False, channels=4), 8, 8, conv(CIN, 4, 9, 64)),
    # Context basic, C = 4: the FCN front end (3x3); dilations 1 1 2 4 8 16 1 on 8 x 8 (8 and 16: the centre tap
    # only); 1x1
    (
        "context",
        ContextParams(channels=4),
        8,
        8,
        conv(CIN, 4, 9, 64) + 5 * conv(4, 4, 9, 64) + 2 * conv(4, 4, 1, 64) + conv(4, 4, 1, 64),
    ),
    # Context large, C = 2: widths 2C 2C 4C 4C for 4 layers (dilation 8: the centre tap only), then 4C -> C
    (
        "context",
        ContextParams(channels=2, variant="large", dilations=[1, 2, 1, 8]),
        8,
        8,
        conv(CIN, 2, 9, 64)
        + conv(2, 4, 9, 64)
        + conv(4, 4, 9, 64)
        + conv(4, 8, 9, 64)
        + conv(8, 8, 1, 64)
        + conv(8, 2, 1, 64),
    ),
    ("hdc", HDCParams(channels=4), 8, 8, conv(CIN, 4, 9, 64) + 5 * conv(4, 4, 9, 64)),  # rates 1 2 5, twice
    # rate 5 on a 4 x 4 map: the centre tap only
    ("hdc", HDCParams(channels=4, repeats=1), 4, 4, conv(CIN, 4, 9, 16) + conv(4, 4, 9, 16) + conv(4, 4, 1, 16)),
]


def deformable(layers: int, c: int, p: int, modulated: bool) -> int:
    total, cin = 0, CIN
    for _ in range(layers):
        sampled = cin * 9 * p
        offsets = conv(cin, (3 if modulated else 2) * 9, 9, p)  # plain 3x3 conv, never drops taps
        total += offsets + conv(cin, c, 9, p) + 4 * sampled + (sampled if modulated else 0)
        cin = c
    return total


HEAD_CASES += [
    ("deformable", DeformableParams(layers=2, channels=4), 6, 6, deformable(2, 4, 36, False)),
    (
        "deformable",
        DeformableParams(layers=1, channels=4, modulated=True, dilation=2),
        6,
        6,
        deformable(1, 4, 36, True),
    ),
]


@pytest.mark.parametrize(("name", "params", "h", "w", "expected"), HEAD_CASES, ids=[c[0] for c in HEAD_CASES])
def test_head_macs_match_the_analytic_count(name, params, h, w, expected):
    """On CPU: the record's model is prepared for its device (``prepare_for_device``: the head's atrous convs)."""
    assert params.name == name
    head = build_head(params, CIN)
    use_atrous_convs(head)
    macs, _ = counted(head, (1, CIN, h, w))
    assert macs == expected


PLAIN_CASES = [
    # every tap of every branch, as nn.Conv2d (and so the GPU) computes them
    (
        ASPPParams(rates=[12, 4], channels=4, image_pooling=False),
        8,
        4,
        conv(CIN, 4, 1, 32) + 2 * conv(CIN, 4, 9, 32) + conv(3 * 4, 4, 1, 32),
    ),
    (ContextParams(channels=4), 8, 8, conv(CIN, 4, 9, 64) + 7 * conv(4, 4, 9, 64) + conv(4, 4, 1, 64)),
    (HDCParams(channels=4, repeats=1), 4, 4, conv(CIN, 4, 9, 16) + 2 * conv(4, 4, 9, 16)),
]


@pytest.mark.parametrize(("params", "h", "w", "expected"), PLAIN_CASES, ids=[c[0].name for c in PLAIN_CASES])
def test_plain_head_macs_count_every_tap(params, h, w, expected):
    """Off the CPU the head is left as built, plain convs: every tap counts, the ones reading padding too."""
    macs, _ = counted(build_head(params, CIN), (1, CIN, h, w))
    assert macs == expected


def test_every_head_is_covered():
    assert {case[0] for case in HEAD_CASES} == set(HEADS)


# ------------------------------------------------------------------------------------------------- the symptom
def test_deformable_head_costs_more_than_the_plain_head():
    torch.manual_seed(0)
    plain = build_model(ModelConfig(head=NoneParams(channels=64)), 2)
    deform = build_model(ModelConfig(head=DeformableParams(layers=2, channels=64)), 2)
    cin, p = plain.backbone.high_channels, (64 // 16) ** 2
    macs_plain = measure(plain, 64, "cpu", warmup=0, repeats=1)["macs"]
    macs_deform = measure(deform, 64, "cpu", warmup=0, repeats=1)["macs"]
    assert macs_deform > macs_plain
    # the same backbone and classifier: the difference is the heads' (two deformable layers vs one 3x3 conv)
    layer1 = conv(cin, 18, 9, p) + conv(cin, 64, 9, p) + 4 * cin * 9 * p
    layer2 = conv(64, 18, 9, p) + conv(64, 64, 9, p) + 4 * 64 * 9 * p
    assert macs_deform - macs_plain == layer1 + layer2 - conv(cin, 64, 9, p)
