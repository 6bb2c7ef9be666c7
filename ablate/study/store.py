"""Run folders: results/<study>/runs/<run id>/{config.yaml, metrics.json}. Every write is atomic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ablate.core import plugins
from ablate.core.files import atomic_write, remove_stale_temporaries
from ablate.core.locks import is_locked

if TYPE_CHECKING:
    from ablate.study.grid import Run  # for annotations only: no import cycle through the grid


class Store:
    def __init__(self, results_dir: str | Path, study_name: str):
        self.root = Path(results_dir) / study_name
        self.runs_dir = self.root / "runs"
        self.trainings_dir = self.root / "trainings"

    def training_dir(self, run: Run) -> Path:
        """Where the run's model is trained once and kept (shared by runs that differ only under ``eval.``)."""
        d = self.trainings_dir / run.train_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    def run_dir(self, run: Run | str) -> Path:
        return self.runs_dir / (run if isinstance(run, str) else run.id)

    def prepare(self, run: Run) -> Path:
        d = self.run_dir(run)
        d.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(d)  # left by a process killed mid-write
        record = {"id": run.id, "seed": run.seed, "axes": run.axes, "config": run.config}
        if plugins.loaded():  # the job's process imports them before it validates the config
            record["plugins"] = plugins.specs()
        atomic_write(d / "config.yaml", yaml.safe_dump(record, sort_keys=False))
        return d

    def read_metrics(self, run: Run | str) -> dict[str, Any] | None:
        path = self.run_dir(run) / "metrics.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def write_metrics(self, run: Run | str, record: dict[str, Any]) -> None:
        self.write_record(self.run_dir(run), record)

    @staticmethod
    def write_record(run_dir: Path, record: dict[str, Any]) -> None:
        atomic_write(run_dir / "metrics.json", json.dumps(record, indent=2, sort_keys=True))

    def lock_path(self, run: Run | str) -> Path:
        return self.run_dir(run) / ".lock"

    def state(self, run: Run | str) -> str:
        """done, failed, running (another process holds its lock) or pending."""
        record = self.read_metrics(run)
        if record is not None and record.get("status") in ("done", "failed"):
            return record["status"]
        if is_locked(self.lock_path(run)):
            return "running"
        return "pending"
