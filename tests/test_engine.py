"""Grid language, plan, locks and parallel local workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from tests_helpers import REPO, quiet_env

from ablate.core.errors import ConfigError
from ablate.study.grid import combinations, expand
from ablate.study.load import load_study


def test_plan_aspp_rates_shows_coupled_rates():
    out = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "plan", "studies/aspp_rates.yaml", "--json", "--results", "/nonexistent"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["count"] == 16 and plan["trainings"] == 16  # 2 rate sets x 2 output strides x 4 seeds
    # the feature_map rule keeps each rate's share of the map: x 20/33 at OS 8 (ceil(160/8) = 20), x 10/33 at OS 16
    coupled = {
        (r["axes"]["model.output_stride"], tuple(r["axes"]["model.head.rates"])): r["coupled"] for r in plan["runs"]
    }
    assert coupled[(8, (6, 12, 18))] == {"model.head.rates": [4, 7, 11]}
    assert coupled[(16, (6, 12, 18))] == {"model.head.rates": [2, 4, 5]}
    assert coupled[(16, (1,))] == {}
    table = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "plan", "studies/aspp_rates.yaml", "--results", "/nonexistent"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "(6,12,18) → (4,7,11)" in table and "16 pending" in table


def test_plan_imports_no_torch():
    code = (
        "import sys, ablate.cli, ablate.study.session, ablate.config.overrides, ablate.config.yaml_io, "
        "ablate.report.page; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_job_and_its_threads_are_named_once_for_both_sides(monkeypatch):
    """The study engine names the job by its import path and sets its threads in the environment; the job (in
    ``ablate.train``) reads the very names of ``ablate.core.jobs``."""
    import torch

    from ablate.core.jobs import DEFAULT_JOB, THREADS_ENV
    from ablate.study.worker import resolve
    from ablate.train.job import run_job, set_threads

    assert resolve(DEFAULT_JOB) is run_job
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(THREADS_ENV, "1")
        assert set_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_zip_include_exclude(tiny_study):
    study = tiny_study("""
        name: g
        recipe: recipe.yaml
        axes:
          model.head.name: [aspp, none]
          model.head.channels: [16, 8]
          model.output_stride: [8, 16, 32]
        zip: [[model.head.name, model.head.channels]]
        exclude: [{model.output_stride: 32}]
        include: [{model.head.name: none, model.head.channels: 8, model.output_stride: 32}]
        baseline: {model.output_stride: 16}
    """)
    combos = combinations(load_study(study))
    assert combos == [
        {"model.head.name": "aspp", "model.head.channels": 16, "model.output_stride": 8},
        {"model.head.name": "aspp", "model.head.channels": 16, "model.output_stride": 16},
        {"model.head.name": "none", "model.head.channels": 8, "model.output_stride": 8},
        {"model.head.name": "none", "model.head.channels": 8, "model.output_stride": 16},
        {"model.head.name": "none", "model.head.channels": 8, "model.output_stride": 32},
    ]


def test_scale_rule_applies_to_config(tiny_study):
    study = tiny_study("""
        name: r
        recipe: recipe.yaml
        axes: {model.head.rates: [[6, 12, 18]], model.output_stride: [8, 16, 32]}
        rules: [{scale: model.head.rates, with: model.output_stride, reference: 16}]
    """)
    rates = {r.config["model"]["output_stride"]: r.config["model"]["head"]["rates"] for r in expand(load_study(study))}
    assert rates == {8: [12, 24, 36], 16: [6, 12, 18], 32: [3, 6, 9]}


@pytest.mark.parametrize(
    "extra, message",
    [
        ("zip: [[model.output_stride, model.head.rate]]", "zip[0]: 'model.head.rate' is not an axis"),
        ("zip: [[model.output_stride, model.head.rates]]", "zipped axes need as many values each"),
        ("rules: [{scale: model.output_stride, with: seed, reference: 2}]", "rules[0].with"),
        ("exclude: [{model.output_strid: 8}]", "exclude[0]: 'model.output_strid' is not an axis"),
    ],
)
def test_grid_errors(tiny_study, extra, message):
    study = tiny_study(f"""
