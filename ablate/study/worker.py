"""Run one job and record its outcome: the same code path in-process, in a local worker process and in a SLURM job.

Torch-free: the job is named by an import string (``ablate.train.job:run_job``) and imported only here, in the
process that runs it. Only rank 0 of a multi-process (DDP) job takes the lock and writes the record.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ablate.study.store import Store, file_lock

DEFAULT_JOB = "ablate.train.job:run_job"


def resolve(job_ref: str):
    module, _, name = job_ref.partition(":")
    return getattr(importlib.import_module(module), name)


def global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var):
            return int(os.environ[var])
    return 0


def execute(
    job_ref: str | Callable, run_dir: str | Path, train_dir: str | Path, progress: Any = None
) -> dict[str, Any]:
    """Run the job of ``run_dir`` (its config.yaml) and write ``metrics.json`` (status done or failed).

    Returns the record, or ``{"status": "busy"}`` when another process is running this run already.
    """
    run_dir, train_dir = Path(run_dir), Path(train_dir)
    spec = yaml.safe_load((run_dir / "config.yaml").read_text())
    job = resolve(job_ref) if isinstance(job_ref, str) else job_ref
    if global_rank() != 0:  # other DDP ranks train alongside rank 0 and leave the records to it
        job(spec["config"], run_dir, train_dir, progress)
        return {"status": "worker"}
    with file_lock(run_dir / ".lock") as got:
        if not got:
            return {"status": "busy"}
        started = time.monotonic()
        base = {"id": spec["id"], "seed": spec["seed"], "axes": spec["axes"], "train_id": train_dir.name}
        try:
            with file_lock(train_dir / ".lock", blocking=True):  # runs sharing a training wait for it
                result = job(spec["config"], run_dir, train_dir, progress)
        except Exception as exc:  # recorded; the study goes on
            message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            record = {**base, "status": "failed", "error": message, "traceback": traceback.format_exc()}
        else:
            record = {**base, "status": "done", **result}
        record["duration_s"] = round(time.monotonic() - started, 2)
        Store.write_record(run_dir, record)
        return record


class LinePrinter:
    """Progress for a worker process: plain lines on stdout, relayed by the parent."""

    def step(self, step: int, steps: int, loss: float) -> None:
        print(f"step {step}/{steps} loss {loss:.4f}", flush=True)

    def note(self, message: str) -> None:
        print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one ablate job (used by the executors).")
    parser.add_argument("run_dir")
    parser.add_argument("train_dir")
    parser.add_argument("--job", default=DEFAULT_JOB)
    args = parser.parse_args(argv)
    record = execute(args.job, args.run_dir, args.train_dir, LinePrinter())
    if record["status"] == "failed":
        print(f"failed: {record['error']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
