"""Adaptive seeds in a study: the schema, the rounds (with a fake job, no torch), what the table says, and the
command line (on finished runs, so nothing trains)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from tests_helpers import Quiet, quiet_env
from typer.testing import CliRunner

from ablate.cli import app
from ablate.core.errors import ConfigError
from ablate.report import compare
from ablate.report.render import to_markdown
from ablate.study import adaptive
from ablate.study.executors.local import LocalExecutor
from ablate.study.grid import expand
from ablate.study.load import load_study
from ablate.study.session import StudySession

ADAPTIVE = """
name: ad
recipe: recipe.yaml
axes:
  model.head.rates: [[1], [2], [3], [4]]
seeds: {initial: 3, max: 8, effect: 1.0}
baseline: {model.head.rates: [1]}
"""
LISTED = ADAPTIVE.replace("seeds: {initial: 3, max: 8, effect: 1.0}", "seeds: [0, 1, 2]\ntable: {min_effect: 1.0}")
EFFECT = {1: 0.0, 2: 5.0, 3: 0.0, 4: 1.2}  # planted Δ (mIoU points) of each rate against the baseline (1)


def fake_job(config, run_dir, train_dir, progress):
    """A run's mIoU: the planted effect of its rate, plus noise that is a pure function of (rate, seed)."""
    rate, seed = config["model"]["head"]["rates"][0], config["seed"]
    value = 60 + EFFECT[rate] + np.random.default_rng(1000 * rate + seed).normal(0, 0.7) + 0.5 * seed % 3
    return {"metrics": {"miou": value / 100, "pixel_acc": 0.9, "mean_acc": 0.6, "fwiou": 0.8}}


def run_adaptive(path, results, plan=None, budget_s=None):
    session = StudySession(path, {}, results)
    if plan is not None:
        session.use_plan(plan)
    executor = LocalExecutor(max_parallel=1)
    todo, busy = session.todo(executor)
    started = time.monotonic()
    summary = session.execute(executor, Quiet(), todo, busy, job=fake_job)
    why = session.until_decided(executor, Quiet(), summary, budget_s, started, None, job=fake_job)
    return session, summary, why


def seeds_by_rate(session):
    out: dict[int, list[int]] = {}
    for run in session.runs:
        out.setdefault(run.axes["model.head.rates"][0], []).append(run.seed)
    return out


