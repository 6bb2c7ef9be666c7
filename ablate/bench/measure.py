"""What every bench section measures with: the configuration, the bench device, best-of timing, the machine's facts."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablate.core.machine import available_cores, cpu_name


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
    recipe: Path = Path("recipes/synthetic.yaml")  # sections 2 and 3: the embedded recipe (working folder)
    study: Path | None = Path("studies/aspp_rates.yaml")  # section 3 (None: skip); relative to the working folder
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


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def machine() -> dict[str, Any]:
    flags = ""
    try:
        flags = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "cores_usable": available_cores(),
        "avx512_bf16": "avx512_bf16" in flags,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_start": os.getloadavg(),
    }


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
