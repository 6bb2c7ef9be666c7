"""Two processes (DDP, gloo, CPU) give the same metrics as one: confusion matrices are summed across ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests_helpers import quiet_env

from ablate.config.schema import Recipe
from ablate.data.loader import build_datasets
from ablate.models.segmenter import build_model
from ablate.train.evaluate import evaluate

HERE = Path(__file__).parent


def _validate(devices: int, weights: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "ddp_validate.py"), str(devices), str(weights)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("METRICS ")]
    assert out.returncode == 0 and line, out.stdout + out.stderr
    return json.loads(line[0][len("METRICS ") :])


def _ablate_run(study: Path, results: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results), "--no-report"],
        capture_output=True,
        text=True,
        timeout=600,
        env=quiet_env(),
    )


@pytest.mark.slow
def test_two_process_metrics_equal_one_process(tmp_path):
    recipe = Recipe.model_validate(
        {
            "data": {"image_size": 32, "num_train": 8, "num_val": 12, "context_distance": [4, 12]},
            "model": {"head": {"name": "aspp", "rates": [2], "channels": 8}},
        }
    )
    data = build_datasets(recipe.data)
    n = len(data.classes)
    torch.manual_seed(0)
    model = build_model(recipe.model, n)
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    single = evaluate(model, data.val, recipe.eval, n)
    two = _validate(2, weights)
    for key in ("pixel_acc", "mean_acc", "miou", "fwiou"):
        assert two[key] == pytest.approx(single[key], abs=1e-12), key
    # averaging per-rank matrices instead of summing would halve the counts but keep ratios; per-rank halves
    # differ, so check a quantity that averaging of per-rank *metrics* would get wrong: compare with rank halves
    half = evaluate(model, torch.utils.data.Subset(data.val, range(0, 12, 2)), recipe.eval, n)
    assert half["miou"] != pytest.approx(single["miou"], abs=1e-6)


@pytest.mark.slow
def test_ddp_training_through_ablate_run(tiny_study, tmp_path):
    study = tiny_study("name: ddp\nrecipe: recipe.yaml\nset: {train.devices: 2, train.accelerator: cpu}\n")
    out = _ablate_run(study, tmp_path / "r")
    assert out.returncode == 0, out.stdout + out.stderr
    records = list((tmp_path / "r" / "ddp" / "runs").glob("*/metrics.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "done" and record["steps"] == 3 and 0 <= record["metrics"]["miou"] <= 1


@pytest.mark.slow
def test_ddp_training_that_fails_ends_both_processes(tiny_study, tmp_path):
    """A diverging DDP training fails as one run (error recorded, exit code 1); no rank is left waiting."""
    study = tiny_study(
        "name: ddp\nrecipe: recipe.yaml\n"
        "set: {train.devices: 2, train.accelerator: cpu, train.lr: 1.0e+30, train.log_every: 1}\n"
    )
    out = _ablate_run(study, tmp_path / "r")
    assert out.returncode == 1, out.stdout + out.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "ddp" / "runs").glob("*/metrics.json")]
    assert len(records) == 1 and records[0]["status"] == "failed" and "loss is" in records[0]["error"]


def test_a_failing_rank_zero_kills_the_processes_it_launched():
    """``train`` on rank 0 failing: the local DDP processes its launcher started are killed, not left waiting in
    a collective for a rank that is gone (a launcher without processes, e.g. under SLURM, is left alone)."""
    from types import SimpleNamespace

    from ablate.train.loop import _stop_children

    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    _stop_children(SimpleNamespace(strategy=SimpleNamespace(launcher=SimpleNamespace(procs=procs))))
    assert [p.wait(timeout=10) for p in procs] == [-9, -9]
    _stop_children(SimpleNamespace(strategy=SimpleNamespace(launcher=None)))
