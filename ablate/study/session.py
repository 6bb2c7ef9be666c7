"""A study session: the study loaded and checked once, its grid expanded once, one Store; it plans, runs what is
left on an executor, and makes the table, the report and the W&B summary. The CLI only parses and prints.

Torch-free: the job is named by its import path (``ablate.train.job:run_job``) and imported by the process that
runs it."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from ablate.core.errors import ConfigError
from ablate.core.files import atomic_write
from ablate.core.jobs import DEFAULT_JOB
from ablate.core.text import plural
from ablate.study import adaptive
from ablate.study.executors import EXECUTORS, Context, ExecutorConfig, Item
from ablate.study.executors.base import Printer
from ablate.study.grid import Run, combinations, expand
from ablate.study.load import LoadedStudy, load_study
from ablate.study.progress import Progress, result_line
from ablate.study.stale import find_stale, reset
from ablate.study.store import Store

STATES = ("done", "running", "failed", "pending")


@dataclass
class Summary:
    runs: list[Run]
    skipped: list[Run] = field(default_factory=list)  # finished, failed (unless retried) or held elsewhere
    done: list[Run] = field(default_factory=list)
    failed: list[tuple[Run, str]] = field(default_factory=list)
    busy: list[Run] = field(default_factory=list)
    waited: bool = True  # False: the executor submitted the runs and left (SLURM --detach)


class StudySession:
    def __init__(self, path: str | Path, overrides: dict[str, Any] | None = None, results: str | Path = "results",
                 recipe: str | Path | None = None, seeds: list[int] | None = None):  # fmt: skip
        self.loaded: LoadedStudy = load_study(path, overrides, recipe, seeds)
        self.results = Path(results)
        self.store = Store(self.results, self.loaded.study.name)
        # adaptive seeds: the plan an earlier run added seeds by, else the study's own; None for a list of seeds
        self.plan: adaptive.SeedPlan | None = None
        self.use_plan(adaptive.read_log(self.store.root, self.study) or adaptive.study_plan(self.study))

    def use_plan(self, plan: adaptive.SeedPlan | None) -> None:
        """Adaptive seeds by ``plan`` (from here on this session's runs include the seeds earlier rounds added)."""
        self.plan = plan

        def exists(run: Run) -> bool:
            return (self.store.run_dir(run) / "config.yaml").is_file()

        added = adaptive.added_seeds(self.loaded, plan, exists, combinations(self.loaded)) if plan else {}
        self.runs: list[Run] = expand(self.loaded, added)

    def add_runs(self, runs: list[Run]) -> None:
        self.runs += [r for r in runs if r.id not in {x.id for x in self.runs}]

    @property
    def study(self):
        return self.loaded.study

    def states(self) -> dict[str, str]:
        return {r.id: self.store.state(r) for r in self.runs}

    def counts(self, states: dict[str, str] | None = None) -> dict[str, int]:
        states = states or self.states()
        return {s: sum(v == s for v in states.values()) for s in STATES}

    def executor(self, kind: str | None = None, **changes: Any) -> ExecutorConfig:
        """The study's executor, or another kind (its own defaults), with ``changes`` (None values: unchanged)."""
        cfg = self.study.executor
        if kind is not None and kind != cfg.kind:
            if kind not in EXECUTORS:
                raise ConfigError(f"--executor {kind}: allowed: {', '.join(EXECUTORS)}")
            cfg = EXECUTORS[kind]()
        updates = {k: v for k, v in changes.items() if v is not None and k in type(cfg).model_fields}
        return cfg.model_copy(update=updates)

    def todo(self, executor: ExecutorConfig, retry_failed: bool = False,
             only: set[str] | None = None) -> tuple[list[Run], list[Run]]:  # fmt: skip
        """(runs this command does or waits for, runs another process holds); ``only``: of these run ids."""
        todo, busy = executor.select(self.runs, self.store, retry_failed)
        return (todo, busy) if only is None else ([r for r in todo if r.id in only], busy)

    def stale(self) -> dict[str, list[str]]:
        """run id -> plugins changed since, for the finished runs made by other plugin code than now."""
        return find_stale(self.runs, self.store)

    def reset_stale(self, ids: set[str]) -> None:
        """Make those stale runs pending again (and their trainings, where made by other plugin code)."""
        reset([r for r in self.runs if r.id in ids], self.store)

    def execute(self, executor: ExecutorConfig, console: Printer, todo: list[Run], busy: list[Run],
            job: str = DEFAULT_JOB, retry_failed: bool = False, rerun_stale: bool = False) -> Summary:  # fmt: skip
        """Run ``todo`` on ``executor``. Raises ``Interrupted`` (runs stay resumable) when asked to stop."""
        trainings = len({r.train_id for r in self.runs})
        what = "failed runs to retry" if retry_failed else "stale runs to rerun" if rerun_stale else "to run"
        finished = sum(self.store.state(r) == "done" for r in self.runs)
        console.print(
            f"study [bold]{escape(self.study.name)}[/bold]: {plural(len(self.runs), 'run')} "
            f"({plural(trainings, 'training')}), {finished} finished, {len(todo)} {what}"
            + (f", {len(busy)} running in another process" if busy else "")
        )
        summary = Summary(runs=self.runs, skipped=[r for r in self.runs if r not in todo], busy=list(busy))

        def report(item: Item, record: dict[str, Any]) -> None:
            console.print(result_line(item.index, len(items), item.run, record), highlight=False)
            status = record.get("status")
            if status == "done":
                summary.done.append(item.run)
            elif status == "failed":
                summary.failed.append((item.run, record.get("error", "")))
            else:
                summary.busy.append(item.run)

        items = [Item(i, r, self.store.prepare(r), self.store.training_dir(r)) for i, r in enumerate(todo, start=1)]
        ctx = Context(store=self.store, job=job, console=console, study_path=self.loaded.path, total=len(items))
        summary.waited = executor.execute(ctx, items, report, Progress(console=console, total_runs=len(items)))
        return summary

    def until_decided(self, executor: ExecutorConfig, console: Printer, summary: Summary, budget_s: float | None,
                      started: float, wall_per_run: float | None = None, job: str = DEFAULT_JOB) -> str:  # fmt: skip
        """Adaptive seeds (``self.plan``): add seeds to the undecided rows round after round on ``executor``, adding
        each round's outcome to ``summary``; returns why it stopped (decided, max, budget)."""
        assert self.plan is not None

        def run_round(new: list[Run]) -> None:
            todo = [r for r in new if self.store.state(r) == "pending"]
            done = self.execute(executor, console, todo, [], job=job)
            summary.done += done.done
            summary.failed += done.failed
            summary.busy += done.busy

        with self.workers(executor):
            return adaptive.until_decided(self, console, self.plan, budget_s, started, run_round, wall_per_run)

    @staticmethod
    def workers(executor: ExecutorConfig) -> contextlib.AbstractContextManager:
        """Inside, the executor's worker processes (where it has any: local) outlive each ``execute`` and take the next
        one's jobs: adaptive seeds' rounds pay the workers' imports and generated data once."""
        keep = getattr(executor, "keep_workers", None)
        return keep() if keep is not None else contextlib.nullcontext()

    def resume_command(self, command: str = "run") -> str:
        from ablate.report.page import reproduce_command

        return reproduce_command(self.loaded, self.results, command, self.run_flags() if command == "run" else ())

    def run_flags(self) -> tuple[str, ...]:
        """The options of ``ablate run`` that added this study's seeds where the study itself does not ask for it."""
        if self.plan is None or self.study.adaptive is not None:
            return ()
        return ("--until-decided", "--max-seeds", str(self.plan.max))

    # ------------------------------------------------------------------------------------------------ results
    def collect(self):
        from ablate.study.results import collect

        return collect(self.runs, self.store)

    def table(self):
        from ablate.report.table import build

        return build(self.study, self.collect(), self.runs_info(), self.plan)

    def runs_info(self) -> dict[str, str]:
        """run id -> label, for the lists of failed and missing runs."""
        return {r.id: r.label for r in self.runs}

    def save_table(self, t, formats: tuple[str, ...]) -> dict[str, Path]:
        from ablate.report.render import save

        return save(t, self.store.root, formats)

    def write_report(self, t):
        from ablate.report.page import write_report

        return write_report(self.loaded, t, self.store.root, self.results, self.run_flags())

    def outputs(self) -> Outputs:
        return Outputs(self.store.root, self.loaded)


class Outputs:
    """What the report and the W&B summary run were last made from (results/<study>/.outputs.json): a digest of
    the table (table.csv, table.md) and of the study and recipe, so a second ``ablate run`` of a finished study
    neither redraws the plots nor logs a duplicate summary run."""

    def __init__(self, root: Path, loaded: LoadedStudy):
        self.path = root / ".outputs.json"
        h = hashlib.sha256()
        for name in ("table.csv", "table.md"):
            h.update((root / name).read_bytes() if (root / name).is_file() else b"-")
        setup = [loaded.study.model_dump(mode="json"), loaded.recipe]
        h.update(json.dumps(setup, sort_keys=True, default=str).encode())
        self.digest = h.hexdigest()
        try:
            self.marks: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.marks = {}

    def same(self, what: str, key: str, output: Path | None = None) -> bool:
        return self.marks.get(what) == key and (output is None or output.is_file())

    def set(self, what: str, key: str) -> None:
        self.marks[what] = key
        atomic_write(self.path, json.dumps(self.marks, indent=1))
