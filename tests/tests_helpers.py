from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment of an ``ablate run`` (give it ``--no-report`` too) whose test asserts neither W&B nor the
    report: W&B off. Offline it costs about 4 s an invocation; test_end_to_end and test_results test both."""
    return {**os.environ, "WANDB_MODE": "disabled", **extra}


class Quiet:
    def print(self, *args, **kwargs):
        pass


def synthetic(split: str, n: int, size: int, seed: int = 0):
    """The embedded data set's ``split`` as the torch dataset a run reads (no augmentation)."""
    from ablate.data.loader import SegmentationSet
    from ablate.data.synthetic import SyntheticData

    spec = SyntheticData(num_train=n, num_val=n, image_size=size, seed=seed, context_distance=(size / 8, size / 2.5))
    return SegmentationSet(spec, split, augment=False)


def stacked(ds):
    """(images N x 3 x H x W, labels N x H x W) of a whole data set."""
    import torch

    pairs = [ds[i] for i in range(len(ds))]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def run_study(loaded_or_path, results, job, console=None, retry_failed: bool = False, overrides=None, parallel=1):
    """Run what is left of a study with ``job`` (a callable or an import path): in this process, or with
    ``parallel`` > 1 on that many worker processes (``job`` then an import path)."""
    from ablate.study.executors.local import LocalExecutor
    from ablate.study.session import StudySession

    session = StudySession(getattr(loaded_or_path, "path", loaded_or_path), overrides or {}, results)
    executor = LocalExecutor(max_parallel=parallel)
    todo, busy = session.todo(executor, retry_failed)
    return session.execute(executor, console or Quiet(), todo, busy, job=job, retry_failed=retry_failed)
