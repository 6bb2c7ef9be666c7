"""plan -> skip finished -> run the rest (one at a time, locally) -> collect into a table.

The job itself is passed in as a function (``ablate.train.job.run_job`` from the CLI), so this module and the
whole study package stay torch-free.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ablate.config import LoadedStudy
from ablate.study.grid import Run, expand
from ablate.study.store import Store


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

    def end_run(self) -> float:
        duration = time.monotonic() - self.run_started
        self.finished_durations.append(duration)
        return duration


JobFn = Callable[[dict[str, Any], Path, Path, Progress], dict[str, Any]]
"""``job(config, run_dir, train_dir, progress) -> record``: trains into ``train_dir`` unless a finished model is
there already, then evaluates with ``config["eval"]`` and returns the metrics record (written to run_dir by the
runner). ``record["trained"]`` says whether it trained."""


@dataclass
class Summary:
    runs: list[Run]
    skipped: list[Run]
    done: list[Run]
    failed: list[tuple[Run, str]]


def run_study(loaded: LoadedStudy, results_dir: str | Path, job: JobFn, console: Printer) -> Summary:
    runs = expand(loaded)
    store = Store(results_dir, loaded.study.name)
    todo = [r for r in runs if not store.is_done(r)]
    order = {tid: i for i, tid in enumerate(dict.fromkeys(r.train_id for r in todo))}
    todo.sort(key=lambda r: order[r.train_id])  # eval-only variants right after the run that trains their model
    skipped = [r for r in runs if r not in todo]
    trainings = len({r.train_id for r in runs})
    console.print(
        f"study [bold]{loaded.study.name}[/bold]: {len(runs)} runs ({trainings} trainings), "
        f"{len(skipped)} finished, {len(todo)} to run"
    )
    progress = Progress(console=console, total_runs=len(todo))
    done, failed = [], []
    for index, run in enumerate(todo, start=1):
        run_dir = store.prepare(run)
        progress.start_run(index, run)
        try:
            result = job(run.config, run_dir, store.training_dir(run), progress)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a failing run is recorded and the study goes on
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            store.write_metrics(
                run, {"status": "failed", "error": message, "traceback": traceback.format_exc(), "id": run.id}
            )
            console.print(f"    [red]failed[/red]: {message}")
            failed.append((run, message))
            progress.end_run()
            continue
        duration = progress.end_run()
        store.write_metrics(
            run,
            {
                "status": "done",
                "id": run.id,
                "seed": run.seed,
                "axes": run.axes,
                "train_id": run.train_id,
                "duration_s": round(duration, 2),
                **result,
            },
        )
        miou = result.get("metrics", {}).get("miou")
        shown = f"mIoU {100 * miou:.2f}" if miou is not None else "done"
        how = "trained" if result.get("trained", True) else f"reused training {run.train_id}"
        console.print(f"    [green]{shown}[/green] in {_fmt_time(duration)} ({how})")
        done.append(run)
    return Summary(runs=runs, skipped=skipped, done=done, failed=failed)
