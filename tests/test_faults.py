"""Crash safety: kill -9 at several moments; the re-run keeps what finished, resumes what was interrupted from its
checkpoint, leaves no corrupt file, and ends with the same table as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_RECIPE
from tests_helpers import quiet_env

from ablate.core.files import FAULT_ENV

STUDY = """
name: crash
recipe: recipe.yaml
set: {train.steps: 12, train.checkpoint_every: 3, model.head.dropout: 0.3}
axes:
  model.output_stride: [8, 16]
"""


def _cmd(study: Path, results: Path, jobs: int = 1) -> list[str]:
    # -j 1: the runs one after another in this process (the default picks the jobs at once from the free cores)
    return [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results), "-j", str(jobs),
            "--no-report"]  # fmt: skip


def _run(study: Path, results: Path, env: dict | None = None, jobs: int = 1) -> subprocess.CompletedProcess:
    cmd = _cmd(study, results, jobs)
    return subprocess.run(cmd, capture_output=True, text=True, env=quiet_env(**(env or {})))


def _kill_when(study: Path, results: Path, first: str, then: str, jobs: int = 1) -> str:
    """Start a study, SIGKILL it as soon as its output shows ``then`` after ``first``; returns the output seen."""
    proc = subprocess.Popen(_cmd(study, results, jobs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=quiet_env())  # fmt: skip
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        text = "".join(seen)
        if first in text and then in text.split(first, 1)[1]:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


def _held(results: Path) -> bool:
    """Whether a process still holds a lock of the study (a worker still running)."""
    import fcntl

    for path in results.rglob(".lock"):
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    return False


def _check_files(results: Path) -> None:
    for path in results.rglob("*.json"):
        json.loads(path.read_text())  # every record parses


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study run once without interruption: (study path, its table.csv)."""
    root = tmp_path_factory.mktemp("faults")
    (root / "recipe.yaml").write_text(TINY_RECIPE)
    study = root / "study.yaml"
    study.write_text(STUDY)
    out = _run(study, root / "reference")
    assert out.returncode == 0, out.stdout + out.stderr
    return study, _numbers(root / "reference" / "crash" / "table.csv")


def _numbers(path):
    """table.csv without the measured latency (wall time differs between any two runs)."""
    import pandas as pd

    return pd.read_csv(path).drop(columns=["latency_ms"], errors="ignore").to_csv(index=False)


@pytest.mark.slow
def test_kill_mid_training_resumes_from_checkpoint(reference, tmp_path):
    study, table = reference
    results = tmp_path / "killed"
    seen = _kill_when(study, results, "[2/2]", "step     8/12")  # first run finished, second mid-training
    assert "0 finished, 2 to run" in seen
    _check_files(results)
    again = _run(study, results)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 finished, 1 to run" in again.stdout
    assert "resuming from step 6" in again.stdout or "resuming from step 3" in again.stdout, again.stdout
    assert _numbers(results / "crash" / "table.csv") == table  # same numbers as never interrupted


@pytest.mark.slow
def test_kill_of_the_parent_stops_its_workers_with_a_checkpoint(reference, tmp_path):
    """-j 2: two worker processes train while ``ablate run`` is killed with SIGKILL. Each worker gets SIGTERM from
    the kernel (its parent died), checkpoints and stops; the pipe it reported into is gone, which must not fail
    the run. The re-run resumes what was stopped and ends with the same table."""
    study, table = reference
    results = tmp_path / "killed"
    seen = _kill_when(study, results, "step     2/12", "step     2/12", jobs=2)  # both runs at step 2 or later
    assert "[1/2]" in seen and "[2/2]" in seen, seen
    for _ in range(100):  # the workers checkpoint and exit (their lock files are then free)
        if not _held(results):
            break
        time.sleep(0.2)
    records = [json.loads(p.read_text()) for p in results.rglob("runs/*/metrics.json")]
    # nothing recorded failed; the run that was at step 2 had not finished (the other may have: workers start
    # at different times)
    assert all(r["status"] == "done" for r in records) and len(records) < 2, records
    again = _run(study, results, jobs=2)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(records)} finished, {2 - len(records)} to run" in again.stdout, again.stdout
    assert "resuming from step" in again.stdout, again.stdout
    assert _numbers(results / "crash" / "table.csv") == table


@pytest.mark.slow
def test_kill_mid_write_leaves_no_corrupt_file(reference, tmp_path):
    """Killed between writing a file's temporary copy and renaming it into place, for each kind of file."""
    study, table = reference
    results = tmp_path / "killed"
    for victim in ["last.ckpt", "model.pt", "train.json", "metrics.json"]:
        out = _run(study, results, {FAULT_ENV: victim})
        assert out.returncode == -signal.SIGKILL, (victim, out.stdout + out.stderr)
        _check_files(results)
    assert "reused training" in out.stdout or "resuming from step" in out.stdout
    again = _run(study, results)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _numbers(results / "crash" / "table.csv") == table
    assert not list(results.rglob("runs/*/.*.tmp"))


