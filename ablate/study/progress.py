"""Progress lines while a study trains: one per report, with the run's and the study's elapsed time and ETA. The
same line whether the job runs in this process (``Progress``) or in a worker process whose reports the local pool
relays (``step_line``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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


def run_eta(step: int, steps: int, run_elapsed: float) -> float:
    return run_elapsed / max(step, 1) * (steps - step)


def step_line(step: int, steps: int, loss: float, run_elapsed: float, study_elapsed: float, study_eta: float) -> str:
    eta = fmt_time(run_eta(step, steps, run_elapsed))
    return (
        f"step {step:>5}/{steps}  loss {loss:7.4f}  run {fmt_time(run_elapsed)} (eta {eta})  "
        f"study {fmt_time(study_elapsed)} (eta {fmt_time(study_eta)})"
    )


@dataclass
class Progress:
    """What a job reports while it trains in this process."""

    console: Printer
    total_runs: int
    started: float = field(default_factory=time.monotonic)
    index: int = 0
    run_started: float = 0.0
    finished_durations: list[float] = field(default_factory=list)

    def start_run(self, index: int, run: Run) -> None:
        self.index, self.run_started = index, time.monotonic()
        self.console.print(f"[bold][{index}/{self.total_runs}][/bold] {run.id}  {escape(run.label)}")

    def step(self, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        run_elapsed = now - self.run_started
        durations = self.finished_durations
        per_run = sum(durations) / len(durations) if durations else run_elapsed / max(step, 1) * steps
        study_eta = run_eta(step, steps, run_elapsed) + (self.total_runs - self.index) * per_run
        line = step_line(step, steps, loss, run_elapsed, now - self.started, study_eta)
        self.console.print(f"    {line}", highlight=False)

    def validated(self, step: int, miou: float) -> None:
        self.note(f"step {step:>5}: validation mIoU {100 * miou:.2f}")

    def note(self, message: str) -> None:
        self.console.print(f"    {message}", highlight=False, markup=False)

    def end_run(self) -> float:
        duration = time.monotonic() - self.run_started
        self.finished_durations.append(duration)
        return duration
