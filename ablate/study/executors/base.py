"""What every executor is: a typed ``executor:`` section (its ``kind`` literal) that runs a study's jobs.

An executor file (one per executor, next to this one) holds a ``Strict`` config subclass registered by
``@EXECUTORS.register`` and named in ``ablate/study/executors/__init__.py``; it implements the ``Executor``
protocol. Torch-free: a job is run by its import path (``ablate.study.worker``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ablate.core.registry import Registry

if TYPE_CHECKING:
    from ablate.study.grid import Run
    from ablate.study.store import Store

EXECUTORS: Registry = Registry("executor", key="kind")


@dataclass
class Item:
    """One run to do: its position in this command's list, its folder and its training's folder."""

    index: int
    run: Run
    run_dir: Path
    train_dir: Path


class Printer(Protocol):
    def print(self, *args: Any, **kwargs: Any) -> None: ...


Report = Callable[[Item, dict[str, Any]], None]  # called once per item with its record (done, failed, busy)


class Executor(Protocol):
    """``select`` picks the runs this command does (or waits for) and those another process holds; ``execute``
    runs the items and reports each, and returns whether it waited for them (False: submitted and left, e.g. SLURM's
    ``--detach``). ``execute`` raises ``ablate.core.signals.Interrupted`` when the command is asked to stop. An executor
    with worker processes may also offer ``keep_workers()``, a context manager inside which they outlive each
    ``execute`` (``StudySession.workers``)."""

    kind: str

    def select(self, runs: list[Run], store: Store, retry_failed: bool = False) -> tuple[list[Run], list[Run]]: ...

    def execute(self, ctx: Context, items: list[Item], report: Report, progress: Any = None) -> bool: ...


@dataclass
class Context:
    """What an executor gets from the study session: where results go, the job's import path, a console, the
    study file (for messages) and the total count of items (for ``[i/n]``)."""

    store: Store
    job: str
    console: Printer
    study_path: str
    total: int


def select(runs: list[Run], store: Store, retry_failed: bool = False,
           held: Collection[str] = ()) -> tuple[list[Run], list[Run]]:  # fmt: skip
    """(runs to do now, runs another process holds or ``held`` names): the pending runs, or with ``retry_failed``
    the failed ones; eval-only variants right after the run that trains their model. ``held``: run ids something
    else will run (a queued SLURM job, ``slurm_queue.held_by_slurm``), whatever their state says."""
    states = {r.id: store.state(r) for r in runs}
    todo = [r for r in runs if r.id not in held and states[r.id] == ("failed" if retry_failed else "pending")]
    order = {tid: i for i, tid in enumerate(dict.fromkeys(r.train_id for r in todo))}
    todo.sort(key=lambda r: order[r.train_id])
    busy = [r for r in runs if states[r.id] == "running" or r.id in held]
    return todo, busy