def test_a_checkpoint_not_in_this_versions_format_restarts_the_training(tmp_path):
    """A last.ckpt this version did not write (e.g. Lightning Trainer's format of earlier ablate versions) is not
    resumed from: the training starts at step 0, says so, and finishes; a checkpoint is never a finished result."""
    import torch
    import yaml

    from ablate.config.schema import Recipe
    from ablate.data.loader import build_datasets
    from ablate.train.checkpoint import CHECKPOINT_FILE
    from ablate.train.loop import train

    torch.save({"global_step": 2, "state_dict": {}, "optimizer_states": []}, tmp_path / CHECKPOINT_FILE)
    notes = []
    progress = type("P", (), {"note": lambda self, m: notes.append(m), "step": lambda self, *a: None})()
    recipe = Recipe.model_validate(yaml.safe_load(TINY_RECIPE))
    record = train(recipe, build_datasets(recipe.data), tmp_path, progress)
    assert record["resumed_from"] == 0 and record["steps"] == recipe.train.steps
    assert notes and "not an ablate checkpoint of this version: training from step 0" in notes[0]


def test_validating_during_training_leaves_the_training_unchanged(tmp_path):
    """``train.val_every`` validates the model as it trains (val.csv: step, mIoU) without touching what it trains:
    dropout and the frozen-BN mode after each validation, and the RNG streams, give the very model.pt bytes."""
    import yaml

    from ablate.config.schema import Recipe
    from ablate.core.curve import VAL_FILE, read_val
    from ablate.data.loader import build_datasets
    from ablate.train.loop import MODEL_FILE, train

    config = yaml.safe_load(TINY_RECIPE)
    config["model"]["head"]["dropout"] = 0.3
    config["train"].update(steps=6, freeze_bn=True)
    progress = type("P", (), {"note": lambda self, m: None, "step": lambda self, *a: None})()
    models = {}
    for every in (0, 2):
        config["train"]["val_every"] = every
        recipe = Recipe.model_validate(config)
        (tmp_path / str(every)).mkdir()
        train(recipe, build_datasets(recipe.data), tmp_path / str(every), progress)
        models[every] = (tmp_path / str(every) / MODEL_FILE).read_bytes()
    assert models[0] == models[2]
    points = read_val(tmp_path / "2" / VAL_FILE)
    assert [s for s, _ in points] == [2, 4]  # not at the last step: the final evaluation is that one
    assert all(0 <= v <= 1 for _, v in points)
    assert not (tmp_path / "0" / VAL_FILE).exists()


def dying_job(config, run_dir, train_dir, progress):
    """A job whose process dies at OS 8 (as the kernel's out-of-memory killer would end it)."""
    progress.step(1, 1, 0.5)
    if config["model"]["output_stride"] == 8:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"metrics": {"miou": 0.5, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8}}


def test_a_worker_that_dies_leaves_a_failed_record(tiny_study, tmp_path, monkeypatch):
    """-j 2: a worker process killed inside its job is a failed run with the cause, not one "running elsewhere";
    the other run finishes."""
    from tests_helpers import run_study

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    study = tiny_study("name: dies\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16]}\n")
    summary = run_study(study, tmp_path / "results", "test_faults:dying_job", parallel=2)
    assert len(summary.done) == 1 and not summary.busy
    [(run, error)] = summary.failed
    assert run.axes == {"model.output_stride": 8}
    assert error == "the worker process ended by signal SIGKILL (out of memory?) before recording the run"
    record = json.loads((tmp_path / "results" / "dies" / "runs" / run.id / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"] == error


PARENT_DEATH_CHILD = """
import os, signal, sys, time
from ablate.core import signals
try:
    with signals.deferred() as stop:
        print("ready", flush=True)
        deadline = time.monotonic() + 10
        while stop.pending is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the repeats arrive while the training would write its checkpoint
        print("checkpoint written", flush=True)
except signals.Interrupted as exc:
    print("stopped by", exc.name, flush=True)
"""

PARENT_DEATH_PARENT = """
import ctypes, signal, subprocess, sys, threading, time
def die_with_parent():
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG, as the local executor does
for _ in range(8):  # threads like the executor's relays: each one's exit sends the signal again
    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], preexec_fn=die_with_parent, stdout=sys.stdout)
time.sleep(100)
"""


def test_a_worker_whose_parent_dies_checkpoints_once_however_many_signals_come(tmp_path):
    """The kernel sends the parent-death signal once per exiting thread of the parent: a worker must take the first
    as "checkpoint and stop" and not the repeats as a second, stop-at-once signal (that lost the checkpoint)."""
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        parent = subprocess.Popen([sys.executable, "-c", PARENT_DEATH_PARENT, PARENT_DEATH_CHILD], stdout=sink)
        for _ in range(300):
            if "ready" in out.read_text():
                break
            time.sleep(0.05)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for _ in range(200):
        if "stopped by" in out.read_text():
            break
        time.sleep(0.05)
    assert out.read_text().splitlines() == ["ready", "checkpoint written", "stopped by SIGTERM"], out.read_text()