# ------------------------------------------------------------------------------------------------ schema
def test_adaptive_seeds_keep_the_run_ids_of_a_seed_list(tiny_study):
    adaptive_runs = expand(load_study(tiny_study(ADAPTIVE)))
    listed_runs = expand(load_study(tiny_study(LISTED, name="listed.yaml")))
    assert [r.id for r in adaptive_runs] == [r.id for r in listed_runs]  # seeds 0, 1, 2 of every configuration
    study = load_study(tiny_study(ADAPTIVE)).study
    assert study.initial_seeds == [0, 1, 2] and study.adaptive.seeds == [0, 1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ("{initial: 3, max: 3}", "study.yaml: seeds: max 3 must exceed initial 3"),
        ("{initial: 3, maxx: 8}", "study.yaml: seeds.maxx: unknown key 'maxx' (did you mean 'max'?)"),
        ("{initial: 1, max: 8}", "study.yaml: seeds.initial: Input should be greater than or equal to 2"),
        ("{boundary: steep}", "study.yaml: seeds.boundary: 'steep': expected obrien-fleming, pocock or a shape"),
        ("{budget: '10'}", "study.yaml: seeds.budget: '10': expected a duration with its unit"),
        ("[0, -1]", "study.yaml: seeds[1]: Input should be greater than or equal to 0"),
    ],
)
def test_bad_adaptive_seeds_are_one_line(tiny_study, seeds, expected):
    study = tiny_study(ADAPTIVE.replace("{initial: 3, max: 8, effect: 1.0}", seeds))
    result = CliRunner().invoke(app, ["plan", str(study)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert expected in result.output, result.output


def test_seeds_option_on_adaptive_seeds_gives_the_initial_ones(tiny_study):
    """``--seeds 8,9,10``: a disjoint set of initial seeds; the added ones follow the largest, up to max."""
    study = load_study(tiny_study(ADAPTIVE), seeds=[10, 8, 9]).study
    assert study.initial_seeds == [10, 8, 9] and study.adaptive.seeds == [10, 8, 9, 11, 12, 13, 14, 15]
    plan = adaptive.study_plan(study)
    assert plan.initial == 3 and plan.seeds == (10, 8, 9, 11, 12, 13, 14, 15) and plan.effect == 1.0
    assert load_study(tiny_study(ADAPTIVE), seeds=[20, 21, 22, 23]).study.adaptive.seeds[4:] == [24, 25, 26, 27]
    for seeds, message in (([8], "give 2 to 7 initial seeds"), (list(range(8)), "give 2 to 7 initial seeds"),
                           ([8, 8], "seed 8 is given twice")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            load_study(tiny_study(ADAPTIVE), seeds=seeds)


def test_adaptive_seeds_need_a_baseline(tiny_study):
    with pytest.raises(ConfigError, match="seeds: adaptive seeds are added where a row's comparison with the "):
        load_study(tiny_study(ADAPTIVE.replace("baseline: {model.head.rates: [1]}", "")))


def test_plan_of_a_seed_list_with_until_decided(tiny_study):
    study = load_study(tiny_study(LISTED)).study
    assert adaptive.resolve(study, False, None, None) == (None, None)
    plan, budget = adaptive.resolve(study, True, 6, "1h30m")
    assert plan.seeds == (0, 1, 2, 3, 4, 5) and plan.initial == 3 and budget == 5400
    assert plan.effect == 1.0 and plan.alpha == 0.05 and plan.shape == 0.25
    with pytest.raises(ConfigError, match="--max-seeds 3: must exceed the study's 3 seeds"):
        adaptive.resolve(study, True, 3, None)
    with pytest.raises(ConfigError, match="--budget: goes with --until-decided"):
        adaptive.resolve(study, False, None, "10m")
    with pytest.raises(ConfigError, match="--budget '10': expected a duration"):
        adaptive.resolve(study, True, None, "10")


# ------------------------------------------------------------------------------------------------ the rounds
def test_seeds_are_added_only_where_undecided_and_paired(tiny_study, tmp_path):
    session, summary, why = run_adaptive(tiny_study(ADAPTIVE), tmp_path / "r")
    seeds = seeds_by_rate(session)
    # (2) +5: significant after one more seed; (3) no effect: its interval falls inside ±1 at 5 seeds; (4) +1.2
    # with more noise: still undecided at the maximum
    assert {r: len(s) for r, s in seeds.items()} == {1: 8, 2: 4, 3: 5, 4: 8}, seeds
    assert why == "max" and len(summary.done) == 25 and not summary.failed
    assert all(s == list(range(len(s))) for s in seeds.values())  # the design's order: 0, 1, 2, then 3, 4, ...
    # every added seed went to a row undecided on the data of its time (the first k seeds of every row) and a
    # row got no seed once decided: recomputed here from the runs
    design = session.plan.design
    df = session.collect()
    done = df[df["status"] == "done"]
    from ablate.report.table import summarize

    summary_frame = summarize(df, ["model.head.rates"], session.study.baseline, "miou", design)
    base = summary_frame.index[summary_frame["baseline"]][0]
    for k in range(3, 9):
        _, _, decided = compare.sequential_tests(done, ["model.head.rates"], summary_frame, base, "miou", design, k)
        for i, decision in decided.items():
            rate = int(summary_frame.loc[i, "model.head.rates"].strip("()"))
            if len(seeds[rate]) > k:
                assert decision == "undecided", (rate, k)
            elif len(seeds[rate]) == k and k < 8:
                assert decision != "undecided", (rate, k)
    log = json.loads((tmp_path / "r" / "ad" / "seeds.json").read_text())
    assert log == {"plan": {"seeds": list(range(8)), "initial": 3, "alpha": 0.05, "effect": 1.0, "shape": 0.25,
                            "step": 1}, "stopped": None}  # fmt: skip


def test_table_says_which_rows_got_seeds_and_why(tiny_study, tmp_path):
    path = tiny_study(ADAPTIVE)
    run_adaptive(path, tmp_path / "r")
    t = StudySession(path, {}, tmp_path / "r").table()  # a later `ablate table`: the added seeds are found again
    text = to_markdown(t)
    assert list(t.summary["n"]) == [8, 4, 5, 8]
    assert list(t.summary["decision_miou"]) == ["", "significant", "smaller than the effect", "undecided"]
    assert "group-sequential paired t-test" in set(t.summary["test_miou"])
    notes = [n for n in t.footnote if n.startswith("rates=")]
    assert notes[0] == "rates=(1) (baseline): 3 -> 8 seeds, paired with the rows that got them."
    assert notes[1].startswith("rates=(2): 3 -> 4 seeds, undecided at 3 (p 0.080, Holm 0.241, RCI [-2.37, +12.82]); "
                               "significant at 4 (p ")  # fmt: skip
    assert notes[2].startswith("rates=(3): 3 -> 5 seeds, undecided at 3 (") and "|Δ| < 1 at 5 (RCI [" in notes[2]
    assert notes[3].startswith("rates=(4): 3 -> 8 seeds, undecided at 3 (")
    assert "still undecided at the maximum of 8 seeds" in notes[3]
    assert "Seeds: 3 per configuration, then 1 at a time, paired with the baseline's" in text
    assert "+5.07*" in text  # Δ marked by the sequential test after Holm


def test_budget_stops_the_rounds_and_the_table_says_so(tiny_study, tmp_path):
    path = tiny_study(ADAPTIVE)
    session, summary, why = run_adaptive(path, tmp_path / "r", budget_s=0.0)
    assert why == "budget" and len(summary.done) == 12  # the initial seeds only
    assert json.loads((tmp_path / "r" / "ad" / "seeds.json").read_text())["stopped"] == "budget"
    notes = StudySession(path, {}, tmp_path / "r").table().footnote
    assert any(n.startswith("rates=(2): undecided at 3 (p 0.080") and n.endswith(": the time budget ran out.")
               for n in notes), notes


def test_until_decided_on_a_seed_list_is_remembered(tiny_study, tmp_path):
    """--until-decided on a study with seeds [0, 1, 2]: the table afterwards (without the flag) still finds the
    added seeds and tests with the plan they were added by; the reproduce command carries the flag."""
    path = tiny_study(LISTED)
    plan, _ = adaptive.resolve(load_study(path).study, True, 8, None)
    run_adaptive(path, tmp_path / "r", plan=plan)
    later = StudySession(path, {}, tmp_path / "r")
    assert later.plan == plan and len(later.runs) == 25
    assert later.resume_command() == f"ablate run {path} --until-decided --max-seeds 8 --results {tmp_path / 'r'}"
    plain = StudySession(tiny_study(LISTED, name="other.yaml"), {}, tmp_path / "elsewhere")
    assert plain.plan is None and len(plain.runs) == 12


def test_cli_until_decided_on_finished_runs(tiny_study, tmp_path, monkeypatch):
    """The command line: finished runs (the fake job's), then `ablate run --until-decided --budget 0s` plans the
    next round, refuses it for the budget and prints the table with the note; nothing trains."""
    path = tiny_study(LISTED)
    session = StudySession(path, {}, tmp_path / "r")
    executor = LocalExecutor(max_parallel=1)
    session.execute(executor, Quiet(), *session.todo(executor), job=fake_job)
    for key, value in quiet_env().items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--until-decided",
                                      "--budget", "0s", "--no-report"], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "seeds: the time budget is spent: 4 more run(s)" in result.output
    assert "the time budget ran out" in result.output and "(trained)" not in result.output
    result = CliRunner().invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--budget", "1m"])
    assert result.exit_code == 2 and "--budget: goes with --until-decided" in result.output
