"""The models the step sections time: ablate's DeepLabv3 (ResNet-50, OS16, ASPP 6/12/18 + image pooling) and its
peers, torchvision's and segmentation_models_pytorch's, set up alike; one training step of each."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ablate.bench.measure import BenchConfig, bench_device, best_of, sync


def ablate_deeplabv3(classes: int) -> nn.Module:
    from ablate.models.segmenter import build_model
    from ablate.models.spec import ModelConfig
    from ablate.train.cpu_speed import prepare_for_device

    cfg = ModelConfig.model_validate(
        {
            "backbone": "resnet50",
            "output_stride": 16,
            "head": {"name": "aspp", "rates": [6, 12, 18], "image_pooling": True, "channels": 256},
        }
    )
    return prepare_for_device(build_model(cfg, classes), bench_device())  # as training runs it on this device


class _OutOnly(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def torchvision_deeplabv3(classes: int) -> nn.Module:
    """torchvision's deeplabv3_resnet50 (its builder fixes OS8 and rates 12/24/36) rebuilt at OS16, rates 6/12/18."""
    from torchvision.models import resnet50
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

    backbone = IntermediateLayerGetter(
        resnet50(weights=None, replace_stride_with_dilation=[False, False, True]), {"layer4": "out"}
    )
    return _OutOnly(DeepLabV3(backbone, DeepLabHead(2048, classes, [6, 12, 18])))


def smp_deeplabv3(classes: int) -> nn.Module:
    import segmentation_models_pytorch as smp

    return smp.DeepLabV3(
        encoder_name="tu-resnet50",
        encoder_weights=None,
        encoder_output_stride=16,
        decoder_atrous_rates=(6, 12, 18),
        classes=classes,
        upsampling=16,
    )


PEERS: dict[str, Callable[[int], nn.Module]] = {
    "torchvision deeplabv3_resnet50": torchvision_deeplabv3,
    "smp DeepLabV3 (tu-resnet50)": smp_deeplabv3,
}


def _batch(cfg: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg.batch, 3, cfg.size, cfg.size, generator=g)
    y = torch.randint(0, cfg.classes, (cfg.batch, cfg.size, cfg.size), generator=g)
    return x.to(bench_device()), y.to(bench_device())


def torch_sgd(params) -> torch.optim.Optimizer:
    """The peers' optimizer: ``torch.optim.SGD`` with its defaults, as their training scripts use it."""
    return torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-4)


def ablate_sgd(params) -> torch.optim.Optimizer:
    """ablate's optimizer (``ablate.train.module.make_optimizer``) with the same hyper-parameters."""
    from ablate.config.schema import TrainConfig
    from ablate.train.module import make_optimizer

    return make_optimizer(params, TrainConfig(lr=1e-3, momentum=0.9, weight_decay=1e-4))


def _train_step_fn(model: nn.Module, x, y, channels_last: bool, bf16: bool, optimizer=torch_sgd) -> Callable[[], None]:
    model.train().to(bench_device())
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = optimizer(model.parameters())

    def step() -> None:
        with torch.autocast(bench_device().type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    return step


def step_flops(model: nn.Module, x, y) -> float:
    """FLOPs of one forward + backward (convolutions and matrix products), counted on the meta-free real tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), y, ignore_index=255).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def time_step(model: nn.Module, cfg: BenchConfig, channels_last: bool, bf16: bool = False, optimizer=torch_sgd
              ) -> float:  # fmt: skip
    """Seconds per training step (the best of ``cfg.steps`` after ``cfg.warmup``)."""
    x, y = _batch(cfg)
    step = _train_step_fn(model, x, y, channels_last, bf16, optimizer)
    for _ in range(cfg.warmup):
        step()
    return best_of(step, cfg.steps)
