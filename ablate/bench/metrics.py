"""Section 5: the confusion-matrix update vs torchmetrics' Jaccard index, and the dense CRF pool's speed-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ablate.bench.measure import BenchConfig, bench_device, best_of, sync
from ablate.core.machine import available_cores


def bench_metrics(cfg: BenchConfig) -> dict[str, Any]:
    from torchmetrics.classification import MulticlassJaccardIndex

    from ablate.train.metrics import confusion_metric

    k, n, size = cfg.classes, 8, 64 if cfg.quick else 256
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, k, (n, size, size), generator=g).to(bench_device())
    target = torch.randint(0, k, (n, size, size), generator=g)
    target[:, ::7] = 255
    target = target.to(bench_device())
    ours = confusion_metric(k, 255, sync=False).to(bench_device())
    theirs = MulticlassJaccardIndex(num_classes=k, ignore_index=255, average="macro").to(bench_device())
    reps = 5 if cfg.quick else 20

    def loop(metric) -> Callable[[], None]:
        def go() -> None:
            for _ in range(reps):
                metric.update(preds, target)
            sync()

        return go

    a = best_of(loop(ours), cfg.repeats + 1) / reps
    b = best_of(loop(theirs), cfg.repeats + 1) / reps
    return {
        "tensors": f"{n} x {size} x {size}, {k} classes, ignore 255",
        "ablate_update_ms": round(1e3 * a, 3),
        "torchmetrics_jaccard_update_ms": round(1e3 * b, 3),
        "ratio": round(a / b, 3),
    }


def bench_crf(cfg: BenchConfig) -> dict[str, Any]:
    """The CRF pool's speed-up over one worker, through ``ablate.bench.crf.benchmark``."""
    import numpy as np

    from ablate.bench.crf import benchmark
    from ablate.config.schema import CRFConfig
    from ablate.train.crf import require_pydensecrf

    try:
        require_pydensecrf()
    except Exception as exc:  # noqa: BLE001 - pydensecrf missing: say so in the bench, do not fail it
        return {"available": False, "reason": f"not available: {type(exc).__name__}: {exc}"}

    try:
        workers = max(2, available_cores())
        n, size, k = (4, 64, 5) if cfg.quick else (16, 256, 21)
        rng = np.random.default_rng(0)
        probs = [rng.dirichlet(np.ones(k), size=(size, size)).transpose(2, 0, 1).astype(np.float32) for _ in range(n)]
        rgbs = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
        crf_cfg = CRFConfig()
        res = benchmark(probs, rgbs, crf_cfg, [1, workers], repeats=cfg.repeats, warm=True)
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
