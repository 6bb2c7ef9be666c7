"""Run folders: results/<study>/runs/<run id>/{config.yaml, metrics.json}. Every write is atomic."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ablate.study.grid import Run


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        record = {"id": run.id, "seed": run.seed, "axes": run.axes, "config": run.config}
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
        atomic_write(self.run_dir(run) / "metrics.json", json.dumps(record, indent=2, sort_keys=True))

    def is_done(self, run: Run) -> bool:
        record = self.read_metrics(run)
        return record is not None and record.get("status") == "done"
