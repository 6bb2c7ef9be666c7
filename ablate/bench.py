"""``ablate bench``: ablate's speed side by side with what researchers would use instead, on this machine, in one run.

Sections (issue 7), each a dict in ``bench.json`` and a table in ``bench.md``:

1. ``step``: one training step (forward, cross-entropy, backward, SGD) of ablate's DeepLabv3 (ResNet-50, OS16,
   ASPP 6/12/18 with image pooling), torchvision's DeepLabv3-ResNet50 and segmentation_models_pytorch's DeepLabV3
   (``tu-resnet50``), all set to OS16 and rates 6/12/18, same batch and image size, each in both memory formats;
   images/s and ablate's time ratio to the fastest peer.
2. ``loop``: ablate's whole training (its loop on Lightning Fabric, checkpoints, curve, logging) vs a bare PyTorch loop
   over the same model, data, optimiser and schedule. The check's ratio: block-interleaved runs (one ablate training
   that runs the bare loop's next ``loop_blocks`` steps after each ``loop_blocks`` of its own, so both whole loops,
   fixed costs included, are timed through the same changes of the machine's speed), the median of
   ``loop_interleaved`` of them. Also reported: separate back-to-back runs (order alternating), and a per-step probe
   (one bare step after each ablate step) that says where the difference goes.
3. ``study``: a study's wall time (``ablate run`` in a fresh process, as a user runs it) vs the sum of its runs'
   own training and evaluation time; the fixed cost per run and its parts (process start and imports, model build,
   data set-up); optionally the same study run by an earlier commit (``--before REF``).
4. ``flops``: achieved FLOP/s of the training step (counted by ``torch.utils.flop_counter``) vs the measured GEMM
   peak, fp32 and bf16 (autocast); the bf16 study's mIoU vs fp32's seed spread.
5. ``crf``: the dense CRF pool's speed-up over one worker (when ``ablate.train.crf`` is there); ``metrics``: the
   confusion-matrix update vs torchmetrics' ``MulticlassJaccardIndex`` on the same tensors.

Other timings are the best of ``repeats`` (minimum: the least disturbed by other load); the machine's load average
is recorded before and after.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchConfig:
    out: Path = Path("results/bench")
    quick: bool = False
    batch: int = 4  # section 1 and 4: images per step
    size: int = 256  # section 1 and 4: image side
    classes: int = 21
    steps: int = 6  # timed steps per model (after ``warmup``), round-robin over the models
    warmup: int = 1
    gemm: int = 2048  # GEMM side for the peak
    loop_steps: int = 600  # section 2 (the embedded recipe's length)
    loop_pairs: int = 3  # section 2: (bare, ablate) pairs timed back to back
    loop_blocks: int = 20  # section 2: steps per block of the block-interleaved runs
    loop_interleaved: int = 5  # section 2: block-interleaved runs (the check's ratio is their median)
    study: Path | None = REPO / "studies" / "aspp_rates.yaml"  # section 3 (None: skip)
    study_sets: list[str] = field(default_factory=list)  # --set for the study runs
    bf16_study: bool = True  # section 4: run the study again in bf16
    compiled: bool = True  # section 4: also time the step with ``torch.compile`` (train.compile=true)
    before: str | None = None  # section 3: a git ref whose code runs the study for the "before" figure
    repeats: int = 3
    command: str = ""

    @classmethod
    def quick_config(cls, **kw: Any) -> BenchConfig:
        base = dict(
            quick=True, batch=2, size=64, steps=1, warmup=1, gemm=512, loop_steps=10, loop_pairs=1, loop_blocks=4,
            loop_interleaved=1, repeats=1,
            bf16_study=False, compiled=False,
            study_sets=["train.steps=2", "data.num_train=16", "data.num_val=4", "data.image_size=32"],
        )  # fmt: skip
        base.update(kw)
        return cls(**base)


def _best(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        flags = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_start": os.getloadavg(),
    }


# ------------------------------------------------------------------------------------------------------ GEMM peak
GEMM_ENGINES = ("matmul", "conv1x1")


def gemm_product(n: int, dtype: torch.dtype, engine: str) -> Callable[[], torch.Tensor]:
    """One n x n x n matrix product (2 n^3 FLOPs) on the bench device, by ``engine``: ``"matmul"`` is ``a @ b``
    (on CPU, fp32 goes to the BLAS, MKL); ``"conv1x1"`` is the same product as a 1x1 convolution over an n-pixel
    channels_last map (on CPU, oneDNN, the library that runs the model's convolutions)."""
    dev = _device()
    if engine == "matmul":
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        return lambda: a @ b
    if engine == "conv1x1":
        side = 64 if n % 64 == 0 else 1  # n pixels as (n / 64) x 64
        x = torch.randn(1, n, n // side, side, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(n, n, 1, 1, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        return lambda: F.conv2d(x, w)
    raise ValueError(f"engine {engine!r}: allowed {', '.join(GEMM_ENGINES)}")


def gemm_peak(n: int, dtype: torch.dtype, repeats: int, engine: str) -> float:
    """FLOP/s of ``gemm_product(n, dtype, engine)`` (the best of ``repeats``). Both engines are GEMMs; which is
    faster depends on the CPU (MKL runs a slower code path on non-Intel CPUs), so the peak a step is held against
    is the faster of the two (``machine_gemm_peak``)."""
    product = gemm_product(n, dtype, engine)
    product()
    reps = 4

    def go() -> None:
        for _ in range(reps):
            product()
        _sync()

    return 2 * n**3 * reps / _best(go, repeats)


def machine_gemm_peak(sizes: list[int], dtype: torch.dtype, repeats: int) -> tuple[float, dict[str, float]]:
    """The measured GEMM peak: the best FLOP/s over ``sizes`` and both engines; also each engine's best."""
    by_engine = {e: max(gemm_peak(n, dtype, repeats, e) for n in sizes) for e in GEMM_ENGINES}
    return max(by_engine.values()), by_engine


# ------------------------------------------------------------------------------------------------------ models
def ablate_deeplabv3(classes: int) -> nn.Module:
    from ablate.config import ModelConfig
    from ablate.models.segmenter import build_model

    cfg = ModelConfig.model_validate(
        {
            "backbone": "resnet50",
            "output_stride": 16,
            "head": {"name": "aspp", "rates": [6, 12, 18], "image_pooling": True, "channels": 256},
        }
    )
    return build_model(cfg, classes)


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
    return x.to(_device()), y.to(_device())


def torch_sgd(params) -> torch.optim.Optimizer:
    """The peers' optimizer: ``torch.optim.SGD`` with its defaults, as their training scripts use it."""
    return torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-4)


def ablate_sgd(params) -> torch.optim.Optimizer:
    """ablate's optimizer (``ablate.train.module.make_optimizer``) with the same hyper-parameters."""
    from ablate.config import TrainConfig
    from ablate.train.module import make_optimizer

    return make_optimizer(params, TrainConfig(lr=1e-3, momentum=0.9, weight_decay=1e-4))


def _train_step_fn(model: nn.Module, x, y, channels_last: bool, bf16: bool, optimizer=torch_sgd) -> Callable[[], None]:
    model.train().to(_device())
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = optimizer(model.parameters())

    def step() -> None:
        with torch.autocast(_device().type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync()

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
    return _best(step, cfg.steps)


def bench_step(cfg: BenchConfig) -> dict[str, Any]:
    """Every (model, format) is built and warmed up first; then the timed steps go round-robin over them, so a
    change of the machine's load during the section hits every model alike (best step of each is kept)."""
    rows: list[dict[str, Any]] = []
    models = {"ablate DeepLabv3": ablate_deeplabv3, **PEERS}
    optimizers = {"ablate DeepLabv3": ablate_sgd}
    fns: list[tuple[dict[str, Any], Callable[[], None]]] = []
    for name, build in models.items():
        torch.manual_seed(0)
        x, y = _batch(cfg)
        try:
            flops = step_flops(build(cfg.classes), x, y)
        except Exception as exc:  # noqa: BLE001 - a missing peer is reported, the rest goes on
            rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for channels_last in (True,) if cfg.quick else (True, False):
            torch.manual_seed(0)
            opt = optimizers.get(name, torch_sgd)
            row = {"model": name, "format": "channels_last" if channels_last else "NCHW"}
            row["optimizer"] = "SGD fused" if opt is ablate_sgd else "SGD (torch default)"
            row["gflop_per_step"] = round(flops / 1e9, 1)
            step = _train_step_fn(build(cfg.classes), x, y, channels_last, bf16=False, optimizer=opt)
            for _ in range(cfg.warmup):
                step()
            fns.append((row, step))
    times: dict[int, list[float]] = {i: [] for i in range(len(fns))}
    for _ in range(cfg.steps):
        for i, (_row, step) in enumerate(fns):
            times[i].append(_best(step, 1))
    for i, (row, _step) in enumerate(fns):
        t = min(times[i])
        row.update(step_s=round(t, 4), images_per_s=round(cfg.batch / t, 2), all_s=[round(v, 3) for v in times[i]])
        rows.append(row)
    fns.clear()
    timed = [r for r in rows if "step_s" in r]
    ablate_default = next(r for r in timed if r["model"] == "ablate DeepLabv3" and r["format"] == "channels_last")
    peers = [r for r in timed if r["model"] != "ablate DeepLabv3"]
    fastest = min(peers, key=lambda r: r["step_s"]) if peers else None
    return {
        "batch": cfg.batch,
        "size": cfg.size,
        "rows": rows,
        "ablate_step_s": ablate_default["step_s"],
        "fastest_peer": f"{fastest['model']} ({fastest['format']})" if fastest else None,
        "ratio_to_fastest_peer": round(ablate_default["step_s"] / fastest["step_s"], 3) if fastest else None,
        "target": "<= 1.0",
    }


# ------------------------------------------------------------------------------------------------------ FLOP/s
def nominal_step_flops(model: nn.Module, x, y) -> float:
    """FLOPs of the step as the usual convention counts them (model FLOPs, as in MFU): every tap of every conv,
    as a plain ``nn.Conv2d`` runs it, including the ASPP taps that only read padding and that ``AtrousConv2d``
    skips. ``step_flops`` counts the products actually computed."""
    from ablate.models.heads.atrous import AtrousConv2d

    for m in model.modules():
        if isinstance(m, AtrousConv2d):
            m.forward = nn.Conv2d.forward.__get__(m)  # this instance only: a plain conv
    return step_flops(model, x, y)


# The ops that run the convolutions' products (forward, input and weight gradients; ``aten::mm``: the tap-by-tap
# weight gradients of ``AtrousConv2d``): every FLOP ``step_flops`` counts is in one of them.
CONV_OPS = {"aten::convolution", "aten::convolution_backward", "_TapGradConvBackward", "aten::mm"}


def step_breakdown(model: nn.Module, x, y, flops: float, peak: float, bf16: bool = False, steps: int = 1
                   ) -> dict[str, Any]:  # fmt: skip
    """Where a step's time goes (``torch.profiler``, after a warm-up step; of ``steps`` profiled steps, the fastest):
    the convolutions' time (the outermost ``CONV_OPS`` events) and their FLOP rate against the GEMM ``peak`` (of
    the step's precision: fp32, or bf16 autocast), and the other ops by their own time."""
    from torch.profiler import ProfilerActivity, profile

    step = _train_step_fn(model, x, y, channels_last=True, bf16=bf16, optimizer=ablate_sgd)
    step()
    best = None
    for _ in range(steps):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            step()
            total = time.perf_counter() - started
        if best is None or total < best[0]:
            best = (total, prof)
    total, prof = best
    conv, other = 0.0, {}
    for e in prof.events():
        parents, p = [], e.cpu_parent
        while p is not None:
            parents.append(p.name)
            p = p.cpu_parent
        if any(name in CONV_OPS for name in parents):
            continue
        if e.name in CONV_OPS:
            conv += e.cpu_time_total / 1e6
        elif e.name.startswith("aten::"):
            other[e.name] = other.get(e.name, 0.0) + e.self_cpu_time_total / 1e6
    top = sorted(other.items(), key=lambda kv: -kv[1])[:6]
    return {
        "precision": "bf16" if bf16 else "fp32",
        "step_s_profiled": round(total, 6),
        "conv_s": round(conv, 6),
        "conv_share_of_step": round(conv / total, 3),
        "conv_gflops": round(flops / conv / 1e9, 1),
        "conv_share_of_peak": round(flops / conv / peak, 3),
        "other_top_ms": {name: round(t * 1e3, 1) for name, t in top},
    }


def bench_flops(cfg: BenchConfig, step: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(0)
    x, y = _batch(cfg)
    flops = step_flops(ablate_deeplabv3(cfg.classes), x, y)
    nominal = nominal_step_flops(ablate_deeplabv3(cfg.classes), x, y)
    t32 = step["ablate_step_s"]
    torch.manual_seed(0)
    t16 = time_step(ablate_deeplabv3(cfg.classes), cfg, channels_last=True, bf16=True, optimizer=ablate_sgd)
    compiled = None
    if cfg.compiled:  # the opt-in train.compile: the first (warm-up) step compiles
        torch.manual_seed(0)
        model = ablate_deeplabv3(cfg.classes).to(memory_format=torch.channels_last)
        model.compile()
        started = time.perf_counter()
        compiled = time_step(model, cfg, channels_last=True, optimizer=ablate_sgd)
        compile_s = time.perf_counter() - started - compiled * (cfg.warmup + cfg.steps)  # minus the steps themselves
    sizes = [cfg.gemm] if cfg.quick else [cfg.gemm // 2, cfg.gemm, 2 * cfg.gemm]  # the peak: the best size
    peak32, engines32 = machine_gemm_peak(sizes, torch.float32, cfg.repeats + 1)
    peak16, engines16 = machine_gemm_peak(sizes, torch.bfloat16, cfg.repeats + 1)
    torch.manual_seed(0)
    profiled = 1 if cfg.quick else cfg.repeats
    breakdown = step_breakdown(ablate_deeplabv3(cfg.classes), x, y, flops, peak32, steps=profiled)
    torch.manual_seed(0)
    breakdown16 = step_breakdown(ablate_deeplabv3(cfg.classes), x, y, flops, peak16, bf16=True, steps=profiled)
    return {
        "gflop_per_step": round(flops / 1e9, 2),
        "gflop_per_step_nominal": round(nominal / 1e9, 2),
        "fp32_share_nominal": round(nominal / t32 / peak32, 3),
        "bf16_share_nominal": round(nominal / t16 / peak16, 3),
        "gemm_n": sizes,
        "gemm_peak_gflops_fp32": round(peak32 / 1e9, 1),
        "gemm_peak_gflops_bf16": round(peak16 / 1e9, 1),
        "gemm_gflops_by_engine": {
            "fp32": {e: round(v / 1e9, 1) for e, v in engines32.items()},
            "bf16": {e: round(v / 1e9, 1) for e, v in engines16.items()},
        },
        "step_s_fp32": t32,
        "step_s_bf16": round(t16, 4),
        "achieved_gflops_fp32": round(flops / t32 / 1e9, 1),
        "achieved_gflops_bf16": round(flops / t16 / 1e9, 1),
        "fp32_share_of_fp32_peak": round(flops / t32 / peak32, 3),
        "bf16_share_of_bf16_peak": round(flops / t16 / peak16, 3),
        "bf16_speedup": round(t32 / t16, 2),
        "fp32_breakdown": breakdown,
        "bf16_breakdown": breakdown16,
        "conv_bf16_speedup": round(breakdown["conv_s"] / breakdown16["conv_s"], 2),
        "target": "fp32 share >= 0.85; bf16 speed-up >= 2",
    } | ({} if compiled is None else {
        "step_s_fp32_compiled": round(compiled, 4),
        "compile_s": round(compile_s, 1),
        "achieved_gflops_fp32_compiled": round(flops / compiled / 1e9, 1),
        "fp32_compiled_share_of_fp32_peak": round(flops / compiled / peak32, 3),
    })  # fmt: skip


# ------------------------------------------------------------------------------------------------------ loop
def bench_loop(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    """ablate's ``train`` vs a bare loop: same recipe, model, data, optimiser, schedule, batches."""
    from ablate.config import load_recipe
    from ablate.data.datamodule import build_datasets, train_loader
    from ablate.models.segmenter import build_model
    from ablate.train.job import quiet, train
    from ablate.train.module import make_optimizer, poly_lambda

    quiet()
    recipe = load_recipe(REPO / "recipes" / "synthetic.yaml")
    recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"steps": cfg.loop_steps})})
    if cfg.quick:
        recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"num_train": 64})})
    data = build_datasets(recipe.data)
    t = recipe.train

    def bare_steps():  # the bare loop, one step per next() (the interleaved probe runs it step by step)
        torch.manual_seed(recipe.seed)
        model = build_model(recipe.model, len(data.classes))
        if t.channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        opt = make_optimizer(model.parameters(), t)  # the same optimizer: the loop is what is compared
        sched = torch.optim.lr_scheduler.LambdaLR(opt, poly_lambda(t.steps, t.poly_power))
        for images, labels in train_loader(data, t.batch_size, recipe.seed, t.steps):
            if t.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(images), labels, ignore_index=data.ignore_index)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            yield

    def bare() -> None:
        for _ in bare_steps():
            pass

    def whole() -> None:
        run_dir = Path(tempfile.mkdtemp(dir=tmp))
        train(recipe, data, run_dir)

    warm = recipe.model_copy(update={"train": t.model_copy(update={"steps": 3})})
    train(warm, data, Path(tempfile.mkdtemp(dir=tmp)))  # first-call costs (kernels, imports) off the clock
    times: dict[str, list[float]] = {"bare": [], "ablate": []}
    for i in range(cfg.loop_pairs):  # back to back, alternating which goes first
        for name in ("bare", "ablate") if i % 2 == 0 else ("ablate", "bare"):
            times[name].append(_best(bare if name == "bare" else whole, 1))
    pairs = [a / b for a, b in zip(times["ablate"], times["bare"], strict=True)]

    def with_hook(hook: Callable[[int], None]) -> None:
        train(recipe, data, Path(tempfile.mkdtemp(dir=tmp)), hooks=[hook])

    block = min(cfg.loop_blocks, t.steps)
    blocks = [_block_interleaved(with_hook, bare_steps(), block) for _ in range(cfg.loop_interleaved)]
    probe = _interleaved_probe(with_hook, bare_steps(), t.checkpoint_every)
    return {
        "recipe": "recipes/synthetic.yaml",
        "steps": t.steps,
        "ratio": round(statistics.median(b["ratio"] for b in blocks), 3),
        "block_steps": block,
        "blocks": blocks,
        "bare_s": round(statistics.median(times["bare"]), 3),
        "ablate_s": round(statistics.median(times["ablate"]), 3),
        "pairs_ratio": round(statistics.median(pairs), 3),
        "pair_ratios": [round(r, 3) for r in pairs],
        "ratio_of_best": round(min(times["ablate"]) / min(times["bare"]), 3),
        "all_s": {k: [round(v, 3) for v in vs] for k, vs in times.items()},
        "interleaved": probe,
        "target": "<= 1.05",
    }


