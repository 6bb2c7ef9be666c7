"""Section 4: the training step's achieved FLOP/s against the GEMM peak, fp32 and bf16 (autocast), where its time
goes (profiled), and the bf16 study's mIoU against fp32's seed spread."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ablate.bench.common import BenchConfig
from ablate.bench.gemm import machine_gemm_peak
from ablate.bench.models import _batch, _train_step_fn, ablate_deeplabv3, ablate_sgd, step_flops, time_step
from ablate.core.text import markdown_table

NAME = "flops"


def nominal_step_flops(model: nn.Module, x, y) -> float:
    """FLOPs of the step as the usual convention counts them (model FLOPs, as in MFU): every tap of every conv,
    as a plain ``nn.Conv2d`` runs it, including the ASPP taps that only read padding and that ``AtrousConv2d``
    skips. ``step_flops`` counts the products actually computed."""
    from ablate.models.layers.atrous import AtrousConv2d

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


def markdown(fl: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """This section of bench.md (``report``: the whole bench, for figures other sections measured)."""
    lines = [
        "## 4. Achieved FLOP/s vs the GEMM peak",
        "",
        markdown_table([
            ["fp32", fl["gemm_peak_gflops_fp32"], fl["step_s_fp32"], fl["achieved_gflops_fp32"],
             fl["fp32_share_of_fp32_peak"]],
            ["bf16 autocast", fl["gemm_peak_gflops_bf16"], fl["step_s_bf16"], fl["achieved_gflops_bf16"],
             fl["bf16_share_of_bf16_peak"]],
        ] + ([
            [f"fp32, torch.compile (compile {fl['compile_s']} s)", fl["gemm_peak_gflops_fp32"],
             fl["step_s_fp32_compiled"], fl["achieved_gflops_fp32_compiled"], fl["fp32_compiled_share_of_fp32_peak"]],
        ] if "step_s_fp32_compiled" in fl else []), ["", "GEMM peak GFLOP/s", "step s", "achieved GFLOP/s",
                                                     "share of peak"]),
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
    st = report.get("study")
    if st and "bf16" in st:
        b = st["bf16"]
        lines += [
            f"Study in bf16: {b['wall_s']} s; mIoU mean bf16 {b['miou_bf16_mean']} vs fp32 {b['miou_fp32_mean']} "
            f"(Δ {b['delta']}, fp32 seed std {b['fp32_seed_std_mean']}): within seed spread: "
            f"**{b['within_seed_spread']}**.",
            "",
        ]
    return lines
