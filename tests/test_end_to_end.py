"""The real thing, small: `ablate run` trains, writes run folders and a table; a second run trains nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STUDY = """
name: e2e
recipe: recipe.yaml
axes:
  model.output_stride: [8, 16]
seeds: [0, 1]
baseline: {model.output_stride: 16}
"""


@pytest.mark.slow
def test_run_twice(tiny_study, tmp_path):
    study = tiny_study(STUDY)
    cmd = [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(tmp_path / "results")]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    runs = sorted((tmp_path / "results" / "e2e" / "runs").iterdir())
    assert len(runs) == 4
    for run in runs:
        record = json.loads((run / "metrics.json").read_text())
        assert record["status"] == "done" and record["steps"] == 3
        assert 0 <= record["metrics"]["miou"] <= 1
        assert set(record["per_class_iou"]) == {"background", "red", "green", "blue", "yellow", "line"}
        assert (run / "config.yaml").is_file()
        assert (tmp_path / "results" / "e2e" / "trainings" / record["train_id"] / "model.pt").is_file()
    assert "step     3/3" in first.stdout and "eta" in first.stdout
    table = (tmp_path / "results" / "e2e" / "table.md").read_text()
    assert "output_stride" in table and "±" in table
    csv = (tmp_path / "results" / "e2e" / "table.csv").read_text()
    assert csv.count("\n") == 3  # header + 2 configurations

    study_dir = tmp_path / "results" / "e2e"
    summaries = sorted((study_dir / "wandb").glob("offline-run-*"))
    assert len(summaries) == 4 + 1  # one W&B run per run, one summary run
    mtimes = {r: (r / "metrics.json").stat().st_mtime_ns for r in runs}
    report_mtime = (study_dir / "report.html").stat().st_mtime_ns
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0
    assert "4 finished, 0 to run" in second.stdout, second.stdout
    assert "step" not in second.stdout
    assert mtimes == {r: (r / "metrics.json").stat().st_mtime_ns for r in runs}
    # nothing new: the report is not redrawn and no duplicate W&B summary run is logged
    assert "unchanged" in second.stdout and (study_dir / "report.html").stat().st_mtime_ns == report_mtime
    assert sorted((study_dir / "wandb").glob("offline-run-*")) == summaries

    record = json.loads((runs[0] / "metrics.json").read_text())  # a result changes: both are made again
    record["metrics"]["miou"] = 0.123
    (runs[0] / "metrics.json").write_text(json.dumps(record))
    third = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert third.returncode == 0 and "unchanged" not in third.stdout, third.stdout
    assert (study_dir / "report.html").stat().st_mtime_ns > report_mtime
    assert len(list((study_dir / "wandb").glob("offline-run-*"))) == len(summaries) + 1


@pytest.mark.slow
def test_eval_only_axis_trains_once(tiny_study, tmp_path):
    study = tiny_study("name: ev\nrecipe: recipe.yaml\naxes: {eval.batch_size: [2, 8]}\n")
    cmd = [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(tmp_path / "results")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 runs (1 training)" in out.stdout and "reused training" in out.stdout
    assert len(list((tmp_path / "results" / "ev" / "trainings").iterdir())) == 1
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "ev" / "runs").glob("*/metrics.json")]
    assert sorted(r["trained"] for r in records) == [False, True]
    assert records[0]["metrics"]["miou"] == records[1]["metrics"]["miou"]  # batch size does not change eval