def _block_interleaved(
    run: Callable[[Callable[[int], None]], Any], bare: Any, block: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """One whole ablate training that, after each ``block`` of its steps, runs the next ``block`` steps of the bare
    loop (its model build at the first). Both whole loops, fixed costs included, are timed in the same stretches of
    the machine's time, so its speed changes (±10-15% over seconds on a shared 2-core VM) cancel; each side finds the
    caches cold once per block, alike. ablate's time is the training's wall time less the bare blocks run inside it."""
    inside: list[float] = []

    def run_block() -> None:
        started = clock()
        for _ in range(block):
            if next(bare, StopIteration) is StopIteration:
                break
        inside.append(clock() - started)

    def after_step(step: int) -> None:
        if step % block == 0:
            run_block()

    started = clock()
    run(after_step)
    total = clock() - started
    run_block()  # what the bare loop has left (steps not a multiple of the block), and its end
    bare_s = sum(inside)
    ablate_s = total - sum(inside[:-1])
    return {"ablate_s": round(ablate_s, 3), "bare_s": round(bare_s, 3), "ratio": round(ablate_s / bare_s, 4)}


def _interleaved_probe(
    run: Callable[[Callable[[int], None]], Any], bare: Any, checkpoint_every: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:  # fmt: skip
    """One ablate training with one bare-loop step run right after each of its steps (own model, optimiser and
    batches): both are timed in the same moments of the machine, so its speed changes cancel. ablate's step ``s``
    is the time from the hook after step ``s - 1`` to the hook after step ``s`` (the loop's own work, a checkpoint
    when one is due) less the bare step run inside it."""
    marks: list[float] = []
    bare_s: list[float] = []

    def after_step(step: int) -> None:
        marks.append(clock())
        started = clock()
        next(bare, None)
        bare_s.append(clock() - started)

    run(after_step)
    steps = len(marks)
    ours = {s: marks[s - 1] - marks[s - 2] - bare_s[s - 2] for s in range(2, steps + 1)}  # step s (1-based)
    if not ours:
        return {}
    saves = [s for s in ours if s % checkpoint_every == 0 and s < steps]
    step = statistics.median(ours[s] for s in ours if s not in saves)
    plain = statistics.median(bare_s)
    return {
        "ablate_step_ms": round(step * 1e3, 3),
        "bare_step_ms": round(plain * 1e3, 3),
        "overhead_ms_per_step": round((step - plain) * 1e3, 3),
        "overhead_share": round(step / plain - 1, 4),
        "checkpoint_ms": round((statistics.mean(ours[s] for s in saves) - step) * 1e3, 1) if saves else None,
        "checkpoints": len(saves),
    }


# ------------------------------------------------------------------------------------------------------ study
def _python_env(src: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("WANDB_MODE", None)
    env["WANDB_MODE"] = "offline"
    return env


def _run_study(src: Path, study: Path, results: Path, sets: list[str]) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results)]
    for s in sets:
        cmd += ["--set", s]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=src, env=_python_env(src), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, proc.returncode


def _study_records(results: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(results.glob("*/runs/*/metrics.json")):
        rec = json.loads(path.read_text())
        cfg = path.with_name("config.yaml")
        rec["_config"] = cfg.read_text() if cfg.is_file() else ""
        out.append(rec)
    return out


def _cold_import_s() -> float:
    code = "import ablate.train.job, ablate.study.runner"
    return _best(lambda: subprocess.run([sys.executable, "-c", code], env=_python_env(REPO), check=True), 2)


def _miou_by_config(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    import yaml

    groups: dict[str, list[float]] = {}
    for rec in records:
        if rec.get("status") != "done":
            continue
        conf = yaml.safe_load(rec["_config"]) or {}
        key = json.dumps(conf.get("axes", {}), sort_keys=True)
        groups.setdefault(key, []).append(100 * rec["metrics"]["miou"])
    return groups


def bench_study(cfg: BenchConfig, tmp: Path) -> dict[str, Any]:
    from ablate.config import load_recipe
    from ablate.data.synthetic import _generate
    from ablate.models.segmenter import build_model

    assert cfg.study is not None
    out: dict[str, Any] = {"study": str(cfg.study), "sets": cfg.study_sets}
    results = tmp / "study"
    wall, rc = _run_study(REPO, cfg.study, results, cfg.study_sets)
    records = _study_records(results)
    train_s = sum(r.get("train_time_s", 0.0) for r in records)
    eval_s = sum(r.get("eval", {}).get("eval_time_s", 0.0) for r in records)
    n = max(1, len(records))
    out.update(
        runs=len(records),
        failed=sum(r.get("status") != "done" for r in records),
        wall_s=round(wall, 2),
        train_s=round(train_s, 2),
        eval_s=round(eval_s, 2),
        overhead_s=round(wall - train_s - eval_s, 2),
        fixed_cost_per_run_s=round((wall - train_s - eval_s) / n, 3),
        wall_over_runs=round(wall / max(1e-9, train_s + eval_s), 3),
        target="fixed cost per run <= 3 s",
    )
    # the parts of the fixed cost
    recipe = load_recipe(REPO / "recipes" / "synthetic.yaml")
    out["cold_start_and_imports_s"] = round(_cold_import_s(), 2)
    out["model_build_s"] = round(_best(lambda: build_model(recipe.model, 5), 3), 3)
    d = recipe.data
    _generate.cache_clear()
    out["data_setup_s_first"] = round(_best(lambda: _generate("train", d.num_train, d.image_size, d.seed), 1), 3)
    out["data_setup_s_cached"] = round(_best(lambda: _generate("train", d.num_train, d.image_size, d.seed), 1), 5)
    fp32 = _miou_by_config(records)
    out["miou_fp32"] = {k: [round(v, 2) for v in vs] for k, vs in fp32.items()}
    if cfg.before:
        src = tmp / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(src), cfg.before], check=True,
                       capture_output=True)  # fmt: skip
        try:
            before_wall, _ = _run_study(src, cfg.study, tmp / "study_before", cfg.study_sets)
            out["before"] = {"ref": cfg.before, "wall_s": round(before_wall, 2)}
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(src)], capture_output=True)
    if cfg.bf16_study:
        started = time.perf_counter()
        _run_study(REPO, cfg.study, tmp / "study_bf16", [*cfg.study_sets, "train.precision=bf16-mixed"])
        bf16 = _miou_by_config(_study_records(tmp / "study_bf16"))
        out["bf16"] = {"wall_s": round(time.perf_counter() - started, 2), **_compare_miou(fp32, bf16)}
    return out


