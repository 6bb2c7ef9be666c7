"""Executors: one file each in this folder (its ``executor:`` config and how it runs jobs), registered once by
``@EXECUTORS.register`` and named in the import below; ``base`` is what every executor is, ``slurm_queue`` which runs
a queued SLURM job holds (every executor leaves those alone). Torch-free."""

from ablate.study.executors import local, slurm  # noqa: F401 - each registers itself
from ablate.study.executors.base import EXECUTORS, Context, Item, select

ExecutorConfig = EXECUTORS.union()  # the discriminated union of every executor's config (``executor:`` in a study)

__all__ = ["EXECUTORS", "Context", "ExecutorConfig", "Item", "select"]
