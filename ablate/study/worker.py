"""Run one job and record its outcome: the same code path in-process, in a local worker process and in a SLURM job.

Torch-free: the job is named by an import string (``ablate.train.job:run_job``) and imported only here, in the
process that runs it. Only rank 0 of a multi-process (DDP) job takes the lock, writes the record and logs to W&B.

``python -m ablate.study.worker RUN_DIR TRAIN_DIR`` runs one job; ``--serve`` reads one JSON job per line from stdin
(``{"run_dir": ..., "train_dir": ...}``) until its end, so a local worker imports torch once for many jobs. Each job
ends with a line ``@@done {status}`` (or ``@@interrupted {where}`` when a signal stopped it)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ablate.core import plugins, signals, warn
from ablate.core.jobs import DEFAULT_JOB
from ablate.core.locks import file_lock
from ablate.study import stale, wandb_sink
from ablate.study.store import Store


def resolve(job_ref: str):
    module, _, name = job_ref.partition(":")
    return getattr(importlib.import_module(module), name)


def global_rank() -> int:
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var):
            return int(os.environ[var])
    return 0


def _label(spec: dict[str, Any]) -> str:
    from ablate.core.text import format_value

    axes = " ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in (spec.get("axes") or {}).items())
    return f"{axes} seed={spec.get('seed')}".strip()


def execute_job(
    job_ref: str | Callable, run_dir: str | Path, train_dir: str | Path, progress: Any = None
) -> dict[str, Any]:
    """Run the job of ``run_dir`` (its config.yaml) and write ``metrics.json`` (status done or failed).

    Returns the record, or ``{"status": "busy"}`` when another process is running this run already. A signal's
    ``Interrupted`` passes through (nothing is recorded: the run stays pending and resumes from its checkpoint),
    with the run and its step in ``where``."""
    run_dir, train_dir = Path(run_dir), Path(train_dir)
    spec = yaml.safe_load((run_dir / "config.yaml").read_text())
    job = resolve(job_ref) if isinstance(job_ref, str) else job_ref
    if spec.get("plugins"):  # the user's modules, imported before the job validates its recipe
        job = _with_plugins(job, spec["plugins"], str(run_dir / "config.yaml"))
    if global_rank() != 0:  # other DDP ranks train alongside rank 0 and leave the records to it
        job(spec["config"], run_dir, train_dir, progress)
        return {"status": "worker"}
    with file_lock(run_dir / ".lock") as got:
        if not got:
            return {"status": "busy"}
        started = time.monotonic()
        base = {"id": spec["id"], "seed": spec["seed"], "axes": spec["axes"], "train_id": train_dir.name}
        wb = wandb_sink.start_run(spec, run_dir)
        try:
            with file_lock(train_dir / ".lock", blocking=True):  # runs sharing a training wait for it
                result = job(spec["config"], run_dir, train_dir, wandb_sink.LoggingProgress(progress, wb))
        except signals.Interrupted as stop:
            wandb_sink.end_run(wb, None, train_dir, stopped=True)
            # no step: stopped while loading, building or evaluating (what was saved is kept, the rest reruns)
            where = f"at {stop.where}" if stop.where else "outside its training steps"
            raise signals.Interrupted(stop.signum, f"{spec['id']} ({_label(spec)}) {where}") from None
        except Exception as exc:  # recorded; the study goes on
            message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            record = {**base, "status": "failed", "error": message, "traceback": traceback.format_exc()}
        else:
            record = {**base, "status": "done", **result}
            stale.stamp(record, train_dir, spec["config"])  # the plugin code it was made with
        record["duration_s"] = round(time.monotonic() - started, 2)
        Store.write_record(run_dir, record)
        wandb_sink.end_run(wb, record, train_dir)
        return record


def _with_plugins(job: Callable, items: list[dict[str, Any]], source: str) -> Callable:
    """``job`` that first imports the plugins (a failure is the run's recorded error, one line)."""

    def job_with_plugins(*args: Any) -> Any:
        plugins.load_specs(items, source)
        return job(*args)

    return job_with_plugins


class LinePrinter:
    """Progress for a worker process: plain lines on stdout, relayed by the parent. When the parent is gone (its
    pipe broken), lines go nowhere: the kernel's SIGTERM (``PR_SET_PDEATHSIG``) is on its way and stops the job with
    a checkpoint; a dead reader must never fail the run."""

    def step(self, step: int, steps: int, loss: float) -> None:
        say(f"@@step {json.dumps([step, steps, loss])}")  # the parent prints it with times

    def validated(self, step: int, miou: float) -> None:
        self.note(f"step {step:>5}: validation mIoU {100 * miou:.2f}")

    def note(self, message: str) -> None:
        say(message)


def say(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # later writes (and Python's final flush) succeed, unread
        os.close(devnull)


def _one(job: str, run_dir: str, train_dir: str) -> int:
    # a DDP job's other ranks share rank 0's stdout: only rank 0 may tell the parent that the job ended
    lead = global_rank() == 0
    try:
        record = execute_job(job, run_dir, train_dir, LinePrinter())
    except signals.Interrupted as stop:
        if lead:
            say(f"@@interrupted {json.dumps({'where': stop.where})}")
        return stop.exit_code
    if not lead:
        return 0
    if record["status"] == "failed":
        say(f"failed: {record['error']}")
    say(f"@@done {json.dumps({'status': record['status']})}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run ablate jobs (used by the executors).")
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("train_dir", nargs="?")
    parser.add_argument("--job", default=DEFAULT_JOB)
    parser.add_argument("--serve", action="store_true", help="read one JSON job per line from stdin")
    args = parser.parse_args(argv)
    signals.install()
    warn.install(sys.stdout)  # relayed by the parent, line by line
    if not args.serve:
        return _one(args.job, args.run_dir, args.train_dir)
    try:
        for line in sys.stdin:
            if line.strip():
                job = json.loads(line)
                code = _one(args.job, job["run_dir"], job["train_dir"])
                if code:
                    return code
    except signals.Interrupted as stop:  # asked to stop while waiting for a job
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