def _compare_miou(fp32: dict[str, list[float]], bf16: dict[str, list[float]]) -> dict[str, Any]:
    all32 = [v for vs in fp32.values() for v in vs]
    all16 = [v for vs in bf16.values() for v in vs]
    spreads = [statistics.stdev(vs) for vs in fp32.values() if len(vs) > 1]
    spread = statistics.mean(spreads) if spreads else float("nan")
    delta = (statistics.mean(all16) - statistics.mean(all32)) if all16 and all32 else float("nan")
    return {
        "miou_fp32_mean": round(statistics.mean(all32), 2) if all32 else None,
        "miou_bf16_mean": round(statistics.mean(all16), 2) if all16 else None,
        "delta": round(delta, 2),
        "fp32_seed_std_mean": round(spread, 2),
        "within_seed_spread": bool(abs(delta) <= spread),
        "miou_bf16": {k: [round(v, 2) for v in vs] for k, vs in bf16.items()},
    }


# ------------------------------------------------------------------------------------------------------ metrics, CRF
def bench_metrics(cfg: BenchConfig) -> dict[str, Any]:
    from torchmetrics.classification import MulticlassJaccardIndex

    from ablate.train.metrics import confusion_metric

    k, n, size = cfg.classes, 8, 64 if cfg.quick else 256
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, k, (n, size, size), generator=g).to(_device())
    target = torch.randint(0, k, (n, size, size), generator=g)
    target[:, ::7] = 255
    target = target.to(_device())
    ours = confusion_metric(k, 255, sync=False).to(_device())
    theirs = MulticlassJaccardIndex(num_classes=k, ignore_index=255, average="macro").to(_device())
    reps = 5 if cfg.quick else 20

    def loop(metric) -> Callable[[], None]:
        def go() -> None:
            for _ in range(reps):
                metric.update(preds, target)
            _sync()

        return go

    a = _best(loop(ours), cfg.repeats + 1) / reps
    b = _best(loop(theirs), cfg.repeats + 1) / reps
    return {
        "tensors": f"{n} x {size} x {size}, {k} classes, ignore 255",
        "ablate_update_ms": round(1e3 * a, 3),
        "torchmetrics_jaccard_update_ms": round(1e3 * b, 3),
        "ratio": round(a / b, 3),
    }


