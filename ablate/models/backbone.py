"""timm ``features_only`` backbones at output stride 8/16/32 (by dilation), with low- and high-level features."""

from __future__ import annotations

import timm
import torch
from torch import nn


class BuildError(ValueError):
    """A model that cannot be built from its config; ``key`` names the recipe key to fix."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


DILATABLE = "resnet/resnext/resnest/seresnet, convnext, efficientnet/mobilenetv3, regnet, cspnet, nfnet, xception"


class Backbone(nn.Module):
    """Wraps ``timm.create_model(features_only=True, output_stride=...)``.

    ``forward`` returns ``(low, high)``: the stride-4 feature (for the DeepLabv3+ decoder) and the last feature
    (stride ``output_stride``). Families that cannot dilate are refused here, before any training.
    """

    def __init__(self, name: str, output_stride: int = 16, pretrained: bool = False, weights: str | None = None):
        super().__init__()
        if not timm.is_model(name):
            close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:5]
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise BuildError("model.backbone", f"unknown timm model '{name}'{hint}")
        kwargs: dict = {"features_only": True, "pretrained": pretrained or weights is not None}
        if weights is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": weights}
        if output_stride != 32:
            kwargs["output_stride"] = output_stride
        try:
            self.body = timm.create_model(name, **kwargs)
        except (AssertionError, TypeError, NotImplementedError, ValueError) as exc:
            if output_stride == 32:
                raise BuildError("model.backbone", f"timm could not build '{name}' as features: {exc}") from None
            raise BuildError(
                "model.output_stride",
                f"backbone '{name}' cannot run at output stride {output_stride} (it cannot dilate); "
                f"use output_stride: 32 or a family that dilates ({DILATABLE})",
            ) from None
        reductions = list(self.body.feature_info.reduction())
        if reductions[-1] != output_stride:
            raise BuildError(
                "model.output_stride",
                f"backbone '{name}' ends at stride {reductions[-1]}, not {output_stride} (it ignores dilation); "
                f"use output_stride: {reductions[-1]} or a family that dilates ({DILATABLE})",
            )
        channels = list(self.body.feature_info.channels())
        # low level: the last feature at stride 4 (or the finest one when the net has none at 4)
        at4 = [i for i, r in enumerate(reductions) if r == 4]
        self.low_index = at4[-1] if at4 else 0
        self.low_channels = channels[self.low_index]
        self.high_channels = channels[-1]
        self.low_reduction = reductions[self.low_index]
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(x)
        return feats[self.low_index], feats[-1]
