"""Run folders: results/<study>/runs/<run id>/{config.yaml, metrics.json}. Every write is atomic."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ablate.study.grid import Run

FAULT_ENV = "ABLATE_FAULT_KILL_BEFORE_RENAME"


def fault_point(name: str) -> None:
    """Fault injection for the crash tests: SIGKILL this process when ``$ABLATE_FAULT_KILL_BEFORE_RENAME`` names
    the file about to be renamed into place (its temporary copy is written, the rename has not happened)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(path.name)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(path: Path, blocking: bool = False) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path``; yields False (without waiting) when another process holds it and
    ``blocking`` is False. The kernel releases it when the holder dies, kill -9 included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    if not path.is_file():
        return False
    with file_lock(path) as got:
        return not got


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
        for stale in d.glob(".*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
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
