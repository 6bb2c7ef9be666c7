"""Backbone + context head + optional DeepLabv3+ decoder + 1x1 classifier; logits upsampled to the input."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from ablate.models import layers
from ablate.models.backbone import Backbone
from ablate.models.decoder import Decoder
from ablate.models.heads import HeadParams
from ablate.models.layers import restride
from ablate.models.spec import ModelConfig


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
            backbone_args=cfg.backbone_args,
            cascade_blocks=cfg.cascade_blocks,
        )
        self.head = build_head(cfg.head, self.backbone.high_channels)
        channels = self.head.out_channels
        self.decoder: Decoder | None = None
        # how far the high-level map's samples sit past their cell centres, in samples (``keep_training_lattice``)
        self.shift = 0.0
        if cfg.decoder.enabled:
            self.decoder = Decoder(
                self.backbone.low_channels, channels, cfg.decoder.low_level_channels, cfg.decoder.channels
            )
            channels = self.decoder.out_channels
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        # PSPNet's auxiliary FCN head on the stage before the last (used in training only)
        self.aux_head: nn.Module | None = None
        if cfg.aux_loss > 0:
            aux = self.backbone.aux_channels
            self.aux_head = nn.Sequential(
                nn.Conv2d(aux, 256, 3, padding=1, bias=False),
                nn.BatchNorm2d(256),
                nn.ReLU(inplace=True),
                nn.Dropout2d(0.1),
                nn.Conv2d(256, num_classes, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits at the input size; in training with an auxiliary head, ``(logits, aux_logits)``."""
        aux_logits = None
        if self.aux_head is not None and self.training:
            low, high, aux = self.backbone(x, with_aux=True)
            aux_logits = upsample_logits(self.aux_head(aux), x.shape[-2:])
        else:
            low, high = self.backbone(x)
        y = self.head(high)
        if self.decoder is not None:
            y = self.decoder(y, low, self.shift)  # stride 4 from here on: the low level's own anchor
        logits = upsample_logits(self.classifier(y), x.shape[-2:], 0.0 if self.decoder is not None else self.shift)
        return logits if aux_logits is None else (logits, aux_logits)

    def keep_training_lattice(self, trained: Segmenter) -> None:
        """Make this net (``trained``'s weights at a lower output stride) compute what ``trained`` computes, only
        denser: average-pool shortcuts respaced, the high-level map upsampled with training's anchor
        (``ablate.models.layers.restride``). Called by the evaluation at another output stride."""
        restride.respace_pools(self.backbone, trained.backbone)
        self.shift = (trained.backbone.output_stride / self.backbone.output_stride - 1) / 2


def upsample_logits(logits: torch.Tensor, size: tuple[int, int] | torch.Size, shift: float = 0.0) -> torch.Tensor:
    """Bilinear upsampling of low-resolution logits to ``size``, done in fp32 and the plain (NCHW) layout: the
    loss's log-softmax runs in fp32 under autocast and over the channels, so bf16 or channels_last logits would be
    converted at full resolution (three full-size copies a bf16 step); converting the small map costs nothing.
    ``shift``: see ``restride.upsample`` (0 but at an evaluation output stride other than training's)."""
    return restride.upsample(logits.float().contiguous(), size, shift)


def build_head(params: HeadParams, in_channels: int) -> nn.Module:
    """The head's module (``params.build`` with the torch building blocks), with its ``out_channels``."""
    target = getattr(type(params), "module", None)
    if isinstance(target, str) and target:  # a head that names its nn.Module class ("pkg.module:Class")
        where, _, name = target.partition(":")
        return getattr(importlib.import_module(where), name)(in_channels, params)
    module, out_channels = params.build(in_channels, layers)
    module.out_channels = out_channels
    return module


def build_model(cfg: ModelConfig, num_classes: int) -> Segmenter:
    return Segmenter(cfg, num_classes)
