"""``tiny_resnet``: a timm ResNet with one BasicBlock per stage and few channels, registered with timm's own
``@register_model``. Built through timm's ``build_model_with_cfg``, it has what ablate asks of a backbone:
``features_only`` (strides 2-32) and ``output_stride`` 8 or 16 by dilating its last stages."""

from __future__ import annotations

from timm.models import build_model_with_cfg, register_model
from timm.models.resnet import BasicBlock, ResNet

# timm reads a model's pretrained config (here: no weights, ImageNet's statistics) from its module's default_cfgs
default_cfgs = {
    "tiny_resnet": {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "conv1.0",
        "classifier": "fc",
    },
}


@register_model
def tiny_resnet(pretrained: bool = False, **kwargs) -> ResNet:
    args = dict(block=BasicBlock, layers=(1, 1, 1, 1), channels=(16, 24, 32, 48), stem_width=16, stem_type="deep")
    return build_model_with_cfg(ResNet, "tiny_resnet", pretrained, **dict(args, **kwargs))
