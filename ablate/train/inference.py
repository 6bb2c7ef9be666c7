"""Inference strategies for evaluation: whole image, sliding window, multi-scale + left-right flip, and evaluation at
an output stride other than training's.

All of them return class probabilities at the input's size; where several predictions cover a pixel (overlapping
windows, scales, flips) their probabilities are averaged, as DeepLabv3 does for multi-scale and flip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ablate.config.schema import EvalConfig
from ablate.models.segmenter import build_model
from ablate.models.spec import ModelConfig


def eval_model_config(model: ModelConfig, ev: EvalConfig) -> ModelConfig:
    """The model config to evaluate with: training's, at ``eval.output_stride`` when given.

    Changing the output stride changes only the backbone's strides and dilations (timm), never a parameter's shape,
    so the trained weights load as they are. With ``eval.scale_rates`` the head's atrous rates are multiplied by
    train OS / eval OS (at least 1), so each branch keeps its field of view in image pixels: DeepLabv3 trains ASPP
    (6, 12, 18) at OS 16 and evaluates (12, 24, 36) at OS 8.
    """
    if ev.output_stride is None or ev.output_stride == model.output_stride:
        return model
    factor = model.output_stride / ev.output_stride
    head = model.head
    if ev.scale_rates:  # the head's own ``rate_fields`` (ASPP's rates); other heads keep their dilations
        update = {f: [max(1, round(r * factor)) for r in getattr(head, f)] for f in head.rate_fields}
        head = head.model_copy(update=update)
    return model.model_copy(update={"output_stride": ev.output_stride, "head": head})


def build_eval_model(model: ModelConfig, ev: EvalConfig, num_classes: int, state_dict: dict) -> nn.Module:
    """Build the model as ``eval_model_config`` says and load the trained weights (strict: every key, every shape).
    At an output stride below training's it computes the trained net's function, only denser (on training's
    lattice of positions the very numbers): ``Segmenter.keep_training_lattice``."""
    net = build_model(eval_model_config(model, ev), num_classes)
    net.load_state_dict(state_dict, strict=True)
    if ev.output_stride is not None and ev.output_stride < model.output_stride:
        trained = build_model(model.model_copy(update={"pretrained": False, "weights": None}), num_classes)
        net.keep_training_lattice(trained)
    return net.eval()


def _starts(size: int, tile: int, stride: int) -> list[int]:
    """Window origins along one axis: every ``stride`` pixels, the last one flush with the far edge."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


@torch.no_grad()
def sliding_window(model: nn.Module, images: torch.Tensor, tile: int, overlap: float) -> torch.Tensor:
    """Probabilities from ``tile`` x ``tile`` windows whose neighbours overlap by ``overlap`` of a tile, averaged
    where they overlap. A window is never larger than the image: an image no larger than the tile is one window,
    so this equals whole-image inference there."""
    n, _, h, w = images.shape
    stride = max(1, math.ceil(tile * (1 - overlap)))
    total: torch.Tensor | None = None
    count = images.new_zeros((1, 1, h, w))
    for y in _starts(h, tile, stride):
        for x in _starts(w, tile, stride):
            crop = images[:, :, y : y + tile, x : x + tile]
            probs = model(crop).softmax(1)
            if total is None:
                total = images.new_zeros((n, probs.shape[1], h, w))
            total[:, :, y : y + crop.shape[-2], x : x + crop.shape[-1]] += probs
            count[:, :, y : y + crop.shape[-2], x : x + crop.shape[-1]] += 1
    assert total is not None
    return total / count


@torch.no_grad()
def _single(model: nn.Module, images: torch.Tensor, cfg: EvalConfig) -> torch.Tensor:
    if cfg.tile is None:
        return model(images).softmax(1)
    return sliding_window(model, images, cfg.tile, cfg.overlap)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, cfg: EvalConfig) -> torch.Tensor:
    """Class probabilities (N x K x H x W) for a batch of normalised images (N x 3 x H x W).

    For each scale in ``cfg.scales`` the batch is resized (bilinear) by that factor, predicted (whole image or
    sliding window) and, with ``cfg.flip``, predicted mirrored left-right too (and mirrored back); every prediction
    is resized to H x W and the probabilities are averaged. ``scales: [1.0]`` without flip is plain inference.
    """
    h, w = images.shape[-2:]
    total: torch.Tensor | None = None
    n = 0
    for scale in cfg.scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        views = [_single(model, x, cfg)]
        if cfg.flip:
            views.append(_single(model, x.flip(-1), cfg).flip(-1))
        for probs in views:
            if probs.shape[-2:] != (h, w):
                probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
            total = probs if total is None else total + probs
            n += 1
    assert total is not None
    return total / n
