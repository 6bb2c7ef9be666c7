"""Dense CRF post-processing (fully connected CRF, Kraehenbuehl & Koltun 2011, as in DeepLab v1/v2), over a pool.

The unary is -log(softmax probability); the pairwise terms are a Gaussian (smoothness) kernel and a bilateral
(appearance) kernel on the de-normalised uint8 RGB image. ``pydensecrf`` is single-threaded, so images are spread
over a process pool (``CRFPool``) to use every core during evaluation.

This module imports neither torch nor pydensecrf at import time: the pool's workers start fast, and ``ablate
--help`` stays light. ``python -m ablate.train.crf`` runs the pool-vs-one-worker benchmark (see ``benchmark``).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ablate.config.schema import CRFConfig
from ablate.core.machine import available_cores


def require_pydensecrf() -> None:
    """Fail early, in one line, where the dense CRF is asked for but not installed."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"eval.crf needs pydensecrf ({exc}); install it with: pip install pydensecrf2==1.1 "
            "(built from source: needs g++ and the Python headers)"
        ) from None


def dense_crf(probs: np.ndarray, rgb: np.ndarray, cfg: CRFConfig) -> np.ndarray:
    """Refine one image's class probabilities (K x H x W, summing to 1 over K) with a dense CRF on ``rgb``
    (H x W x 3 uint8). Returns the CRF's marginals, K x H x W float32."""
    import pydensecrf.densecrf as dcrf

    k, h, w = probs.shape
    if rgb.shape != (h, w, 3):
        raise ValueError(f"image is {rgb.shape}, probabilities are {probs.shape}: expected an H x W x 3 image")
    unary = -np.log(np.clip(probs, 1e-8, 1.0)).reshape(k, -1)
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    if cfg.gaussian.compat > 0:
        crf.addPairwiseGaussian(sxy=cfg.gaussian.sxy, compat=cfg.gaussian.compat)
    if cfg.bilateral.compat > 0:
        crf.addPairwiseBilateral(
            sxy=cfg.bilateral.sxy,
            srgb=cfg.bilateral.srgb,
            rgbim=np.ascontiguousarray(rgb, dtype=np.uint8),
            compat=cfg.bilateral.compat,
        )
    q = crf.inference(cfg.iterations)
    return np.asarray(q, dtype=np.float32).reshape(k, h, w)


def _crf_labels(args: tuple[np.ndarray, np.ndarray, str]) -> np.ndarray:
    probs, rgb, cfg_json = args  # the config travels as JSON: cheaper to pickle than the pydantic model
    cfg = _CFG_CACHE.get(cfg_json) or _CFG_CACHE.setdefault(cfg_json, CRFConfig.model_validate_json(cfg_json))
    return dense_crf(probs, rgb, cfg).argmax(0).astype(np.uint8)


_CFG_CACHE: dict[str, CRFConfig] = {}


class _Lazy:
    def __init__(self, result: Any):
        self.result = result

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.result.get())


_SHARED: dict[int, Any] = {}


def _close_shared() -> None:
    for pool in _SHARED.values():
        pool.terminate()
    _SHARED.clear()


def _new_pool(workers: int) -> Any:
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(method).Pool(workers)


class CRFPool:
    """Runs ``dense_crf`` over images in ``workers`` processes (``None``: every core; 1: in this process).

    Results come back in input order, so labels stay matched to their ground truth. The processes are forked on
    first use (fork where available: workers need no imports of their own). With ``shared`` (what evaluation
    uses) the pool of that size is kept for the life of the process and reused by every later evaluation — a
    study evaluating several CRF variants pays the start once; otherwise ``close`` (or leaving the ``with``
    block) ends it.
    """

    def __init__(self, cfg: CRFConfig, workers: int | None = None, shared: bool = False):
        require_pydensecrf()
        self.cfg = cfg
        self._cfg_json = cfg.model_dump_json()
        self.workers = max(1, workers or cfg.workers or available_cores())
        self.shared = shared
        self._pool: Any = None

    def __enter__(self) -> CRFPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None and not self.shared:
            self._pool.close()
            self._pool.join()
        self._pool = None

    def start(self) -> Any:
        """Start the worker processes now (a no-op with one worker); returns the multiprocessing pool or None."""
        if self.workers == 1:
            return None
        if self._pool is None:
            if not self.shared:
                self._pool = _new_pool(self.workers)
            else:
                if self.workers not in _SHARED:
                    if not _SHARED:
                        atexit.register(_close_shared)
                    _SHARED[self.workers] = _new_pool(self.workers)
                self._pool = _SHARED[self.workers]
        return self._pool

    def submit(self, items: list[tuple[np.ndarray, np.ndarray]]) -> Iterable[np.ndarray]:
        """Start the CRF on a batch of (probabilities, rgb) now; iterate the result for its labels, in order.
        With one worker the work is done here and now."""
        jobs = [(p, r, self._cfg_json) for p, r in items]
        if self.workers == 1:
            return [_crf_labels(j) for j in jobs]
        chunk = max(1, len(jobs) // (2 * self.workers))
        return _Lazy(self.start().map_async(_crf_labels, jobs, chunksize=chunk))

    def imap(self, items: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
        """Labels (H x W uint8) for each (probabilities K x H x W, rgb H x W x 3 uint8), in input order."""
        jobs = ((p, r, self._cfg_json) for p, r in items)
        if self.workers == 1:
            return map(_crf_labels, jobs)
        return self.start().imap(_crf_labels, jobs, chunksize=8)


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


def _main(argv: list[str] | None = None) -> None:
    """Benchmark the CRF pool on the embedded validation set: ``python -m ablate.train.crf [--recipe R]``."""
    import argparse

    from ablate.config.loading import load_recipe

    parser = argparse.ArgumentParser(description=_main.__doc__)
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
                _close_shared()  # count the pool's start, as a single `ablate eval` would
                m = evaluate(model, val, ev, k, data.ignore_index)
                best = min(best, m["eval_time_s"])
            print(f"  workers={n}: {best:.3f} s  (mIoU {100 * m['miou']:.2f})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    _main()