name: e
recipe: recipe.yaml
axes: {{model.output_stride: [8, 16], model.head.rates: [[1]]}}
{extra}
""")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_study(study)


def _cmd(study, results, *extra):
    return [sys.executable, "-m", "ablate.cli", "run", str(study), "--results", str(results), "--no-report", *extra]


@pytest.mark.slow
def test_two_concurrent_runs_never_train_the_same_run_twice(tiny_study, tmp_path):
    study = tiny_study("name: lock\nrecipe: recipe.yaml\nset: {train.steps: 6}\naxes: {model.output_stride: [8, 16]}\n")
    procs = [
        subprocess.Popen(
            _cmd(study, tmp_path / "r"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=quiet_env()
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    trained = sum(o.count("(trained)") for o in outs)
    assert trained == 2, outs  # two runs, each trained by exactly one of the processes
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "lock" / "runs").glob("*/metrics.json")]
    assert [r["status"] for r in records] == ["done", "done"]


@pytest.mark.slow
def test_parallel_local_workers(tiny_study, tmp_path):
    study = tiny_study(
        "name: par\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16], eval.batch_size: [2, 4]}\n"
    )
    out = subprocess.run(
        _cmd(study, tmp_path / "r", "--max-parallel", "2"), capture_output=True, text=True, env=quiet_env()
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 runs (2 trainings)" in out.stdout
    assert out.stdout.count("(trained)") == 2 and out.stdout.count("reused training") == 2
    results = [line for line in out.stdout.splitlines() if "(trained)" in line or "reused training" in line]
    named = [re.fullmatch(r"\s+\[(\d)/4\] output_stride=(8|16) batch_size=(2|4) seed=0: mIoU [\d.]+ in [\dm]+s \(.*\)",
                          line) for line in results]  # fmt: skip
    assert all(named) and len({m.groups() for m in named}) == 4, results  # each result line names its own run
    status = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "status", str(study), "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert "4 done, 0 running, 0 failed, 0 pending" in status.stdout


def test_feature_map_rule_scales_rates_to_each_runs_map(tiny_study):
    """Rates written for DeepLabv3's 33-px map (513-px crops at OS 16) keep their share of each run's map:
    on 32-px images the map is 2 (OS 16) or 4 (OS 8) pixels; --set data.image_size=128 makes it 8 and 16."""
    study = tiny_study("""
        name: m
        recipe: recipe.yaml
        axes: {model.head.rates: [[1], [6, 12, 18]], model.output_stride: [8, 16]}
        rules: [{scale: model.head.rates, feature_map: 33}]
    """)
    used = {(tuple(r.axes["model.head.rates"]), r.axes["model.output_stride"]): r.config["model"]["head"]["rates"]
            for r in expand(load_study(study))}  # fmt: skip
    assert used == {((1,), 8): [1], ((1,), 16): [1], ((6, 12, 18), 8): [1, 1, 2], ((6, 12, 18), 16): [1, 1, 1]}
    big = {(tuple(r.axes["model.head.rates"]), r.axes["model.output_stride"]): r.config["model"]["head"]["rates"]
           for r in expand(load_study(study, {"data.image_size": 128}))}  # fmt: skip
    assert big[((6, 12, 18), 16)] == [1, 3, 4] and big[((6, 12, 18), 8)] == [3, 6, 9]
    with pytest.raises(ConfigError, match="give either 'with' and 'reference', or 'feature_map'"):
        body = "name: x\nrecipe: recipe.yaml\naxes: {model.head.rates: [[1]]}\nrules: [{scale: model.head.rates}]\n"
        load_study(tiny_study(body))


# wall-clock fields: never the same twice
TIMING = {"duration_s", "train_time_s", "eval_time_s", "data_time_s", "latency_ms"}


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    return value


@pytest.mark.slow
def test_a_reused_worker_gives_the_bytes_of_a_fresh_one(tiny_study, tmp_path):
    """A local worker runs job after job in one process (imports and the generated data paid once). The second
    job of a worker (another seed and output stride, the same data, cached) gives the model, curve, predictions
    and record that the same job gives alone in a fresh process."""
    import numpy as np

    from ablate.study.session import StudySession

    study = tiny_study(
        "name: w\nrecipe: recipe.yaml\nset: {train.steps: 12}\naxes: {model.output_stride: [16, 8]}\nseeds: [0, 1]\n"
    )
    env = quiet_env(ABLATE_THREADS="1", OMP_NUM_THREADS="1")
    worker = [sys.executable, "-m", "ablate.study.worker"]

    def prepared(root):
        session = StudySession(study, {}, root)
        first, second = session.runs[0], session.runs[3]  # OS 16 seed 0, then OS 8 seed 1
        assert (first.seed, second.seed) == (0, 1) and first.config["model"]["output_stride"] == 16
        return session.store, [(session.store.prepare(r), session.store.training_dir(r), r) for r in (first, second)]

    _, jobs = prepared(tmp_path / "reused")
    lines = "".join(json.dumps({"run_dir": str(d), "train_dir": str(t)}) + "\n" for d, t, _ in jobs)
    served = subprocess.run([*worker, "--serve"], input=lines, capture_output=True, text=True, env=env)
    assert served.returncode == 0 and served.stdout.count("@@done") == 2, served.stdout + served.stderr
    _, fresh_jobs = prepared(tmp_path / "fresh")
    run_dir, train_dir, _ = fresh_jobs[1]
    alone = subprocess.run([*worker, str(run_dir), str(train_dir)], capture_output=True, text=True, env=env)
    assert alone.returncode == 0, alone.stdout + alone.stderr

    (reused_run, reused_train, _), (fresh_run, fresh_train, _) = jobs[1], fresh_jobs[1]
    for name in ("model.pt", "curve.csv"):
        assert (reused_train / name).read_bytes() == (fresh_train / name).read_bytes(), name
    trainings = [json.loads((t / "train.json").read_text()) for t in (reused_train, fresh_train)]
    assert _without_timing(trainings[0]) == _without_timing(trainings[1])
    reused, fresh = (json.loads((d / "metrics.json").read_text()) for d in (reused_run, fresh_run))
    assert reused["status"] == "done" and _without_timing(reused) == _without_timing(fresh)
    with np.load(reused_run / "predictions.npz") as a, np.load(fresh_run / "predictions.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
