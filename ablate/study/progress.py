"""Progress lines while a study trains: one per report, with the run's and the study's elapsed time and ETA. The
same line whether the job runs in this process (``Progress``) or in a worker process whose reports the local pool
relays (``step_line``). A run's result line (``result_line``) names its run: with jobs in parallel it is printed
among the other runs' lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape

if TYPE_CHECKING:
    from ablate.study.executors.base import Printer
    from ablate.study.grid import Run


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class RunClock:
    """A run's pace, measured from its first reported step on: what came before it (imports, data, building the
    model, the first step's warm-up) would make the first ETAs hours long."""

    first: tuple[int, float] | None = None  # (step, time) of the first report

    def eta(self, step: int, steps: int, now: float) -> float | None:
        """Seconds left, or None while there is no pace yet (the first report)."""
        if self.first is None or step <= self.first[0]:
            self.first = self.first or (step, now)
            return None
        first_step, first_time = self.first
        return (now - first_time) / (step - first_step) * (steps - step)


def study_eta(run_left: float | None, run_elapsed: float, durations: list[float], runs_after: int,
              parallel: int = 1) -> float | None:  # fmt: skip
    """Seconds until the study ends: this run's time left, then ``runs_after`` runs at the mean duration of the
    finished ones (before any finished: this run's own, once it has a pace), ``parallel`` at a time."""
    per_run = sum(durations) / len(durations) if durations else None if run_left is None else run_elapsed + run_left
    if per_run is None:
        return None
    this_run = run_left if run_left is not None else max(0.0, per_run - run_elapsed)
    return this_run + max(0, runs_after) * per_run / parallel


def step_line(step: int, steps: int, loss: float, run_elapsed: float, run_eta: float | None, study_elapsed: float,
              study_eta: float | None) -> str:  # fmt: skip
    def eta(seconds: float | None) -> str:
        return "?" if seconds is None else fmt_time(seconds)

    return (
        f"step {step:>5}/{steps}  loss {loss:7.4f}  run {fmt_time(run_elapsed)} (eta {eta(run_eta)})  "
        f"study {fmt_time(study_elapsed)} (eta {eta(study_eta)})"
    )


def result_line(index: int, total: int, run: Run, record: dict[str, Any]) -> str:
    """The line (rich markup) that says how run ``index`` of ``total`` ended: ``[5/12] rates=(1) output_stride=16
    seed=1: mIoU 78.10 in 1m06s (trained)``, or failed with its error, or skipped (another process runs it)."""
    where = f"    [{index}/{total}] {escape(run.label)}:"
    status = record.get("status")
    if status == "done":
        miou = record.get("metrics", {}).get("miou")
        shown = f"mIoU {100 * miou:.2f}" if miou is not None else "done"
        how = "trained" if record.get("trained", True) else f"reused training {run.train_id}"
        return f"{where} [green]{shown}[/green] in {fmt_time(record.get('duration_s', 0))} ({how})"
    if status == "failed":
        return f"{where} [red]failed[/red]: {escape(str(record.get('error')))}"
    return f"{where} [yellow]skipped[/yellow]: another process is running {run.id}"


@dataclass
class Progress:
    """What a job reports while it trains in this process."""

    console: Printer
    total_runs: int
    started: float = field(default_factory=time.monotonic)
    index: int = 0
    run_started: float = 0.0
    clock: RunClock = field(default_factory=RunClock)
    finished_durations: list[float] = field(default_factory=list)

    def start_run(self, index: int, run: Run) -> None:
        self.index, self.run_started, self.clock = index, time.monotonic(), RunClock()
        self.console.print(f"[bold][{index}/{self.total_runs}][/bold] {run.id}  {escape(run.label)}")

    def step(self, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        run_elapsed = now - self.run_started
        left = self.clock.eta(step, steps, now)
        eta = study_eta(left, run_elapsed, self.finished_durations, self.total_runs - self.index)
        line = step_line(step, steps, loss, run_elapsed, left, now - self.started, eta)
        self.console.print(f"    {line}", highlight=False)

    def validated(self, step: int, miou: float) -> None:
        self.note(f"step {step:>5}: validation mIoU {100 * miou:.2f}")

    def note(self, message: str) -> None:
        self.console.print(f"    {message}", highlight=False, markup=False)

    def end_run(self) -> float:
        duration = time.monotonic() - self.run_started
        self.finished_durations.append(duration)
        return duration
