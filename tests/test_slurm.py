"""The SLURM executor against a real single-node SLURM on localhost (slurm-wlm + munge, started here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from slurm_cluster import Cluster, available
from tests_helpers import quiet_env

why_not = available()
if why_not and os.environ.get("CI"):
    pytest.fail(f"SLURM tests cannot run in CI: {why_not}", pytrace=False)
pytestmark = [  # a real SLURM controller, jobs of a few seconds each
    pytest.mark.slow,
    pytest.mark.skipif(why_not is not None, reason=f"local SLURM unavailable: {why_not}"),
]


@pytest.fixture(scope="module")
def cluster():
    folder = Path(tempfile.mkdtemp(prefix="ablate-slurm-"))  # munged wants every parent folder traversable
    folder.chmod(0o755)
    c = Cluster(folder)
    c.start()
    os.environ["SLURM_CONF"] = c.env["SLURM_CONF"]
    yield c
    c.stop()
    os.environ.pop("SLURM_CONF", None)
    shutil.rmtree(folder, ignore_errors=True)


EXECUTOR = "executor: {kind: slurm, partition: debug, cpus_per_task: 1, time_min: 10, poll_s: 0.5}\n"


def _ablate(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    if args[0] == "run":
        args = (*args, "--no-report")
    return subprocess.run([sys.executable, "-m", "ablate.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=quiet_env())  # fmt: skip


def test_study_runs_on_slurm_and_table_is_collected(cluster, tiny_study, tmp_path):
    study = tiny_study("name: sl\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16]}\n" + EXECUTOR)
    out = _ablate("run", str(study), "--results", str(tmp_path / "r"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted 2 SLURM jobs for 2 runs" in out.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "sl" / "runs").glob("*/metrics.json")]
    assert [r["status"] for r in records] == ["done", "done"]
    assert (tmp_path / "r" / "sl" / "table.csv").read_text().count("\n") == 3
    again = _ablate("run", str(study), "--results", str(tmp_path / "r"))
    assert again.returncode == 0 and "submitted" not in again.stdout


def test_requeued_job_resumes_from_checkpoint(cluster, tiny_study, tmp_path):
    study = tiny_study(
        "name: rq\nrecipe: recipe.yaml\nset: {train.steps: 400, train.checkpoint_every: 20, train.log_every: 20}\n"
        + EXECUTOR
    )
    results = tmp_path / "r"
    out = _ablate("run", str(study), "--results", str(results), "--detach")
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (results / "rq" / "runs").iterdir()
    job_id = json.loads((run_dir / "slurm.json").read_text())["job_id"]
    (train_dir,) = (results / "rq" / "trainings").iterdir()
    deadline = time.monotonic() + 300
    while not (train_dir / "last.ckpt").is_file():
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.5)
    subprocess.run(["scontrol", "requeue", job_id], check=True, env=cluster.env)
    collected = _ablate("run", str(study), "--results", str(results))  # waits for the queued job, no resubmit
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "already queued on SLURM" in collected.stdout and "submitted" not in collected.stdout
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "done" and record["steps"] == 400
    assert record["resumed_from"] >= 20  # the requeued job picked up its checkpoint
    log = json.loads((run_dir / "slurm.json").read_text())["log"]
    assert "resuming from step" in open(log).read()
    # bit-exact: the same weights as the same study run on SLURM without a requeue
    straight = _ablate("run", str(study), "--results", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stdout + straight.stderr
    (model,) = (tmp_path / "straight" / "rq" / "trainings").glob("*/model.pt")
    assert model.read_bytes() == (train_dir / "model.pt").read_bytes()
