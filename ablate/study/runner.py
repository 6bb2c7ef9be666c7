"""plan -> skip finished -> run the rest (one at a time, locally) -> collect into a table.

The job itself is passed in as a function (``ablate.train.job.run_job`` from the CLI), so this module and the
whole study package stay torch-free.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape

from ablate.config import ExecutorConfig, LoadedStudy
from ablate.study import slurm
from ablate.study.executors import Item, LocalPool
from ablate.study.grid import Run, expand
from ablate.study.store import Store
from ablate.study.worker import execute


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Printer(Protocol):
    def print(self, *args: Any, **kwargs: Any) -> None: ...


@dataclass
class Progress:
    """What a job reports while it trains; prints one line per report with elapsed time and ETA."""

    console: Printer
    total_runs: int
    started: float = field(default_factory=time.monotonic)
    index: int = 0
    label: str = ""
    run_started: float = 0.0
    finished_durations: list[float] = field(default_factory=list)

    def start_run(self, index: int, run: Run) -> None:
        self.index, self.label, self.run_started = index, run.label, time.monotonic()
        self.console.print(f"[bold][{index}/{self.total_runs}][/bold] {run.id}  {run.label}")

    def step(self, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        run_elapsed = now - self.run_started
        run_eta = run_elapsed / max(step, 1) * (steps - step)
        per_run = (
            sum(self.finished_durations) / len(self.finished_durations)
            if self.finished_durations
            else run_elapsed / max(step, 1) * steps
        )
        left = self.total_runs - self.index
        study_eta = run_eta + left * per_run
        self.console.print(
            f"    step {step:>5}/{steps}  loss {loss:7.4f}  run {_fmt_time(run_elapsed)} "
            f"(eta {_fmt_time(run_eta)})  study {_fmt_time(now - self.started)} (eta {_fmt_time(study_eta)})",
            highlight=False,
        )

    def note(self, message: str) -> None:
        self.console.print(f"    {message}", highlight=False)

    def end_run(self) -> float:
        duration = time.monotonic() - self.run_started
        self.finished_durations.append(duration)
        return duration


JobFn = Callable[[dict[str, Any], Path, Path, Any], dict[str, Any]]
"""``job(config, run_dir, train_dir, progress) -> record``: trains into ``train_dir`` unless a finished model is
there already, then evaluates with ``config["eval"]`` and returns the metrics record (the worker writes it to
run_dir/metrics.json). ``record["trained"]`` says whether it trained."""


@dataclass
class Summary:
    runs: list[Run]
    skipped: list[Run]
    done: list[Run]
    failed: list[tuple[Run, str]]
    busy: list[Run] = field(default_factory=list)


def select(
    runs: list[Run], store: Store, retry_failed: bool = False, slurm_wait: bool = False
) -> tuple[list[Run], list[Run]]:
    """(runs to do now, runs another process or a queued SLURM job is on). Pending runs, or with ``retry_failed``
    the failed ones; eval-only variants are ordered right after the run that trains their model. A run whose SLURM
    job is still queued is never started again; with ``slurm_wait`` (the SLURM executor) it is in the first list, to
    be waited for, whatever its record says (a requeued job may have recorded a failure when it was killed)."""
    states = {r.id: store.state(r) for r in runs}
    jobs = {r.id: slurm.submitted_job(store.run_dir(r)) for r in runs if states[r.id] != "done"}
    active = slurm.queued_jobs(sorted({j for j in jobs.values() if j}))
    queued = {rid for rid, job in jobs.items() if job in active}
    todo = [r for r in runs if r.id in queued and slurm_wait]
    todo += [r for r in runs if r.id not in queued and states[r.id] == ("failed" if retry_failed else "pending")]
    order = {tid: i for i, tid in enumerate(dict.fromkeys(r.train_id for r in todo))}
    todo.sort(key=lambda r: order[r.train_id])
    busy = [r for r in runs if states[r.id] == "running" or (r.id in queued and not slurm_wait)]
    return todo, busy


def run_study(
    loaded: LoadedStudy,
    results_dir: str | Path,
    job: JobFn | str,
    console: Printer,
    retry_failed: bool = False,
    max_parallel: int = 1,
    executor: ExecutorConfig | None = None,
    detach: bool = False,
) -> Summary:
    """Run what is left of a study. ``job`` is a callable (run in this process) or an import string
    ``module:function`` (needed for worker processes: ``max_parallel > 1``, DDP jobs, SLURM)."""
    runs = expand(loaded)
    store = Store(results_dir, loaded.study.name)
    todo, busy = select(runs, store, retry_failed, slurm_wait=executor is not None and executor.kind == "slurm")
    trainings = len({r.train_id for r in runs})
    what = "failed runs to retry" if retry_failed else "to run"
    console.print(
        f"study [bold]{loaded.study.name}[/bold]: {len(runs)} runs ({trainings} trainings), "
        f"{sum(store.state(r) == 'done' for r in runs)} finished, {len(todo)} {what}"
        + (f", {len(busy)} running in another process" if busy else "")
    )
    summary = Summary(runs=runs, skipped=[r for r in runs if r not in todo], done=[], failed=[], busy=list(busy))
    progress = Progress(console=console, total_runs=len(todo))

    def report(run: Run, record: dict[str, Any]) -> None:
        status = record.get("status")
        if status == "done":
            miou = record.get("metrics", {}).get("miou")
            shown = f"mIoU {100 * miou:.2f}" if miou is not None else "done"
            how = "trained" if record.get("trained", True) else f"reused training {run.train_id}"
            console.print(f"    [green]{shown}[/green] in {_fmt_time(record.get('duration_s', 0))} ({how})")
            summary.done.append(run)
        elif status == "failed":
            console.print(f"    [red]failed[/red]: {escape(str(record.get('error')))}")
            summary.failed.append((run, record.get("error", "")))
        else:
            console.print(f"    [yellow]skipped[/yellow]: another process is running {run.id}")
            summary.busy.append(run)

    items = [Item(i, run, store.prepare(run), store.training_dir(run)) for i, run in enumerate(todo, start=1)]
    if executor is not None and executor.kind == "slurm":
        if not isinstance(job, str):
            raise TypeError("SLURM jobs need the job as an import string")
        _run_slurm(executor, items, store, job, console, report, detach, loaded.path)
        return summary
    multi_process = any(int(r.config["train"].get("devices", 1)) > 1 for r in todo)
    if max_parallel > 1 or multi_process:  # a DDP job re-launches its command per rank: it needs its own process
        if not isinstance(job, str):
            raise TypeError("worker processes need the job as an import string")
        pool = LocalPool(max_parallel, job, console)
        pool.run(items, len(todo), lambda item: report(item.run, store.read_metrics(item.run) or {}))
        return summary
    for item in items:
        progress.start_run(item.index, item.run)
        record = execute(job, item.run_dir, item.train_dir, progress)
        progress.end_run()
        report(item.run, record)
    return summary


def _run_slurm(
    cfg: ExecutorConfig,
    items: list[Item],
    store: Store,
    job: str,
    console: Printer,
    report: Callable[[Run, dict[str, Any]], None],
    detach: bool,
    source: str,
) -> None:
    """Submit what is not already queued, then (unless ``detach``) wait for every job and report each run."""
    previous = {item.run.id: slurm.submitted_job(item.run_dir) for item in items}
    queued = slurm.queued_jobs([j for j in previous.values() if j])
    fresh = [item for item in items if previous[item.run.id] not in queued]
    if fresh:
        slurm.check_runs(cfg, fresh, source)
        ids = slurm.submit(cfg, fresh, store.root / "slurm", job)
        console.print(f"submitted {len(ids)} SLURM job(s) for {len(fresh)} run(s): {', '.join(ids)}")
    if len(fresh) < len(items):
        console.print(f"{len(items) - len(fresh)} run(s) already queued on SLURM: {', '.join(sorted(queued))}")
    if detach:
        console.print("not waiting (--detach): `ablate run` or `ablate status` again later collects the results")
        return
    job_of = {item.run.id: slurm.submitted_job(item.run_dir) for item in items}
    pending = {item.run.id: item for item in items}
    while pending:
        active = slurm.queued_jobs(sorted({j for j in job_of.values() if j}))
        for run_id, item in list(pending.items()):
            record = store.read_metrics(item.run)
            status = (record or {}).get("status")
            in_queue = job_of[run_id] in active
            # a failure recorded by a job that is still queued (requeued after preemption, time-out or
            # `scontrol requeue`: the kill can raise inside the job) is not final: its next attempt runs the run again
            finished = status == "done" or (status == "failed" and not in_queue)
            if finished or not in_queue:
                if not finished:
                    log = json.loads((item.run_dir / slurm.SLURM_FILE).read_text()).get("log", "")
                    record = {
                        "status": "failed",
                        "id": run_id,
                        "error": f"SLURM job {job_of[run_id]} ended without a result (log: {log})",
                    }
                    store.write_metrics(item.run, record)
                console.print(f"[bold][{item.index}/{len(items)}][/bold] {item.run.id}  {escape(item.run.label)}")
                report(item.run, record)
                del pending[run_id]
        if pending:
            time.sleep(cfg.poll_s)
