"""The GEMM peak a training step's FLOP rate is held against: the faster of two engines for one n x n x n product."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ablate.bench.measure import bench_device, best_of, sync

GEMM_ENGINES = ("matmul", "conv1x1")


def gemm_product(n: int, dtype: torch.dtype, engine: str) -> Callable[[], torch.Tensor]:
    """One n x n x n matrix product (2 n^3 FLOPs) on the bench device, by ``engine``: ``"matmul"`` is ``a @ b``
    (on CPU, fp32 goes to the BLAS, MKL); ``"conv1x1"`` is the same product as a 1x1 convolution over an n-pixel
    channels_last map (on CPU, oneDNN, the library that runs the model's convolutions)."""
    dev = bench_device()
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
        sync()

    return 2 * n**3 * reps / best_of(go, repeats)


def machine_gemm_peak(sizes: list[int], dtype: torch.dtype, repeats: int) -> tuple[float, dict[str, float]]:
    """The measured GEMM peak: the best FLOP/s over ``sizes`` and both engines; also each engine's best."""
    by_engine = {e: max(gemm_peak(n, dtype, repeats, e) for n in sizes) for e in GEMM_ENGINES}
    return max(by_engine.values()), by_engine