def bench_crf(cfg: BenchConfig) -> dict[str, Any]:
    """The CRF pool's speed-up over one worker, through ``ablate.train.crf.benchmark`` (when that module is here)."""
    try:
        from ablate.train import crf  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - not merged yet, or pydensecrf missing
        return {"available": False, "reason": f"not available: {type(exc).__name__}: {exc}"}
    import numpy as np

    try:
        workers = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)
        n, size, k = (4, 64, 5) if cfg.quick else (16, 256, 21)
        rng = np.random.default_rng(0)
        probs = [rng.dirichlet(np.ones(k), size=(size, size)).transpose(2, 0, 1).astype(np.float32) for _ in range(n)]
        rgbs = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
        crf_cfg = crf.CRFConfig()
        res = crf.benchmark(probs, rgbs, crf_cfg, [1, workers], repeats=cfg.repeats, warm=True)
        one, many = res[1][0], res[workers][0]
        return {
            "available": True,
            "images": f"{n} x {size} x {size}, {k} classes",
            "workers": workers,
            "one_worker_s": round(one, 3),
            "pool_s": round(many, 3),
            "speedup": round(one / many, 2),
        }
    except Exception as exc:  # noqa: BLE001 - report, do not fail the whole bench
        return {"available": False, "reason": f"error: {type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------------------------------------------ report
def _fmt_row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _probe_lines(probe: dict[str, Any] | None) -> list[str]:
    if not probe:
        return []
    return [
        "",
        "Where the difference goes (one ablate run with one bare step right after each of its steps, medians): "
        f"ablate step {probe['ablate_step_ms']} ms (the model step plus the loop's own work: Fabric's wrappers, the "
        f"loss buffer, the curve) vs bare step {probe['bare_step_ms']} ms: "
        f"**+{probe['overhead_ms_per_step']} ms per step** "
        f"({100 * probe['overhead_share']:.1f}%); each of the {probe['checkpoints']} checkpoint saves "
        f"+{probe['checkpoint_ms']} ms.",
    ]


def _engine_lines(fl: dict[str, Any]) -> list[str]:
    by = fl.get("gemm_gflops_by_engine")
    if not by:
        return []
    parts = [f"{dt}: " + ", ".join(f"{e} {v}" for e, v in engines.items()) for dt, engines in by.items()]
    return [
        f"GEMM peak: the faster of two engines for the same n x n x n product (GFLOP/s; `matmul` = `a @ b`, on CPU "
        f"fp32 the BLAS; `conv1x1` = a 1x1 convolution, on CPU oneDNN, the library of the model's convolutions), "
        f"best over n = {', '.join(map(str, fl['gemm_n']))}: {'; '.join(parts)}. bf16 peak / fp32 peak "
        f"{fl['gemm_peak_gflops_bf16'] / fl['gemm_peak_gflops_fp32']:.2f}x (where the convolutions are most of a step, "
        f"its bf16 speed-up over fp32 cannot go much beyond this ratio; CPUs without bf16 matrix units such as AMX "
        f"have about 2x).",
        "",
    ]


def _breakdown_lines(b: dict[str, Any] | None) -> list[str]:
    if not b:
        return []
    others = ", ".join(f"{name.removeprefix('aten::')} {ms} ms" for name, ms in b["other_top_ms"].items())
    return [
        f"Where the {b.get('precision', 'fp32')} step goes (profiled step, {b['step_s_profiled']:.3f} s): the "
        f"convolutions (forward, both gradients) {b['conv_s']:.3f} s = {100 * b['conv_share_of_step']:.0f}% of the "
        f"step, at {b['conv_gflops']} GFLOP/s = **{100 * b['conv_share_of_peak']:.0f}% of the "
        f"{b.get('precision', 'fp32')} GEMM peak**; the rest is other ops, the largest {others}.",
        "",
    ]


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# ablate bench",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), torch {m['torch']}, "
        f"{m['torch_threads']} threads, GPU: {m['gpu'] or 'none'}, AVX-512 BF16: {m['avx512_bf16']}  ",
        f"Load average at start {tuple(round(x, 2) for x in m['load_avg_start'])}, "
        f"at end {tuple(round(x, 2) for x in report['load_avg_end'])}; total {report['total_s']} s"
        + (" (quick mode: figures are not meaningful)" if report["quick"] else ""),
        "",
    ]
    s = report.get("step")
    if s:
        lines += [
            f"## 1. Training step, DeepLabv3 ResNet-50 OS16 ASPP 6/12/18, batch {s['batch']}, {s['size']} px",
            "",
            _fmt_row(["model", "format", "optimizer", "s/step", "images/s", "GFLOP/step"]),
            _fmt_row(["---"] * 6),
        ]
        for r in s["rows"]:
            if "error" in r:
                lines.append(_fmt_row([r["model"], "error", r["error"], "", "", ""]))
            else:
                lines.append(_fmt_row([r["model"], r["format"], r["optimizer"], r["step_s"], r["images_per_s"],
                                       r["gflop_per_step"]]))  # fmt: skip
        lines += ["", f"ablate (default, channels_last) / fastest peer ({s['fastest_peer']}): "
                  f"**{s['ratio_to_fastest_peer']}x** (target {s['target']})", ""]  # fmt: skip
    lp = report.get("loop")
    if lp:
        lines += [
            f"## 2. Whole training loop vs a bare PyTorch loop ({lp['recipe']}, {lp['steps']} steps)",
            "",
            f"Block-interleaved (one ablate training running {lp['block_steps']} bare-loop steps after each "
            f"{lp['block_steps']} of its own, so both see the same machine speed; each side's fixed costs "
            f"included), median of {len(lp['blocks'])} runs: **{lp['ratio']}x** (target {lp['target']}); runs "
            + ", ".join(f"{b['ablate_s']} s / {b['bare_s']} s = {b['ratio']}" for b in lp["blocks"])
            + ".",
            "",
            f"Back to back (separate runs, order alternating; the machine's speed changes between runs count "
            f"here): median of {len(lp['pair_ratios'])} pairs bare {lp['bare_s']} s, ablate {lp['ablate_s']} s; "
            f"median pair ratio {lp['pairs_ratio']}x, pair ratios {lp['pair_ratios']}; best ablate / best bare "
            f"{lp['ratio_of_best']}x; all timings {lp['all_s']}",
            *_probe_lines(lp.get("interleaved")),
            "",
        ]
    st = report.get("study")
    if st:
        lines += [
            f"## 3. Study wall time vs its runs ({st['study']}, --set {st['sets'] or 'none'})",
            "",
            f"`ablate run` in a fresh process: {st['wall_s']} s for {st['runs']} runs ({st['failed']} failed); "
            f"training {st['train_s']} s + evaluation {st['eval_s']} s; overhead {st['overhead_s']} s, "
            f"**{st['fixed_cost_per_run_s']} s per run** ({st['target']}); wall / (train + eval) "
            f"{st['wall_over_runs']}x.",
            "",
            f"Parts: process start + imports {st['cold_start_and_imports_s']} s (once per study), model build "
            f"{st['model_build_s']} s, synthetic data {st['data_setup_s_first']} s first, "
            f"{st['data_setup_s_cached']} s cached (later runs).",
            "",
        ]
        if "before" in st:
            lines += [f"Before (`{st['before']['ref']}`): {st['before']['wall_s']} s; now {st['wall_s']} s.", ""]
    fl = report.get("flops")
    if fl:
        lines += [
            "## 4. Achieved FLOP/s vs the GEMM peak",
            "",
            _fmt_row(["", "GEMM peak GFLOP/s", "step s", "achieved GFLOP/s", "share of peak"]),
            _fmt_row(["---"] * 5),
            _fmt_row(["fp32", fl["gemm_peak_gflops_fp32"], fl["step_s_fp32"], fl["achieved_gflops_fp32"],
                      fl["fp32_share_of_fp32_peak"]]),
            _fmt_row(["bf16 autocast", fl["gemm_peak_gflops_bf16"], fl["step_s_bf16"], fl["achieved_gflops_bf16"],
                      fl["bf16_share_of_bf16_peak"]]),
        ] + ([
            _fmt_row([f"fp32, torch.compile (compile {fl['compile_s']} s)", fl["gemm_peak_gflops_fp32"],
                      fl["step_s_fp32_compiled"], fl["achieved_gflops_fp32_compiled"],
                      fl["fp32_compiled_share_of_fp32_peak"]]),
        ] if "step_s_fp32_compiled" in fl else []) + [
            "",
            f"{fl['gflop_per_step']} GFLOP per step (the products computed); bf16 speed-up over fp32 "
            f"**{fl['bf16_speedup']}x** (target {fl['target']}).",
            "",
        ] + _engine_lines(fl) + [
            f"Counted as the usual convention does (model FLOPs, as in MFU: every tap of every conv as a plain conv "
            f"runs it, including the ASPP taps that only read padding): {fl['gflop_per_step_nominal']} GFLOP per "
            f"step, share of peak fp32 {fl['fp32_share_nominal']}, bf16 {fl['bf16_share_nominal']}.",
            "",
        ] + _breakdown_lines(fl.get("fp32_breakdown")) + _breakdown_lines(fl.get("bf16_breakdown")) + ([
            f"The convolutions alone, bf16 vs fp32: **{fl['conv_bf16_speedup']}x** faster.", "",
        ] if "conv_bf16_speedup" in fl else [])  # fmt: skip
        if st and "bf16" in st:
            b = st["bf16"]
            lines += [
                f"Study in bf16: {b['wall_s']} s; mIoU mean bf16 {b['miou_bf16_mean']} vs fp32 {b['miou_fp32_mean']} "
                f"(Δ {b['delta']}, fp32 seed std {b['fp32_seed_std_mean']}): within seed spread: "
                f"**{b['within_seed_spread']}**.",
                "",
            ]
    mt = report.get("metrics")
    if mt:
        lines += [
            "## 5. Metric update and dense CRF",
            "",
            f"Confusion-matrix update ({mt['tensors']}): ablate {mt['ablate_update_ms']} ms, torchmetrics "
            f"MulticlassJaccardIndex {mt['torchmetrics_jaccard_update_ms']} ms: **{mt['ratio']}x**.",
            "",
        ]
    cr = report.get("crf")
    if cr:
        if cr.get("available"):
            lines += [
                f"Dense CRF ({cr['images']}): one worker {cr['one_worker_s']} s, {cr['workers']} workers "
                f"{cr['pool_s']} s: **{cr['speedup']}x**.",
                "",
            ]
        else:
            lines += [f"Dense CRF: {cr['reason']}", ""]
    return "\n".join(lines)


