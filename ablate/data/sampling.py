"""Training batches as a pure function of (seed, step): resuming at step N gives the very batches an uninterrupted
run would have seen, bit for bit, without any data-loader state in the checkpoint.

The sampler yields, for each step, the batch's sample indices paired with an augmentation key
``(seed, step, position)``; data sets draw their random augmentation from ``numpy.random.default_rng(key)``.
Under DDP each process takes its slice of the global batch (``batch_size`` per process).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.distributed as dist


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class StepBatchSampler:
    """Yields the batches of steps ``start .. steps-1``; data epochs are reshuffled with ``default_rng([seed, epoch])``.

    ``len()`` is the whole schedule (``steps``), not what is left; iterating yields only what is left (a resumed
    run's training loop starts at its checkpoint's step and ends when this sampler runs out).
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, steps: int, start: int = 0):
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.steps, self.start = steps, start

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, int, int]]]]:
        rank, world = _rank_world()
        per_step = self.batch_size * world
        per_epoch = self.num_samples // per_step
        if per_epoch == 0:
            raise ValueError(
                f"batch size {self.batch_size} x {world} process(es) exceeds the {self.num_samples} training samples"
            )
        perm, perm_epoch = None, -1
        for step in range(self.start, self.steps):
            epoch, k = divmod(step, per_epoch)
            if epoch != perm_epoch:
                perm, perm_epoch = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples), epoch
            chunk = perm[k * per_step : (k + 1) * per_step][rank * self.batch_size : (rank + 1) * self.batch_size]
            base = rank * self.batch_size
            yield [(int(i), (self.seed, step, base + j)) for j, i in enumerate(chunk)]
