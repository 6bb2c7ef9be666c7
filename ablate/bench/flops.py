"""Section 4: the training step's achieved FLOP/s against the GEMM peak, fp32 and bf16 (autocast), where its time
goes (profiled), and the bf16 study's mIoU against fp32's seed spread."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ablate.bench.gemm import machine_gemm_peak
from ablate.bench.measure import BenchConfig
from ablate.bench.models import _batch, _train_step_fn, ablate_deeplabv3, ablate_sgd, step_flops, time_step


def nominal_step_flops(model: nn.Module, x, y) -> float:
    """FLOPs of the step as the usual convention counts them (model FLOPs, as in MFU): every tap of every conv,
    as a plain ``nn.Conv2d`` runs it, including the ASPP taps that only read padding and that ``AtrousConv2d``
    skips. ``step_flops`` counts the products actually computed."""
    from ablate.train.cpu_speed import AtrousConv2d

    for m in model.modules():
        if isinstance(m, AtrousConv2d):
            m.forward = nn.Conv2d.forward.__get__(m)  # this instance only: a plain conv
    return step_flops(model, x, y)


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
