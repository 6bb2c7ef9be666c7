"""Ad-hoc studies from the command line: a recipe plus --axis/--seeds is a study with its own name, table, report and
resume, and --save-study writes a YAML that gives the same run ids."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from conftest import TINY_RECIPE


def _ablate(*args, cwd, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ablate.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, **kw)  # fmt: skip


AXES = ["--axis", "model.output_stride=8,16", "--axis", "model.head.rates=[1],[2,4]", "--seeds", "0,1"]


def test_axis_options_make_a_study_and_its_saved_yaml_has_the_same_ids(tmp_path):
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)
    out = _ablate("plan", "recipe.yaml", *AXES, "--save-study", "saved.yaml", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["count"] == 8 and plan["study"].startswith("recipe-output_stride")
    saved = _ablate("plan", "saved.yaml", "--json", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert [r["id"] for r in json.loads(saved.stdout)["runs"]] == [r["id"] for r in plan["runs"]]
    assert (tmp_path / "results" / plan["study"] / "study.yaml").is_file()  # the study a later command finds


@pytest.mark.parametrize(
    "args, message",
    [
        (["--axis", "model.output_stride"], "expected KEY=VALUE1,VALUE2"),
        (["--axis", "model.output_strid=8,16"], "unknown key 'output_strid'"),
        (["--seeds", "0,x"], "--seeds 0,x: expected integers"),
        (["--axis", "model.output_stride=8", "--axis", "model.output_stride=16"], "each key once"),
    ],
)
def test_bad_axis_options_are_one_line(tmp_path, args, message):
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)
    out = _ablate("plan", "recipe.yaml", *args, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_axis_options_on_a_study_are_refused(tmp_path):
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)
    (tmp_path / "study.yaml").write_text("name: s\nrecipe: recipe.yaml\n")
    out = _ablate("plan", "study.yaml", "--axis", "model.output_stride=8,16", cwd=tmp_path)
    assert out.returncode == 2 and "is a study" in out.stderr


@pytest.mark.slow
def test_adhoc_study_interrupted_and_resumed(tmp_path):
    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE.replace("steps: 3", "steps: 40"))
    args = ["run", "recipe.yaml", "--axis", "model.output_stride=8,16", "--seeds", "0", "--no-report"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ablate.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if re.search(r"step\s+(\d+)/40", line) and int(re.search(r"step\s+(\d+)/40", line).group(1)) >= 10:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Resume with: ablate run" in err, err
    again = _ablate(*args, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from step" in again.stdout and "2 runs" in again.stdout


@pytest.mark.parametrize("adhoc", [False, True])
def test_a_command_parses_its_study_and_recipe_once(tmp_path, monkeypatch, adhoc):
    """Before a study is loaded the command asks whether its file is a study or a recipe and whether it parses; the
    study and its recipe are each parsed once all the same, and every caller gets its own copy of the mapping."""
    import yaml

    from ablate.cli.session_io import session_of
    from ablate.config import yaml_io

    (tmp_path / "recipe.yaml").write_text(TINY_RECIPE)
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16]}\nseeds: [0]\n")
    yaml_io._parse.cache_clear()
    parsed, safe_load = [], yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text, *a, **kw: parsed.append(text) or safe_load(text, *a, **kw))
    if adhoc:
        session = session_of(tmp_path / "recipe.yaml", None, tmp_path / "results", axes=["model.output_stride=8,16"])
        made = tmp_path / "results" / session.study.name / "study.yaml"
        parsed.remove("[8,16]")  # the --axis values
        assert sorted(parsed) == sorted([TINY_RECIPE, made.read_text()])
    else:
        session = session_of(study, None, tmp_path / "results")
        assert sorted(parsed) == sorted([TINY_RECIPE, study.read_text()])
    assert len(session.runs) == 2
    first = yaml_io.load_yaml(study)
    first["name"] = "changed"
    assert yaml_io.load_yaml(study)["name"] == "s"
    study.write_text(study.read_text().replace("name: s", "name: t"))
    assert yaml_io.load_yaml(study)["name"] == "t"

