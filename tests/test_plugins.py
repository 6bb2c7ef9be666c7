"""Plugins: a study's or recipe's ``plugins:`` and the ``ablate.plugins`` entry points join the registries, validation,
listings and run ids like built-in entries; failures and duplicates are one line; runs made by other plugin code
are named stale and rerun on request only. The example package (examples/ablate-plugin-example) is installed with
pip and run end to end by the slow test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from tests_helpers import REPO, Quiet, quiet_env, run_study

from ablate.config.schema import Recipe
from ablate.core import plugins
from ablate.core.errors import ConfigError
from ablate.core.registry import Registry
from ablate.data import DATASETS
from ablate.models.heads import HEADS
from ablate.study.executors.local import LocalExecutor
from ablate.study.grid import expand
from ablate.study.load import load_study
from ablate.study.session import StudySession

HEAD = '''
"""A plugin head (parameters only: these tests never build it)."""
from typing import ClassVar, Literal

from pydantic import Field

from ablate.models.heads.base import HEADS, HeadParams


@HEADS.register
class {cls}(HeadParams):
    """A plugin head for the tests."""

    name: Literal["{name}"] = "{name}"
    width: int = Field(3, ge=1, description="a parameter")
    module: ClassVar[str] = "nowhere:Head"
'''

DATA = '''
from typing import ClassVar, Literal

from ablate.data.base import DATASETS, DataSpec


@DATASETS.register
class DotsData(DataSpec):
    """A plugin data set for the tests."""

    name: Literal["dots"] = "dots"
    size: int = 16
    classes: ClassVar[tuple[str, ...]] = ("background", "dot")

    @property
    def crop(self) -> int:
        return self.size
'''


@pytest.fixture
def isolated():
    """The registries, the loaded plugins, ``sys.modules`` and ``sys.path`` as they were before the test."""
    saved = [(r, dict(r._entries)) for r in Registry.instances]
    before, path = set(plugins._loaded), list(sys.path)
    yield
    for registry, entries in saved:
        registry._entries = entries
    plugins.forget(set(plugins._loaded) - before)
    sys.path[:] = path


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_a_file_plugin_registers_like_a_built_in(tiny_study, tmp_path, isolated):
    write(tmp_path / "plug" / "my_heads.py", HEAD.format(cls="MyParams", name="myhead") + DATA)
    body = "name: p\nrecipe: recipe.yaml\n{plugins}axes: {{model.head.name: [none, {head}]}}\n"
    plain = [r.id for r in expand(load_study(tiny_study(body.format(plugins="", head="aspp"), "plain.yaml")))]
    study = tiny_study(body.format(plugins="plugins: [plug/my_heads.py]\n", head="myhead"))
    runs = expand(load_study(study))

    assert "myhead" in HEADS and "dots" in DATASETS
    assert runs[1].config["model"]["head"] == {"name": "myhead", "width": 3}  # defaults filled, like a built-in's
    assert runs[0].id == plain[0]  # the plugins key is not part of any run's id
    (plugin,) = plugins.loaded()
    assert plugin.key == "plug/my_heads.py" and plugin.provides == (("data set", "dots"), ("head", "myhead"))
    schema = json.dumps(Recipe.model_json_schema())
    assert '"myhead"' in schema and '"dots"' in schema and '"aspp"' in schema
    from ablate.cli.listing import markdown

    assert "| `myhead` | A plugin head for the tests. | `width` (3) |" in markdown("heads")

    typo = tiny_study(body.format(plugins="plugins: [plug/my_heads.py]\n", head="myhaed"), "typo.yaml")
    with pytest.raises(ConfigError, match=r"axes.model.head.name: unknown name 'myhaed' \(did you mean 'myhead'\?\)"):
        load_study(typo)
    bad = "plugins: [plug/my_heads.py]\nset: {model.head.name: myhead, model.head.width: 0}\n"
    with pytest.raises(ConfigError, match=r"set.model.head.width: head 'myhead': width: .* equal to 1 \(got 0\)"):
        load_study(tiny_study(body.format(plugins=bad, head="none"), "bad.yaml"))
    bad_data = tiny_study(body.format(plugins="plugins: [plug/my_heads.py]\nset: {data.name: dots, data.size: x}\n",
                                      head="none"), "bad_data.yaml")  # fmt: skip
    with pytest.raises(ConfigError, match=r"set.data.size: data 'dots': size: .* \(got 'x'\); allowed: int"):
        load_study(bad_data)


def test_a_plugin_that_fails_to_import_is_one_line_and_registers_nothing(tiny_study, tmp_path, isolated):
    write(tmp_path / "broken.py", HEAD.format(cls="HalfParams", name="half") + "\nraise RuntimeError('no GPU here')\n")
    write(tmp_path / "syntax.py", "def f(:\n")
    write(tmp_path / "sub" / "json.py", HEAD.format(cls="JsonParams", name="json"))
    cases = {
        "sub/json.py": "plugins: sub/json.py: a module named 'json' exists already (",  # the standard library's
        "./broken.py": "plugins: ./broken.py: cannot import it: RuntimeError: no GPU here",
        "./syntax.py": "plugins: ./syntax.py: cannot import it: SyntaxError: ",
        "./missing.py": "plugins: ./missing.py: file not found",
        "no_such_pkg.heads": "plugins: no_such_pkg.heads: cannot import it: ModuleNotFoundError: No module named",
    }
    for name, message in cases.items():
        study = tiny_study(f"name: p\nrecipe: recipe.yaml\nplugins: [{name}]\n")
        with pytest.raises(ConfigError) as err:
            load_study(study)
        assert message in str(err.value) and "\n" not in str(err.value)
    assert "half" not in HEADS and plugins.loaded() == []  # what the broken plugin registered first is undone
    assert sys.modules["json"].__file__ != str(tmp_path / "sub" / "json.py")

    cmd = [sys.executable, "-m", "ablate.cli", "plan", str(tmp_path / "study.yaml")]
    write(tmp_path / "study.yaml", "name: p\nrecipe: recipe.yaml\nplugins: [./broken.py]\n")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "./broken.py: cannot import it: RuntimeError" in out.stderr


def test_one_name_registered_twice_is_refused_naming_both(tiny_study, tmp_path, isolated):
    write(tmp_path / "first.py", HEAD.format(cls="TwinA", name="twin"))
    write(tmp_path / "second.py", HEAD.format(cls="TwinB", name="twin"))
    write(tmp_path / "shadow.py", HEAD.format(cls="MyASPP", name="aspp"))
    with pytest.raises(ConfigError) as err:
        load_study(tiny_study("name: p\nrecipe: recipe.yaml\nplugins: [./first.py, ./second.py]\n"))
    message = str(err.value)
    assert "plugins: ./second.py: head 'twin' is registered twice: by first.TwinA" in message
    assert f"({tmp_path / 'first.py'}) and by second.TwinB ({tmp_path / 'second.py'})" in message
    with pytest.raises(ConfigError) as err:
        load_study(tiny_study("name: p\nrecipe: recipe.yaml\nplugins: [./shadow.py]\n", "s2.yaml"))
    assert "head 'aspp' is registered twice: by ablate.models.heads.aspp.ASPPParams (" in str(err.value)
    assert f"and by shadow.MyASPP ({tmp_path / 'shadow.py'})" in str(err.value)
    assert HEADS["aspp"].__module__ == "ablate.models.heads.aspp"

    timm_plugin = "from timm.models import register_model\n\n@register_model\ndef plugin_twin_net(**kw):\n    pass\n"
    write(tmp_path / "net_a.py", timm_plugin)
    write(tmp_path / "net_b.py", timm_plugin)
    with pytest.raises(ConfigError) as err:
        load_study(tiny_study("name: p\nrecipe: recipe.yaml\nplugins: [./net_a.py, ./net_b.py]\n", "s3.yaml"))
    assert "timm model 'plugin_twin_net' is registered twice: by net_a.plugin_twin_net (plugin net_a.py) and by " \
           "net_b.plugin_twin_net" in str(err.value)  # fmt: skip


def test_a_module_plugin_beside_the_study_and_its_fingerprint(tiny_study, tmp_path, isolated):
    write(tmp_path / "my_pkg" / "__init__.py", "")
    write(tmp_path / "my_pkg" / "heads.py", "from my_pkg import impl  # noqa\n" + HEAD.format(cls="P", name="pkghead"))
    write(tmp_path / "my_pkg" / "impl.py", "WIDTH = 3\n")
    study = tiny_study("name: p\nrecipe: recipe.yaml\nplugins: [my_pkg.heads]\naxes: {model.head.name: [pkghead]}\n")
    load_study(study)  # my_pkg is not on sys.path: it is found beside the study
    (plugin,) = plugins.loaded()
    assert plugin.key == "my_pkg.heads" and plugin.sys_path == str(tmp_path)
    assert plugin.fingerprint.startswith("sha256:")

    (tmp_path / "my_pkg" / "impl.py").write_text("WIDTH = 4\n")  # another file of the package
    plugins.forget(["my_pkg.heads"])
    HEADS._entries.pop("pkghead")
    load_study(study)
    assert plugins.loaded()[0].fingerprint != plugin.fingerprint


def _job(config, run_dir, train_dir, progress):
    (train_dir / "model.pt").write_text("weights")
    return {"metrics": {"miou": 0.5, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8}, "trained": True}


def test_runs_made_by_other_plugin_code_are_stale_and_rerun_on_request(tiny_study, tmp_path, isolated):
    write(tmp_path / "my_heads.py", HEAD.format(cls="MyParams", name="myhead"))
    study = tiny_study("name: s\nrecipe: recipe.yaml\nplugins: [./my_heads.py]\n"
                       "axes: {model.head.name: [none, myhead]}\n")  # fmt: skip
    results = tmp_path / "results"
    run_study(study, results, _job)
    session = StudySession(study, {}, results)
    none, mine = session.runs
    record = session.store.read_metrics(mine)
    fingerprint = plugins.loaded()[0].fingerprint
    assert record["plugins"] == {"my_heads.py": fingerprint} and "plugins" not in session.store.read_metrics(none)
    made = session.store.trainings_dir / mine.train_id / "plugins.json"
    assert json.loads(made.read_text()) == {"my_heads.py": fingerprint}
    assert session.stale() == {}

    with (tmp_path / "my_heads.py").open("a") as f:
        f.write("# a comment is an edit too\n")
    plugins.forget(["my_heads.py"])
    HEADS._entries.pop("myhead")
    session = StudySession(study, {}, results)
    assert session.stale() == {mine.id: ["my_heads.py"]}  # the built-in head's run used no plugin code
    executor = LocalExecutor(max_parallel=1)
    assert session.todo(executor) == ([], [])  # a plain run reruns nothing

    session.reset_stale({mine.id})
    assert session.store.state(mine) == "pending" and session.store.state(none) == "done"
    assert not (session.store.trainings_dir / mine.train_id / "model.pt").exists()  # trained by other code: redone
    assert (session.store.trainings_dir / none.train_id / "model.pt").exists()
    todo, busy = session.todo(executor, only={mine.id})
    assert todo == [mine] and busy == []
    session.execute(executor, Quiet(), todo, busy, job=_job, rerun_stale=True)
    assert session.stale() == {} and session.store.state(mine) == "done"
    assert session.store.read_metrics(mine)["plugins"] == {"my_heads.py": plugins.loaded()[0].fingerprint}

    plugins.forget(["my_heads.py"])  # `ablate eval RUN_DIR` imports the run's plugins from its config.yaml
    HEADS._entries.pop("myhead")
    from ablate.train.eval_run import load_run

    recipe, _, _ = load_run(session.store.run_dir(mine), {})
    assert recipe.model.head.name == "myhead" and [p.key for p in plugins.loaded()] == ["my_heads.py"]


def _cli(args, cwd, env):
    return subprocess.run([sys.executable, "-m", "ablate.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


MY_HEAD = '''
"""A throwaway head in the user's own file: its parameters and its nn.Module."""
from typing import ClassVar, Literal

