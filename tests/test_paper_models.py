"""The paper-faithful model parts: the dilated VGG-16 front end, PSPNet's auxiliary loss, frozen BN."""

from __future__ import annotations

import pytest
import torch

from ablate.config.schema import Recipe
from ablate.models.backbone import Backbone, BuildError
from ablate.models.segmenter import build_model
from ablate.models.spec import ModelConfig
from ablate.train.module import SegmentationModule


@pytest.mark.parametrize(("name", "high"), [("vgg16_dilated", 512), ("vgg16_dilated_fc", 4096)])
def test_dilated_vgg16_front_end(name, high):
    with torch.device("meta"):  # 138M parameters: shapes only, no memory
        bb = Backbone(name, output_stride=8)
        low, top, aux = bb(torch.empty(2, 3, 64, 96), with_aux=True)
    assert tuple(low.shape) == (2, 256, 16, 24) and tuple(aux.shape) == (2, 512, 8, 12)
    assert tuple(top.shape) == (2, high, 8, 12)
    assert bb.low_channels == 256 and bb.high_channels == high and bb.aux_channels == 512
    pools = [m for m in bb.body.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3  # pool4 and pool5 removed
    convs = [m for m in bb.body.stage3.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.dilation for c in convs[:3]] == [(2, 2)] * 3
    if name == "vgg16_dilated_fc":
        assert convs[3].kernel_size == (7, 7) and convs[3].dilation == (4, 4) and convs[3].padding == (12, 12)


def test_dilated_vgg16_is_output_stride_8_only():
    with pytest.raises(BuildError, match="output_stride: 8") as err:
        with torch.device("meta"):
            Backbone("vgg16_dilated", output_stride=16)
    assert err.value.key == "model.output_stride"


def test_dilated_vgg16_weights_from_a_local_file(monkeypatch):
    import timm

    seen = {}
    real = timm.create_model

    def spy(name, **kwargs):
        seen.update(name=name, **kwargs)
        return real(name, **{k: v for k, v in kwargs.items() if k not in ("pretrained", "pretrained_cfg_overlay")})

    monkeypatch.setattr(timm, "create_model", spy)
    with torch.device("meta"):
        Backbone("vgg16_dilated", output_stride=8, weights="/data/vgg16.safetensors")
    assert seen == {"name": "vgg16", "pretrained": True, "pretrained_cfg_overlay": {"file": "/data/vgg16.safetensors"}}


def test_aux_loss_head_in_training_only():
    cfg = ModelConfig(backbone="test_resnet", output_stride=8, aux_loss=0.4)
    model = build_model(cfg, num_classes=3).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, tuple) and out[0].shape == out[1].shape == (2, 3, 32, 32)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    recipe = Recipe.model_validate({"model": cfg.model_dump(), "train": {"steps": 2}})
    module = SegmentationModule(recipe, num_classes=3).train()
    loss = module.training_step((torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))), 0)
    assert torch.isfinite(loss)


def test_freeze_bn():
    recipe = Recipe.model_validate({"model": {"backbone": "test_resnet"}, "train": {"freeze_bn": True}})
    module = SegmentationModule(recipe, num_classes=3).train()
    bns = module._backbone_bn()
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    head_bn = [m for m in module.model.head.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training for m in head_bn)
