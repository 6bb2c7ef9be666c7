"""Adaptive seeds: after its first seeds, a study adds seeds (paired: the baseline's too) only to the rows whose
comparison with the baseline is still undecided, until each is decided, has the maximum, or the time budget is
spent. The rule and its error control are ``ablate.report.sequential``'s; this file plans the seeds, runs the
rounds on the study's executor and keeps results/<study>/seeds.json (the plan the seeds were added by, so the
table analyses them with it, and why adding stopped). Torch-free."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.markup import escape

from ablate.core.errors import ConfigError
from ablate.core.files import atomic_write
from ablate.core.text import format_value, parse_duration, plural
from ablate.report.sequential import SIGNIFICANT, SMALLER, UNDECIDED
from ablate.study.grid import Run, combo_key, effective, make_run
from ablate.study.spec import AdaptiveSeeds, Study

LOG = "seeds.json"


@dataclass(frozen=True)
class SeedPlan:
    """``seeds``: every seed a configuration may get, in the order they are added (the ``initial`` ones first);
    decided at ``alpha`` (family-wise) or against ``effect`` (metric points) with the boundary ``shape``; ``step``
    seeds added per undecided row and round. ``stopped``: "budget" when the time budget ended the adding."""

    seeds: tuple[int, ...]
    initial: int
    alpha: float = 0.05
    effect: float = 1.0
    shape: float = 0.25
    step: int = 1
    stopped: str | None = None

    @property
    def max(self) -> int:
        return len(self.seeds)

    @property
    def design(self) -> Any:
        from ablate.report.sequential import Design

        return Design(self.initial, self.max, self.alpha, self.effect, self.shape, tuple(self.seeds))


def study_plan(study: Study, max_seeds: int | None = None) -> SeedPlan | None:
    """The plan of a study with ``seeds: {initial, max, ...}`` (``max_seeds`` in place of its max); None for a
    list of seeds."""
    spec = study.adaptive
    if spec is None:
        return None
    if max_seeds is not None:
        if max_seeds <= spec.initial:
            raise ConfigError(f"--max-seeds {max_seeds}: must exceed the study's {spec.initial} initial seeds")
        spec = spec.model_copy(update={"max": max_seeds})
    effect = spec.effect if spec.effect is not None else study.table.min_effect
    return SeedPlan(tuple(spec.seeds), spec.initial, spec.alpha, effect, spec.boundary, spec.step)


def list_plan(study: Study, max_seeds: int | None = None) -> SeedPlan:
    """``--until-decided`` on a study with a list of seeds: those first, then the next integers above the largest
    up to ``max_seeds`` (default: adaptive seeds' default max), with adaptive seeds' defaults."""
    seeds = list(study.initial_seeds)
    defaults = AdaptiveSeeds.model_fields
    total = max_seeds if max_seeds is not None else defaults["max"].default
    if len(seeds) < 2:
        raise ConfigError(f"--until-decided: the study has {plural(len(seeds), 'seed')}; a paired test needs at least "
                          "2 to start from (give seeds: [0, 1, 2], or seeds: {initial: 3, max: 8})")  # fmt: skip
    if total <= len(seeds):
        raise ConfigError(f"--max-seeds {total}: must exceed the study's {len(seeds)} seeds")
    extra = [max(seeds) + 1 + i for i in range(total - len(seeds))]
    return SeedPlan(tuple(seeds + extra), len(seeds), defaults["alpha"].default, study.table.min_effect,
                    defaults["boundary"].default, defaults["step"].default)  # fmt: skip


def read_log(root: Path, study: Study) -> SeedPlan | None:
    """The plan an earlier ``ablate run`` added seeds by (results/<study>/seeds.json); None without one, or when
    the study's initial seeds changed since (the log is then about other runs)."""
    try:
        data = json.loads((root / LOG).read_text())
        plan = SeedPlan(**{**data["plan"], "seeds": tuple(data["plan"]["seeds"]), "stopped": data.get("stopped")})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return plan if list(plan.seeds[: plan.initial]) == list(study.initial_seeds) else None


def write_log(root: Path, plan: SeedPlan) -> None:
    plan_fields = {k: v for k, v in asdict(plan).items() if k != "stopped"}
    plan_fields["seeds"] = list(plan.seeds)
    atomic_write(root / LOG, json.dumps({"plan": plan_fields, "stopped": plan.stopped}, indent=1) + "\n")


def added_seeds(loaded: Any, plan: SeedPlan | None, exists: Callable[[Run], bool],
                combos: list[dict[str, Any]]) -> dict[str, list[int]]:  # fmt: skip
    """The seeds beyond the initial ones that earlier rounds gave each combination (their run folders exist)."""
    if plan is None:
        return {}
    out: dict[str, list[int]] = {}
    for axes in combos:
        overrides = effective(loaded, axes)
        seeds = [s for s in plan.seeds[plan.initial :] if exists(make_run(loaded, axes, s, overrides))]
        if seeds:
            out[combo_key(axes)] = seeds
    return out


def resolve(study: Study, until_decided: bool, max_seeds: int | None, budget: str | None) -> tuple[
        SeedPlan | None, float | None]:  # fmt: skip
    """The plan and time budget (s) of an ``ablate run``: the study's adaptive seeds, or with ``--until-decided``
    its list of seeds extended; None (a fixed list) otherwise."""
    if not until_decided and study.adaptive is None:
        for flag, value in (("--max-seeds", max_seeds), ("--budget", budget)):
            if value is not None:
                raise ConfigError(f"{flag}: goes with --until-decided (or a study with seeds: {{initial, max}})")
        return None, None
    if not study.baseline:
        raise ConfigError("adaptive seeds compare each row with the baseline: give the study a baseline")
    plan = study_plan(study, max_seeds) if study.adaptive is not None else list_plan(study, max_seeds)
    text = budget if budget is not None else (study.adaptive.budget if study.adaptive is not None else None)
    try:
        seconds = parse_duration(text) if text is not None else None
    except ValueError as exc:
        raise ConfigError(f"--budget {exc}") from None
    return plan, seconds


# ------------------------------------------------------------------------------------------------ the rounds
@dataclass
class Row:
    """A configuration of the table: its axis values, runs assigned so far, and where its comparison stands."""

    axes: dict[str, Any]
    assigned: int
    baseline: bool
    decision: str = ""
    test: Any = None
    holm: float | None = None


def rows_now(session: Any, plan: SeedPlan) -> list[Row]:
    """Every configuration with its decision from the runs finished so far (the table's own computation)."""
    from ablate.report import compare
    from ablate.report.table import summarize

    study = session.study
    metric, axes = study.table.metric, list(study.axes)
    combos: dict[tuple[str, ...], dict[str, Any]] = {}
    assigned: dict[tuple[str, ...], int] = {}
    for run in session.runs:
        key = tuple(format_value(run.axes[a]) for a in axes)
        combos.setdefault(key, run.axes)
        assigned[key] = assigned.get(key, 0) + 1
    df = session.collect()
    summary = summarize(df, axes, study.baseline, metric, plan.design)
    tests: dict[Any, Any] = {}
    if summary["baseline"].any():
        base = summary.index[summary["baseline"]][0]
        tests = compare.sequential_tests(df[df["status"] == "done"], axes, summary, base, metric, plan.design)[0]
    rows = []
    for i, srow in summary.iterrows():
        key = tuple(str(srow[a]) for a in axes)
        holm = srow.get(f"p_holm_{metric}")
        rows.append(Row(combos[key], assigned[key], bool(srow["baseline"]), str(srow.get(f"decision_{metric}", "")),
                        tests.get(i), None if holm is None or holm != holm else float(holm)))  # fmt: skip
    return rows


def next_round(session: Any, plan: SeedPlan, rows: list[Row]) -> tuple[list[Run], list[Row]]:
    """The runs of the next round: ``step`` more seeds for every undecided row below the maximum, and the
    baseline's seeds up to the most any row then has (the pairs); and the rows that get them."""
    growing = [r for r in rows if not r.baseline and r.decision not in (SIGNIFICANT, SMALLER) and r.assigned < plan.max]
    if not growing:
        return [], []
    loaded = session.loaded
    new: list[Run] = []
    target = 0
    for row in growing:
        upto = min(plan.max, row.assigned + plan.step)
        target = max(target, upto)
        new += [make_run(loaded, row.axes, s) for s in plan.seeds[row.assigned : upto]]
    for row in rows:
        if row.baseline and row.assigned < target:
            new += [make_run(loaded, row.axes, s) for s in plan.seeds[row.assigned : target]]
    known = {r.id for r in session.runs}
    return [r for r in new if r.id not in known], growing


def _state(row: Row) -> str:
    """``rates=(4) undecided at 3 (p 0.223, Holm 0.446, RCI [-2.04, +3.77])``"""
    label = " ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in row.axes.items())
    test = row.test
    if test is None or test.p is None:
        return f"{label} ({test.n if test else 0} pairs: no test yet)"
    interval = "" if test.low is None else f", RCI [{test.low:+.2f}, {test.high:+.2f}]"
    holm = f", Holm {row.holm:.3f}" if row.holm is not None else ""
    return f"{label} undecided at {test.n} (p {test.p:.3f}{holm}{interval})"


def until_decided(session: Any, console: Any, plan: SeedPlan, budget_s: float | None, started: float,
                  run_round: Callable[[list[Run]], Any], wall_per_run: float | None = None) -> str:  # fmt: skip
    """Add seeds round after round (``run_round`` runs a round's runs and returns when they are done); returns why
    it stopped: "decided", "max" or "budget". ``wall_per_run``: the wall time per run of the runs this command ran
    before (jobs in parallel included), for the budget's estimate."""
    root = session.store.root
    root.mkdir(parents=True, exist_ok=True)
    write_log(root, plan)
    durations: list[float] = [wall_per_run] if wall_per_run else []  # wall time per run of the rounds so far
    while True:
        rows = rows_now(session, plan)
        new, growing = next_round(session, plan, rows)
        if not new:
            undecided = [r for r in rows if not r.baseline and r.decision == UNDECIDED]
            why = "max" if undecided else "decided"
            console.print("seeds: every comparison is decided" if why == "decided" else
                          f"seeds: {plural(len(undecided), 'row')} still undecided at the maximum of {plan.max} seeds")
            return why
        if budget_s is not None:
            per_run = _per_run(session, durations)
            needed = max(per_run["one"], per_run["wall"] * len(new))
            left = budget_s - (time.monotonic() - started)
            if needed > left:
                session.plan = replace(plan, stopped="budget")  # the table says why these rows stay undecided
                write_log(root, session.plan)
                console.print(f"seeds: the time budget is spent: {len(new)} more run(s) would take about "
                              f"{needed / 60:.1f} min, {max(0.0, left) / 60:.1f} min left; "
                              f"{plural(len(growing), 'row')} stay undecided")  # fmt: skip
                return "budget"
        shown = "; ".join(_state(r) for r in growing)
        console.print(f"seeds: {len(new)} more run(s) (the baseline's paired with them) for {escape(shown)}")
        session.add_runs(new)
        began = time.monotonic()
        run_round(new)
        durations.append((time.monotonic() - began) / max(1, len(new)))


def _per_run(session: Any, durations: list[float]) -> dict[str, float]:
    """Seconds a run takes alone (``one``: the mean of the finished runs' durations) and per run of a round when
    several run at once (``wall``: the rounds so far, else ``one``)."""
    spent = [float(r.get("duration_s") or 0) for r in (session.store.read_metrics(run) for run in session.runs)
             if r and r.get("status") == "done" and r.get("trained", True)]  # fmt: skip
    one = sum(spent) / len(spent) if spent else 0.0
    wall = sum(durations) / len(durations) if durations else one
    return {"one": one, "wall": wall if math.isfinite(wall) else one}
