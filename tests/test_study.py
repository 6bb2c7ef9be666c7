"""Grid expansion, stable ids, resume, failures and tables, with a fake job (no torch)."""

from __future__ import annotations

import json

import pytest
from tests_helpers import Quiet, run_study

from ablate.core.files import atomic_write
from ablate.report.table import summarize
from ablate.study.grid import expand
from ablate.study.load import load_study
from ablate.study.results import collect
from ablate.study.store import Store

STUDY = """
name: s
recipe: recipe.yaml
axes:
  model.head.rates: [[1], [6, 12]]
  model.output_stride: [8, 16]
seeds: [0, 1, 2]
baseline: {model.head.rates: [1], model.output_stride: 16}
"""


def fake_job(calls):
    def job(config, run_dir, train_dir, progress):
        calls.append(config)
        progress.step(1, 1, 0.5)
        if config["model"]["output_stride"] == 8 and config["model"]["head"]["rates"] == [1] and config["seed"] == 2:
            raise RuntimeError("boom\nsecond line")
        value = 0.5 + 0.1 * len(config["model"]["head"]["rates"]) + 0.01 * config["seed"]
        return {"metrics": {"miou": value, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8}}

    return job


def test_expand_product_times_seeds_with_stable_ids(tiny_study):
    loaded = load_study(tiny_study(STUDY))
    runs = expand(loaded)
    assert len(runs) == 2 * 2 * 3
    assert len({r.id for r in runs}) == 12
    assert [r.id for r in expand(load_study(tiny_study(STUDY)))] == [r.id for r in runs]
    first = runs[0]
    assert first.config["model"]["head"]["rates"] == [1] and first.config["model"]["output_stride"] == 8
    assert first.config["train"]["momentum"] == 0.9  # defaults are filled in before hashing


def test_id_ignores_how_the_recipe_is_written(tiny_study, tmp_path):
    a = expand(load_study(tiny_study(STUDY)))
    recipe = (tmp_path / "recipe.yaml").read_text().replace("lr: 0.01,", "lr: 0.01, momentum: 0.9,")
    (tmp_path / "recipe.yaml").write_text(recipe)
    assert [r.id for r in expand(load_study(tiny_study(STUDY)))] == [r.id for r in a]


def test_run_records_failures_and_resumes(tiny_study, tmp_path):
    loaded = load_study(tiny_study(STUDY))
    calls = []
    summary = run_study(loaded, tmp_path / "results", fake_job(calls), Quiet())
    assert len(calls) == 12 and len(summary.done) == 11 and len(summary.failed) == 1
    assert summary.failed[0][1] == "RuntimeError: boom"
    store = Store(tmp_path / "results", "s")
    failed = store.read_metrics(summary.failed[0][0])
    assert failed["status"] == "failed" and "Traceback" in failed["traceback"]

    calls.clear()
    summary = run_study(loaded, tmp_path / "results", fake_job(calls), Quiet())
    assert calls == [] and len(summary.skipped) == 12  # finished and failed runs are both left alone
    summary = run_study(loaded, tmp_path / "results", fake_job(calls), Quiet(), retry_failed=True)
    assert len(calls) == 1 and calls[0]["seed"] == 2 and len(summary.failed) == 1  # only the failed run again

    df = collect(summary.runs, store)
    table = summarize(df, list(loaded.study.axes), loaded.study.baseline)
    row = table[(table["model.head.rates"] == "(6,12)") & (table["model.output_stride"] == "16")].iloc[0]
    assert row["n"] == 3
    assert row["miou_mean"] == pytest.approx(100 * (0.7 + 0.01))
    assert row["miou_std"] == pytest.approx(1.0)
    assert row["delta_miou"] == pytest.approx(10.0)
    bad = table[(table["model.head.rates"] == "(1)") & (table["model.output_stride"] == "8")].iloc[0]
    assert bad["n"] == 2 and bad["failed"] == 1


def test_selection_asks_slurm_only_about_runs_a_slurm_job_was_submitted_for(tiny_study, tmp_path, monkeypatch):
    """No executor calls ``squeue`` while no run folder names a SLURM job; once one does, the local executor leaves
    that run to its queued job (busy), and the SLURM executor waits for it rather than submitting it again."""
    import subprocess

    from ablate.study.executors import EXECUTORS, slurm_queue

    loaded = load_study(tiny_study(STUDY))
    runs = expand(loaded)
    store = Store(tmp_path / "results", loaded.study.name)
    asked = []

    def squeue(cmd, **kwargs):
        asked.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="42 PENDING\n", stderr="")

    monkeypatch.setattr(slurm_queue.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(slurm_queue.subprocess, "run", squeue)
    local, slurm = EXECUTORS["local"](), EXECUTORS["slurm"]()
    for executor in (local, slurm):
        todo, busy = executor.select(runs, store)
        assert sorted(r.id for r in todo) == sorted(r.id for r in runs) and busy == []
    assert asked == []
    held = runs[3]
    store.prepare(held)
    atomic_write(store.run_dir(held) / slurm_queue.SLURM_FILE, json.dumps({"job_id": "42"}))
    todo, busy = local.select(runs, store)
    assert held not in todo and busy == [held] and len(todo) == len(runs) - 1
    assert len(asked) == 1 and asked[0][-1] == "42"
    todo, busy = slurm.select(runs, store)
    assert todo[0] == held and len(todo) == len(runs) and busy == []


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, json.dumps({"a": 1}))

    with pytest.raises(TypeError):
        atomic_write(path, object())  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_short_labels_of_dict_values_without_a_name():
    """An axis mixing ``true`` with a dict (``train.ema: [true, {decay: 0.998, start: 300}]``) labels the dict by its
    keys, not ``{}``; named dicts keep their name and the keys that differ."""
    from ablate.core.text import short_labels

    assert short_labels([True, {"decay": 0.998, "start": 300}]) == ["True", "{decay=0.998,start=300}"]
    labels = short_labels([{"decay": 0.99, "start": 0}, {"decay": 0.998, "start": 0}])
    assert labels == ["{decay=0.99}", "{decay=0.998}"]
    assert short_labels([{"name": "aspp", "rates": [1]}, {"name": "aspp", "rates": [2]}, {"name": "ppm"}]) == [
        "aspp(rates=(1))", "aspp(rates=(2))", "ppm"]
