"""Dense CRF post-processing (fully connected CRF, Kraehenbuehl & Koltun 2011, as in DeepLab v1/v2), over a pool.

The unary is -log(softmax probability); the pairwise terms are a Gaussian (smoothness) kernel and a bilateral
(appearance) kernel on the de-normalised uint8 RGB image. ``pydensecrf`` is single-threaded, so images are spread
over a process pool (``CRFPool``) to use every core during evaluation.

This module imports neither torch nor pydensecrf at import time: the pool's workers start fast, and ``ablate
--help`` stays light. ``python -m ablate.train.crf`` runs the pool-vs-one-worker benchmark (see ``benchmark``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ablate.config import CRFConfig


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


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


def _crf_labels(args: tuple[np.ndarray, np.ndarray, CRFConfig]) -> np.ndarray:
    probs, rgb, cfg = args
    return dense_crf(probs, rgb, cfg).argmax(0).astype(np.uint8)


class _Lazy:
    def __init__(self, result: Any):
        self.result = result

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.result.get())


class CRFPool:
    """Runs ``dense_crf`` over images in ``workers`` processes (``None``: every core; 1: in this process).

    ``imap`` keeps the order of its input, so labels come back matched to their ground truth. Use as a context
    manager; the pool is started on first use (fork where available: workers need no imports of their own).
    """

    def __init__(self, cfg: CRFConfig, workers: int | None = None):
        self.cfg = cfg
        self.workers = max(1, workers or cfg.workers or available_cores())
        self._pool: Any = None

    def __enter__(self) -> CRFPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def _start(self) -> Any:
        if self._pool is None:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = mp.get_context(method).Pool(self.workers)
        return self._pool

    def submit(self, items: list[tuple[np.ndarray, np.ndarray]]) -> Iterable[np.ndarray]:
        """Start the CRF on a batch of (probabilities, rgb) now; iterate the result for its labels, in order.
        With one worker the work is done here and now."""
        jobs = [(p, r, self.cfg) for p, r in items]
        if self.workers == 1:
            return [_crf_labels(j) for j in jobs]
        pool = self._start()
        return _Lazy(pool.map_async(_crf_labels, jobs, chunksize=max(1, len(jobs) // (2 * self.workers))))

    def imap(self, items: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
        """Labels (H x W uint8) for each (probabilities K x H x W, rgb H x W x 3 uint8), in input order."""
        jobs = ((p, r, self.cfg) for p, r in items)
        if self.workers == 1:
            return map(_crf_labels, jobs)
        return self._start().imap(_crf_labels, jobs, chunksize=2)


def benchmark(
    probs: list[np.ndarray], rgbs: list[np.ndarray], cfg: CRFConfig, workers: list[int], repeats: int = 3
) -> dict[int, float]:
    """Best-of-``repeats`` wall time (s) to CRF every image with each number of workers (pool start included)."""
    times: dict[int, float] = {}
    for n in workers:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            with CRFPool(cfg, n) as pool:
                for _labels in pool.imap(zip(probs, rgbs, strict=True)):
                    pass
            best = min(best, time.perf_counter() - started)
        times[n] = best
    return times


def _main(argv: list[str] | None = None) -> None:
    """Benchmark the CRF pool on the embedded validation set: ``python -m ablate.train.crf [--recipe R]``."""
    import argparse

    from ablate.config import load_recipe

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("--recipe", default="recipes/synthetic.yaml", help="recipe whose data: and eval.crf are used")
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="worker counts (default: 1 and cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="model.pt of a trained run (default: smoothed ground truth)")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    from ablate.data.datamodule import build_datasets

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
    print(f"CRF on {len(rgbs)} validation images of {h}x{w}, {k} classes, {cfg.iterations} iterations, ")
    print(f"cores available: {available_cores()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    times = benchmark(probs, rgbs, cfg, workers, args.repeats)
    base = times[min(times)]
    for n, t in times.items():
        print(f"  workers={n}: {t:.3f} s  ({len(rgbs) / t:.1f} images/s, speed-up {base / t:.2f}x)")


if __name__ == "__main__":
    _main()
