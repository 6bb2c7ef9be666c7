"""Dense CRF post-processing (fully connected CRF, Kraehenbuehl & Koltun 2011, as in DeepLab v1/v2), over a pool.

The unary is -log(softmax probability); the pairwise terms are a Gaussian (smoothness) kernel and a bilateral
(appearance) kernel on the de-normalised uint8 RGB image. ``pydensecrf`` is single-threaded, so images are spread
over a process pool (``CRFPool``) to use every core during evaluation.

This module imports neither torch nor pydensecrf at import time: the pool's workers start fast, and ``ablate
--help`` stays light. ``python -m ablate.bench.crf`` times the pool against one worker.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
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


def close_shared() -> None:
    """End the pools kept by ``shared`` CRF pools (at exit; a benchmark also ends them to time a pool's start)."""
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
                        atexit.register(close_shared)
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
