"""Bad input: one line naming the file and the key, exit code 2, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.core.errors import ConfigError
from ablate.study.load import load_study

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result, result.output.strip()


CASES = {
    "misspelled_axis_key": (
        """
        name: s
        recipe: recipe.yaml
        axes: {model.hed.rates: [[6]]}
        """,
        ["study.yaml", "axes.model.hed.rates", "unknown key 'hed'", "did you mean 'head'"],
    ),
    "misspelled_top_key": (
        """
        name: s
        recipe: recipe.yaml
        axis: {model.output_stride: [8]}
        """,
        ["study.yaml", "axis", "did you mean 'axes'"],
    ),
    "wrong_type": (
        """
        name: s
        recipe: recipe.yaml
        axes: {train.steps: [ten]}
        """,
        ["study.yaml", "axes.train.steps", "integer", "'ten'"],
    ),
    "out_of_range": (
        """
        name: s
        recipe: recipe.yaml
        axes: {model.output_stride: [12]}
        """,
        ["study.yaml", "axes.model.output_stride", "8, 16, 32, 64, 128 or 256"],
    ),
    "missing_recipe": (
        """
        name: s
        recipe: nowhere.yaml
        """,
        ["study.yaml", "recipe", "file not found", "nowhere.yaml"],
    ),
    "unknown_head": (
        """
        name: s
        recipe: recipe.yaml
        axes: {model.head: [{name: asp}]}
        """,
        ["study.yaml", "axes.model.head", "unknown name 'asp'", "did you mean 'aspp'", "allowed:"],
    ),
    "baseline_not_an_axis": (
        """
        name: s
        recipe: recipe.yaml
        axes: {model.output_stride: [8, 16]}
        baseline: {model.output_strid: 16}
        """,
        ["study.yaml", "baseline.model.output_strid", "did you mean 'model.output_stride'"],
    ),
    "negative_seed": (
        "name: s\nrecipe: recipe.yaml\nseeds: [-1]\n",
        ["study.yaml", "seeds[0]", "greater than or equal to 0", "-1"],
    ),
    "seed_too_large": (
        "name: s\nrecipe: recipe.yaml\nseeds: [0, 4294967296]\n",
        ["study.yaml", "seeds[1]", "less than or equal to 4294967295"],
    ),
    "repeated_seed": (
        "name: s\nrecipe: recipe.yaml\nseeds: [0, 1, 0]\n",
        ["study.yaml", "seeds", "seed 0 is given twice"],
    ),
    "baseline_value_not_in_grid": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16]}\nbaseline: {model.output_stride: 4}\n",
        ["study.yaml", "baseline.model.output_stride", "4 is not a value of axis model.output_stride", "8, 16"],
    ),
    "include_value_not_in_grid": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16]}\ninclude: [{model.output_stride: 32}]\n",
        ["study.yaml", "include[0].model.output_stride", "32 is not a value of axis"],
    ),
    "exclude_value_not_in_grid": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16]}\nexclude: [{model.output_stride: 4}]\n",
        ["study.yaml", "exclude[0].model.output_stride", "4 is not a value of axis"],
    ),
    "repeated_axis_value": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16, 8]}\n",
        ["study.yaml", "axes.model.output_stride", "8 is given twice"],
    ),
    "repeated_zipped_values": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 8], train.steps: [2, 2]}\n"
        "zip: [[model.output_stride, train.steps]]\n",
        ["study.yaml", "zip[0]", "(model.output_stride=8, train.steps=2) is given twice"],
    ),
    "everything_excluded": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8]}\nexclude: [{model.output_stride: 8}]\n",
        ["study.yaml", "exclude", "no run is left"],
    ),
    "baseline_not_a_zipped_combination": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16], train.steps: [2, 3]}\n"
        "zip: [[model.output_stride, train.steps]]\nbaseline: {model.output_stride: 8, train.steps: 3}\n",
        ["study.yaml", "baseline", "no configuration of the grid has model.output_stride=8, train.steps=3"],
    ),
    "two_axis_values_are_one_run": (
        "name: s\nrecipe: recipe.yaml\naxes: {model.head: [{name: aspp, rates: [2, 4], channels: 16},"
        " {name: aspp, rates: [2, 4], channels: 16, dropout: 0.1}]}\n",
        ["study.yaml", "axes", "are the same run"],
    ),
    "batch_larger_than_the_data": (
        "name: s\nrecipe: recipe.yaml\nset: {train.batch_size: 32}\n",
        ["study.yaml", "train.batch_size", "32", "data.num_train", "16"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_study_is_one_line_exit_2(tiny_study, case):
    body, expected = CASES[case]
    study = tiny_study(body)
    result, out = _run("run", str(study), "--results", str(study.parent / "results"))
    assert result.exit_code == 2, out
    assert len(out.splitlines()) == 1, out
    assert "Traceback" not in out
    for fragment in expected:
        assert fragment in out, (fragment, out)
    assert not (study.parent / "results").exists()  # nothing ran


def test_bad_recipe_names_the_recipe_file(tiny_study, tmp_path):
    (tmp_path / "bad.yaml").write_text("model: {head: {name: aspp, rate: [6]}}\n")
    study = tiny_study("name: s\nrecipe: bad.yaml\n")
    result, out = _run("plan", str(study))
    assert result.exit_code == 2
    assert "bad.yaml: model.head.rate: unknown key 'rate' (did you mean 'rates'?)" in out


def test_unknown_backbone_is_refused_before_training(tiny_study):
    study = tiny_study("name: s\nrecipe: recipe.yaml\naxes: {model.backbone: [test_resnet, resnet5x]}\n")
    result, out = _run("run", str(study), "--results", str(study.parent / "results"))
    assert result.exit_code == 2, out
    assert len(out.splitlines()) == 1
    assert "study.yaml: axes.model.backbone" in out and "unknown timm model 'resnet5x'" in out
    assert not (study.parent / "results").exists()


def test_backbone_that_cannot_dilate_is_refused(tiny_study):
    study = tiny_study("name: s\nrecipe: recipe.yaml\nset: {model.backbone: vgg11, model.output_stride: 8}\n")
    result, out = _run("run", str(study), "--results", str(study.parent / "results"))
    assert result.exit_code == 2, out
    assert "set.model.output_stride" in out and "cannot run at output stride 8" in out and "output_stride: 32" in out


CLI_CASES = {
    "set_on_an_axis": (
        ["--set", "model.output_stride=32"],
        ["--set model.output_stride", "is an axis of", "study.yaml", "change its values in the study's axes"],
    ),
    "set_inside_an_axis": (["--set", "model.head.rates=[1]"], ["--set model.head.rates", "is an axis"]),
    "set_on_a_rule_key": (
        ["--set", "model.output_stride=8"],
        ["--set model.output_stride", "used by rules[0].with"],
    ),
    "zero_threads": (["--threads", "0"], ["--threads", "greater than or equal to 1", "ablate run --help"]),
    "zero_jobs": (["-j", "0"], ["--max-parallel", "greater than or equal to 1"]),
    "unknown_option": (["--thread", "2"], ["No such option: --thread", "--threads"]),
    "unknown_executor": (["--executor", "kubernetes"], ["--executor kubernetes", "allowed: local, slurm"]),
    "unknown_wandb_mode": (["--wandb", "loud"], ["--wandb loud", "expected one of"]),
}
STUDIES = {
    "set_on_a_rule_key": "name: s\nrecipe: recipe.yaml\naxes: {model.head.rates: [[6], [6, 12]]}\n"
    "rules: [{scale: model.head.rates, with: model.output_stride, reference: 16}]\n",
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_command_line_is_one_line_exit_2(tiny_study, case):
    args, expected = CLI_CASES[case]
    default = "name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16], model.head.rates: [[2]]}\n"
    body = STUDIES.get(case, default)
    study = tiny_study(body)
    result, out = _run("run", str(study), "--results", str(study.parent / "results"), *args)
    assert result.exit_code == 2, out
    assert len(out.splitlines()) == 1 and "Traceback" not in out, out
    for fragment in expected:
        assert fragment in out, (fragment, out)
    assert not (study.parent / "results").exists()  # nothing ran


def test_bad_cli_override(tiny_study):
    study = tiny_study("name: s\nrecipe: recipe.yaml\n")
    result, out = _run("plan", str(study), "--set", "train.stepz=3")
    assert result.exit_code == 2
    assert "--set train.stepz" in out and "did you mean 'steps'" in out


@pytest.mark.parametrize("body", ["", "  \n\n\t\n", "# only a comment\n"])
@pytest.mark.parametrize("command", ["run", "plan"])
def test_empty_study_file_is_one_line_exit_2(tiny_study, body, command):
    """An empty (or whitespace/comment-only) file is a mistake, not a recipe with every default: nothing trains."""
    study = tiny_study(body, name="empty.yaml")
    result, out = _run(command, str(study), "--results", str(study.parent / "results"))
    assert result.exit_code == 2, out
    assert out.splitlines() == [f"error: {study}: the file is empty; a study names its recipe and axes (e.g. "
                                "studies/aspp_rates.yaml), a recipe its data, model, train and eval sections (e.g. "
                                "recipes/synthetic.yaml)"], out  # fmt: skip
    assert not (study.parent / "results").exists()  # nothing ran


def test_empty_recipe_file_is_refused(tiny_study):
    study = tiny_study("name: s\nrecipe: blank.yaml\n")
    (study.parent / "blank.yaml").write_text("\n   \n")
    with pytest.raises(ConfigError, match=r"blank.yaml: the file is empty"):
        load_study(study)


def test_yaml_syntax_error_names_line(tiny_study):
    study = tiny_study("name: s\nrecipe: recipe.yaml\naxes: {model.output_stride: [8, 16}\n")
    with pytest.raises(ConfigError, match=r"study.yaml: YAML syntax error \(line 3"):
        load_study(study)


def test_help_describes_every_option():
    result, out = _run("run", "--help")
    assert result.exit_code == 0
    for option in ("--results", "--set", "STUDY"):
        assert option in out
    result, out = _run("--help")
    for command in ("run", "plan", "table"):
        assert command in out
