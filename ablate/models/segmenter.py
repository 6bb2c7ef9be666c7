"""Backbone + context head + optional DeepLabv3+ decoder + 1x1 classifier; logits upsampled to the input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ablate.config import ModelConfig
from ablate.models.backbone import Backbone
from ablate.models.decoder import Decoder
from ablate.models.heads import HEADS


class Segmenter(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.backbone = Backbone(
            cfg.backbone,
            cfg.output_stride,
            cfg.pretrained,
            cfg.weights,
            multi_grid=cfg.multi_grid,
            hdc_rates=cfg.hdc_rates,
            deformable_blocks=cfg.deformable_blocks,
            deformable_modulated=cfg.deformable_modulated,
        )
        self.head = HEADS[cfg.head.name](self.backbone.high_channels, cfg.head)
        channels = self.head.out_channels
        self.decoder: Decoder | None = None
        if cfg.decoder.enabled:
            self.decoder = Decoder(
                self.backbone.low_channels, channels, cfg.decoder.low_level_channels, cfg.decoder.channels
            )
            channels = self.decoder.out_channels
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        y = self.head(high)
        if self.decoder is not None:
            y = self.decoder(y, low)
        logits = self.classifier(y)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_model(cfg: ModelConfig, num_classes: int) -> Segmenter:
    return Segmenter(cfg, num_classes)
