"""``ablate run``: run what is left of a study, then its table, report and W&B summary run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ablate.cli.app import app
from ablate.cli.console import console, err_console, user_errors
from ablate.cli.options import (
    WANDB_MODES,
    AxisOpt,
    RecipeOpt,
    ResultsOpt,
    SaveStudyOpt,
    SeedsOpt,
    SetOpt,
    StudyArg,
    WandbOpt,
)
from ablate.cli.session_io import print_and_save_table, print_stale, session_of, write_report
from ablate.core import signals
from ablate.core.errors import ConfigError


@app.command()
def run(
    study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None, axis: AxisOpt = None,
    seeds: SeedsOpt = None, save_study: SaveStudyOpt = None, recipe: RecipeOpt = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run again only the runs that failed before (nothing else).")
    ] = False,
    rerun_stale: Annotated[
        bool,
        typer.Option(
            "--rerun-stale",
            help="Run again only the finished runs made by other plugin code than now (`ablate status` names "
            "them), with their trainings where those were made by other plugin code.",
        ),
    ] = False,
    max_parallel: Annotated[
        int | None,
        typer.Option(
            "--max-parallel",
            "-j",
            min=1,
            help="Jobs at once on this machine, each in a worker process with its own GPUs (train.devices) or its "
            "CPU threads. Default: one per free GPU set; on a CPU-only machine, one per free core.",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads of each CPU job (default 1). More make one training faster but change its last "
            "digits (the order of floating-point sums); fewer jobs then fit at once.",
            show_default=False,
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option("--executor", "-e", help="local or slurm; overrides the study's executor.", show_default=False),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="SLURM: submit and exit without waiting; run again later to collect.")
    ] = False,
    wandb: WandbOpt = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.html/report.md at the end.")
    ] = True,
    until_decided: Annotated[
        bool,
        typer.Option(
            "--until-decided",
            help="After the study's seeds, add seeds (paired: the baseline's too) only to the rows whose "
            "comparison with the baseline is still undecided, until each is decided, has --max-seeds, or --budget "
            "is spent (a group-sequential test: its false-positive rate stays at 0.05). A study with seeds: "
            "{initial: 3, max: 8} does this by itself.",
        ),
    ] = False,
    max_seeds: Annotated[
        int | None,
        typer.Option("--max-seeds", min=3, help="Adaptive seeds: the most seeds a configuration gets (default: "
                     "the study's seeds.max, else 8).", show_default=False),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option("--budget", help="Adaptive seeds: no new round of seeds once it would end after this time "
                     "from the start of the command, e.g. 10m, 1h30m.", show_default=False),
    ] = None,
) -> None:
    """Run every run of STUDY that is not finished yet, then print and save its comparison table and its report,
    and log a W&B summary run (see --wandb).

    Finished runs (results/<study>/runs/<id>/metrics.json with status done) are skipped, so running a study again
    only does what is left; an interrupted training resumes from its last checkpoint. Runs that differ only in
    `eval.` keys share one training. A run that fails is recorded with its error and the study goes on; the exit
    code is then 1 (`--retry-failed` runs those again). Ctrl-C or SIGTERM writes a checkpoint and exits with 130 or
    143. Bad input exits with code 2 and a one-line message.
    """
    started = time.monotonic()
    signals.install()
    from ablate.study import adaptive

    with user_errors():
        session = session_of(study, set_, results, axis, seeds, save_study, recipe)
        if wandb is not None and wandb.lower() not in WANDB_MODES:
            raise ConfigError(f"--wandb {wandb}: expected one of {', '.join(WANDB_MODES)}")
        plan, budget_s = adaptive.resolve(session.study, until_decided, max_seeds, budget)
        if plan is not None:
            session.use_plan(plan)
        exec_cfg = session.executor(executor, max_parallel=max_parallel, threads=threads, detach=detach or None)
        if rerun_stale and retry_failed:
            raise ConfigError("--rerun-stale and --retry-failed: give one at a time")
        stale = session.stale()
        if rerun_stale:
            from ablate.train.preflight import preflight

            preflight((r.config for r in session.runs if r.id in stale), session.loaded.source_of)
            session.reset_stale(set(stale))
        todo, busy = session.todo(exec_cfg, retry_failed, only=set(stale) if rerun_stale else None)
        if todo and not rerun_stale:
            from ablate.train.preflight import preflight

            preflight((r.config for r in todo), session.loaded.source_of)
    from ablate.study import wandb_sink

    ctx = wandb_sink.settings(session.study.name, results, session.study.wandb, wandb)
    wandb_sink.export(ctx)  # jobs in this process, worker processes and SLURM jobs inherit it
    if ctx["mode"] != "disabled":
        where = f"project {ctx['project']}, group {ctx['group']}, files in {ctx['dir']}/wandb"
        console.print(f"W&B: {ctx['mode']} ({where})")
    try:
        with session.workers(exec_cfg):  # adaptive seeds' rounds run on the same worker processes
            began = time.monotonic()
            summary = session.execute(exec_cfg, console, todo, busy, retry_failed=retry_failed,
                                  rerun_stale=rerun_stale)
            if plan is not None and summary.waited and not retry_failed:
                wall = (time.monotonic() - began) / len(todo) if todo else None
                session.until_decided(exec_cfg, console, summary, budget_s, started, wall)
    except signals.Interrupted as stop:
        where = f" {stop.where}" if stop.where else ""
        err_console.print(
            f"interrupted by {stop.name}:{where}; checkpoint saved. Resume with: {session.resume_command()}",
            markup=False,
        )
        raise typer.Exit(stop.exit_code) from None
    if not summary.waited:
        return
    _publish(session, ctx, report)
    t = session.table()
    if t.failures:
        console.print(f"[red]{len(t.failures)} run(s) failed[/red]: `ablate run --retry-failed` runs them again")
    if summary.busy:
        console.print(f"{len(summary.busy)} run(s) are being run by another process; run again when it is done.")
    if not rerun_stale:
        print_stale(session, stale)
    if t.failures or t.missing:
        raise typer.Exit(1)


def _publish(session, ctx: dict[str, Any], report: bool) -> None:
    """The table, then the report and the W&B summary run, each only when the table changed since it was made."""
    from ablate.study import wandb_sink

    t = print_and_save_table(session)
    marks = session.outputs()
    wandb_key = f"{ctx['mode']}|{ctx['project']}|{marks.digest}"
    need_wandb = ctx["mode"] != "disabled" and not marks.same("wandb", wandb_key)
    rep = None
    if report and (need_wandb or not marks.same("report", marks.digest, session.store.root / "report.html")):
        rep = write_report(session, t)
        marks.set("report", marks.digest)
    elif report:
        console.print(f"report: {session.store.root / 'report.html'} (unchanged: its table is the same)", markup=False)
    if need_wandb:
        setup = {"study": session.study.model_dump(mode="json"), "recipe": session.loaded.recipe}
        try:
            where = wandb_sink.log_study_summary(ctx, t, rep.images if rep is not None else {}, setup)
            console.print(f"W&B summary run: {where}", markup=False)
            marks.set("wandb", wandb_key)
        except Exception as exc:  # noqa: BLE001 - the table and report are written; W&B is a copy
            err_console.print(f"[yellow]warning:[/yellow] W&B summary run not logged: {type(exc).__name__}: {exc}")
    elif ctx["mode"] != "disabled":
        console.print("W&B summary run: unchanged (logged by an earlier run of this study)")
