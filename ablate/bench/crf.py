"""The dense CRF pool's speed: the pool against one worker over a recipe's validation images, cold (a pool started
and ended inside the clock, as one ``ablate eval``) and warm (the shared pool a study's later evaluations reuse).
``python -m ablate.bench.crf [--recipe R] [--model model.pt]`` (``nox -s bench_crf``); ``benchmark`` is also the
bench's ``crf`` section (``ablate.bench.metrics``)."""

from __future__ import annotations

import os
import time

import numpy as np

from ablate.config.schema import CRFConfig
from ablate.core.machine import available_cores
from ablate.train.crf import CRFPool, close_shared


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pool workers once joined)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def benchmark(
    probs: list[np.ndarray],
    rgbs: list[np.ndarray],
    cfg: CRFConfig,
    workers: list[int],
    repeats: int = 3,
    warm: bool = False,
) -> dict[int, tuple[float, float, float]]:
    """For each number of workers: the best and the median wall time (s) over ``repeats`` to CRF every image, and
    the CPU time (s, this process and its workers) of the best. Repeats alternate between the worker counts, so
    a change in the machine's load hits all of them alike. Cold (default): a new pool each time, its start and
    shutdown timed (one ``ablate eval``). ``warm``: the processes are started before the clock starts (the shared
    pool a study's later evaluations reuse); the workers' CPU time is then not measurable (NaN)."""
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in workers}
    for _ in range(repeats):
        for n in workers:
            pool = CRFPool(cfg, n)
            if warm:
                pool.start()
            started, cpu = time.perf_counter(), _cpu_seconds()
            for _labels in pool.imap(zip(probs, rgbs, strict=True)):
                pass
            wall_warm = time.perf_counter() - started
            pool.close()
            wall = wall_warm if warm else time.perf_counter() - started
            runs[n].append((wall, float("nan") if warm and n > 1 else _cpu_seconds() - cpu))
    out = {}
    for n, values in runs.items():
        walls = sorted(w for w, _ in values)
        best = min(values)
        out[n] = (best[0], walls[len(walls) // 2], best[1])
    return out


def main(argv: list[str] | None = None) -> None:
    """Benchmark the CRF pool on the embedded validation set: ``python -m ablate.bench.crf [--recipe R]``."""
    import argparse

    from ablate.config.yaml_io import load_recipe

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--recipe", default="recipes/synthetic.yaml", help="recipe whose data: and eval.crf are used")
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="worker counts (default: 1 and cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="model.pt of a trained run (default: smoothed ground truth)")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    from ablate.data.loader import build_datasets

    data = build_datasets(recipe.data)
    val = data.val
    k = len(data.classes)
    rgbs = [val.rgb(i) for i in range(len(val))]
    if args.model:
        import torch

        from ablate.models.segmenter import build_model

        model = build_model(recipe.model, k).eval()
        model.load_state_dict(torch.load(args.model, map_location="cpu", weights_only=True))
        with torch.no_grad():
            probs = [model(val[i][0][None]).softmax(1)[0].numpy() for i in range(len(val))]
    else:  # a plausible, uncertain prediction: ground truth one-hot mixed with noise
        rng = np.random.default_rng(0)
        probs = []
        for i in range(len(val)):
            label = val[i][1].numpy()
            onehot = np.eye(k, dtype=np.float32)[np.where(label < k, label, 0)].transpose(2, 0, 1)
            p = 0.5 * onehot + rng.random(onehot.shape, dtype=np.float32)
            probs.append(p / p.sum(0, keepdims=True))
    workers = args.workers or sorted({1, available_cores()})
    cfg = recipe.eval.crf.model_copy(update={"enabled": True})
    h, w = rgbs[0].shape[:2]
    print(f"CRF on {len(rgbs)} validation images of {h}x{w}, {k} classes, {cfg.iterations} iterations")
    print(f"cores available: {available_cores()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for warm in (False, True):
        print("warm pool (started before timing):" if warm else "cold pool (start and shutdown timed):")
        times = benchmark(probs, rgbs, cfg, workers, args.repeats, warm=warm)
        base, base_median = times[min(times)][:2]
        for n, (wall, median, cpu) in times.items():
            print(
                f"  workers={n}: best {wall:.3f} s (CPU {cpu:.3f} s, {len(rgbs) / wall:.1f} images/s, speed-up "
                f"{base / wall:.2f}x), median {median:.3f} s (speed-up {base_median / median:.2f}x)"
            )
    if args.model:  # the whole evaluation: network (one torch thread) + CRF, as `ablate run` / `ablate eval` do
        from ablate.train.evaluate import evaluate

        torch.set_num_threads(1)
        print("whole evaluation (network + CRF; shared pool, started inside each evaluation's first call):")
        for n in workers:
            ev = recipe.eval.model_copy(update={"crf": cfg.model_copy(update={"workers": n})})
            best = float("inf")
            for _ in range(args.repeats):
                close_shared()  # count the pool's start, as a single `ablate eval` would
                m = evaluate(model, val, ev, k, data.ignore_index)
                best = min(best, m["eval_time_s"])
            print(f"  workers={n}: {best:.3f} s  (mIoU {100 * m['miou']:.2f})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
