"""Backbone strides, heads and decoder shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from ablate.models.backbone import Backbone, BuildError
from ablate.models.segmenter import build_model
from ablate.models.spec import ModelConfig


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_backbone_output_stride_by_dilation(name, output_stride):
    bb = Backbone(name, output_stride)
    low, high = bb(torch.randn(2, 3, 64, 64))
    assert high.shape[-2:] == (64 // output_stride, 64 // output_stride)
    assert low.shape[-2:] == (16, 16)  # stride 4, whatever the output stride
    assert high.shape[1] == bb.high_channels and low.shape[1] == bb.low_channels


def test_backbone_that_cannot_dilate_is_refused():
    with torch.device("meta"), pytest.raises(BuildError, match="cannot run at output stride 16") as info:
        Backbone("vgg11", 16)
    assert info.value.key == "model.output_stride"


@pytest.mark.parametrize(
    "output_stride,rates,strides",
    [(16, [2, 4, 8, 16], [1, 1, 1]), (8, [4, 8, 16, 32], [1, 1, 1]), (64, [1, 1, 2, 4], [2, 1, 1]),
     (256, [1, 1, 1, 1], [2, 2, 2])],
)  # fmt: skip
def test_cascaded_blocks_follow_deeplabv3(output_stride, rates, strides):
    """DeepLabv3 Sec. 3.1: block5..block7 copy block4; each halves the map until the output stride is reached and is
    dilated by the stride it gave up after that (OS 16: rates 2, 4, 8, 16); multi-grid multiplies each block's rate."""
    bb = Backbone("test_resnet", output_stride, cascade_blocks=3, multi_grid=[1, 2])
    low, high = bb(torch.randn(2, 3, 128, 128))
    assert high.shape[-2:] == (-(-128 // output_stride),) * 2 and high.shape[1] == bb.high_channels == 96
    assert [c.dilation[0] for c in bb.last_stage_convs()] == [rates[0], 2 * rates[0]]
    for block, rate, stride in zip(bb.cascade, rates[1:], strides, strict=True):
        convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1]
        assert [c.dilation[0] for c in convs] == [rate, 2 * rate] and convs[0].stride[0] == stride
        assert all(unit.bn2.weight.abs().sum() == 0 for unit in block)  # a new residual branch starts at zero
    assert len(bb.cascade) == 3 and Backbone("test_resnet", 16).cascade is None


def test_cascade_errors_name_their_key():
    with pytest.raises(BuildError, match=r"output stride 64 needs model.cascade_blocks >= 1") as info:
        Backbone("test_resnet", 64)
    assert info.value.key == "model.output_stride"
    with pytest.raises(BuildError, match="made of InvertedResidual") as info:
        Backbone("test_efficientnet", 16, cascade_blocks=1)
    assert info.value.key == "model.cascade_blocks"


def test_a_later_default_leaves_run_ids_alone():
    """``cascade_blocks`` came after runs were made: at its default it is not in the dump a run's id hashes."""
    assert "cascade_blocks" not in ModelConfig().model_dump(mode="json")
    assert ModelConfig(cascade_blocks=2).model_dump(mode="json")["cascade_blocks"] == 2
    assert ModelConfig.model_validate(ModelConfig(cascade_blocks=2).model_dump()) == ModelConfig(cascade_blocks=2)


def test_unknown_backbone():
    with pytest.raises(BuildError, match="unknown timm model") as info:
        Backbone("resnet5x", 16)
    assert info.value.key == "model.backbone"


@pytest.mark.parametrize(
    "head",
    [
        {"name": "none", "channels": 16},
        {"name": "aspp", "rates": [1], "channels": 16},
        {"name": "aspp", "rates": [6, 12, 18, 24], "image_pooling": False, "channels": 16},
    ],
)
@pytest.mark.parametrize("decoder", [False, True])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_segmenter_forward_backward(head, decoder, output_stride):
    cfg = ModelConfig.model_validate(
        {
            "backbone": "test_resnet",
            "output_stride": output_stride,
            "head": head,
            "decoder": {"enabled": decoder, "low_level_channels": 8, "channels": 16},
        }
    )
    model = build_model(cfg, num_classes=5)
    x = torch.randn(2, 3, 48, 64)
    logits = model(x)
    assert logits.shape == (2, 5, 48, 64)
    logits.mean().backward()
    assert model.classifier.weight.grad is not None
    assert all(p.grad is not None for p in model.head.parameters())
    if decoder:
        assert model.decoder is not None and model.decoder.reduce[0].out_channels == 8
    else:
        assert model.decoder is None


def test_aspp_branch_count_follows_rates():
    cfg = ModelConfig.model_validate({"head": {"name": "aspp", "rates": [3, 6, 9, 12, 15], "channels": 8}})
    head = build_model(cfg, 3).head
    assert len(head.branches) == 1 + 5 + 1  # 1x1, one per rate, image pooling
    assert [b[0].dilation[0] for b in head.branches[1:6]] == [3, 6, 9, 12, 15]
    cfg = ModelConfig.model_validate({"head": {"name": "aspp", "rates": [2], "image_pooling": False}})
    assert len(build_model(cfg, 3).head.branches) == 2


def test_aspp_rate_changes_receptive_field():
    """A pixel far from the centre influences the centre output only through a branch whose rate reaches it."""
    torch.manual_seed(0)
    from ablate.models.heads.aspp import ASPPParams
    from ablate.models.segmenter import build_head

    def influence(rates):
        head = build_head(ASPPParams(rates=rates, image_pooling=False, channels=4, dropout=0.0), 4).eval()
        x = torch.randn(1, 4, 21, 21, requires_grad=True)
        head(x)[0, :, 10, 10].sum().backward()
        return x.grad[0].abs().sum(0)

    assert influence([1])[10, 16] == 0
    assert influence([6])[10, 16] > 0


def test_poly_schedule_with_linear_warmup():
    from ablate.train.module import poly_lambda

    plain, warm = poly_lambda(100, 0.9), poly_lambda(100, 0.9, warmup=10)
    assert plain(0) == 1.0 and plain(100) == 0.0 and plain(50) == pytest.approx(0.5**0.9)
    assert warm(0) == pytest.approx(0.1) and warm(4) == pytest.approx(0.5 * (1 - 4 / 100) ** 0.9)
    assert warm(9) == plain(9) and warm(50) == plain(50)  # from the warm-up's last step on: the poly schedule