import torch
from torch import nn

from ablate.models.heads.base import HEADS, HeadParams


@HEADS.register
class GlobalContextParams(HeadParams):
    """A 1x1 conv plus the image's mean feature."""

    name: Literal["gcontext"] = "gcontext"
    channels: int = 16
    module: ClassVar[str] = "my_head:GlobalContext"


class GlobalContext(nn.Module):
    def __init__(self, in_channels: int, params: GlobalContextParams):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, params.channels, 1)
        self.out_channels = params.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + y.mean((2, 3), keepdim=True)
'''


@pytest.mark.slow
def test_the_example_package_installed_with_pip(tmp_path):
    """pip installs examples/ablate-plugin-example (its entry point) into a folder on PYTHONPATH; its head, data set
    and timm backbone and a file plugin's head then list, validate, run with worker processes and go stale."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "examples" / "ablate-plugin-example", source)
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
    subprocess.run([*pip, str(source)], check=True, capture_output=True)
    env = quiet_env(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), COLUMNS="200")
    work = tmp_path / "work"
    write(work / "my_head.py", MY_HEAD)
    shutil.copy(source / "recipe.yaml", work / "recipe.yaml")
    study = "name: ex\nrecipe: recipe.yaml\nplugins: [./my_head.py]\naxes: {model.head.name: [none, strip, %s]}\n"
    write(work / "study.yaml", study % "gcontext")
    write(work / "typo.yaml", study % "stirp")

    heads = _cli(["heads", "--plugin", "./my_head.py"], work, env)
    assert heads.returncode == 0 and "strip: Strip pooling" in heads.stdout and "gcontext: A 1x1" in heads.stdout
    assert "ppm: " in heads.stdout  # the built-in ones too
    datasets = _cli(["datasets", "bars"], work, env)
    assert datasets.returncode == 0 and "bars: Generated long thin bars" in datasets.stdout
    typo = _cli(["plan", "typo.yaml"], work, env)
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1, typo.stderr
    assert "unknown name 'stirp' (did you mean 'strip'?); allowed: " in typo.stderr and "gcontext" in typo.stderr

    results = work / "results" / "ex"
    first = _cli(["run", "study.yaml", "-j", "2", "--no-report"], work, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "(started)" in first.stdout  # worker processes
    runs = {json.loads(p.read_text())["axes"]["model.head.name"]: p.parent for p in results.glob("runs/*/metrics.json")}
    records = {head: json.loads((d / "metrics.json").read_text()) for head, d in runs.items()}
    assert all(r["status"] == "done" for r in records.values())
    example = records["strip"]["plugins"]["ablate_plugin_example"]
    assert example.startswith("ablate-plugin-example 0.1.0 sha256:")
    assert records["none"]["plugins"] == {"ablate_plugin_example": example}  # its data set and backbone
    assert set(records["gcontext"]["plugins"]) == {"ablate_plugin_example", "my_head.py"}

    with (work / "my_head.py").open("a") as f:
        f.write("# edited\n")
    status = _cli(["status", "study.yaml"], work, env)
    stale_lines = [line for line in status.stdout.splitlines() if line.strip().startswith("stale")]
    assert len(stale_lines) == 1 and runs["gcontext"].name in stale_lines[0] and "my_head.py" in stale_lines[0]
    mtimes = {head: (d / "metrics.json").stat().st_mtime_ns for head, d in runs.items()}
    again = _cli(["run", "study.yaml", "--no-report"], work, env)
    assert again.returncode == 0 and "3 finished, 0 to run" in again.stdout, again.stdout
    said = f"1 finished run was made by other plugin code than now (my_head.py): {runs['gcontext'].name}; "
    assert said + "`ablate run --rerun-stale` runs it again" in again.stdout
    assert mtimes == {head: (d / "metrics.json").stat().st_mtime_ns for head, d in runs.items()}
    rerun = _cli(["run", "study.yaml", "--rerun-stale", "--no-report"], work, env)
    assert rerun.returncode == 0 and "2 finished, 1 stale runs to rerun" in rerun.stdout, rerun.stdout
    changed = {head for head, d in runs.items() if (d / "metrics.json").stat().st_mtime_ns != mtimes[head]}
    assert changed == {"gcontext"} and json.loads((runs["gcontext"] / "metrics.json").read_text())["trained"]
    assert "stale" not in _cli(["status", "study.yaml"], work, env).stdout

    with (site / "ablate_plugin_example" / "modules.py").open("a") as f:  # the installed package's code
        f.write("# edited\n")
    status = _cli(["status", "study.yaml"], work, env)
    assert sum(line.strip().startswith("stale") for line in status.stdout.splitlines()) == 3
    assert "3 finished runs were made by other plugin code than now (ablate_plugin_example)" in status.stdout

    write(work / "dup.py", HEAD.format(cls="MyStrip", name="strip"))
    write(work / "dup.yaml", "name: d\nrecipe: recipe.yaml\nplugins: [./dup.py]\n")
    dup = _cli(["plan", "dup.yaml"], work, env)
    assert dup.returncode == 2 and dup.stderr.count("\n") == 1, dup.stderr
    assert "dup.yaml: plugins: ./dup.py: head 'strip' is registered twice: by ablate_plugin_example.heads" in dup.stderr
    assert f"and by dup.MyStrip ({work / 'dup.py'})" in dup.stderr
