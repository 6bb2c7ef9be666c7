"""Section 1: one training step of ablate's DeepLabv3 vs torchvision's and smp's, same batch, size and rates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ablate.bench.measure import BenchConfig, best_of
from ablate.bench.models import PEERS, _batch, _train_step_fn, ablate_deeplabv3, ablate_sgd, step_flops, torch_sgd


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
            times[i].append(best_of(step, 1))
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