SECTIONS = ("step", "flops", "loop", "study", "metrics", "crf")


def run_bench(cfg: BenchConfig, sections: tuple[str, ...] = SECTIONS, log: Callable[[str], None] = print) -> dict:
    started = time.perf_counter()
    report: dict[str, Any] = {"command": cfg.command, "quick": cfg.quick, "config": _jsonable(asdict(cfg))}
    report["machine"] = machine()
    cfg.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ablate-bench-"))
    try:
        for name in sections:
            if name == "study" and cfg.study is None:
                continue
            if name == "flops" and "step" not in report:
                continue
            log(f"bench: {name} ...")
            t0 = time.perf_counter()
            if name == "step":
                report["step"] = bench_step(cfg)
            elif name == "flops":
                report["flops"] = bench_flops(cfg, report["step"])
            elif name == "loop":
                report["loop"] = bench_loop(cfg, tmp)
            elif name == "study":
                report["study"] = bench_study(cfg, tmp)
            elif name == "metrics":
                report["metrics"] = bench_metrics(cfg)
            elif name == "crf":
                report["crf"] = bench_crf(cfg)
            log(f"bench: {name} done in {time.perf_counter() - t0:.1f} s: {json.dumps(report[name])[:300]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_avg_end"] = os.getloadavg()
    report["total_s"] = round(time.perf_counter() - started, 1)
    (cfg.out / "bench.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    (cfg.out / "bench.md").write_text(to_markdown(report) + "\n")
    return report


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
