"""The commands that look at a study and its results: status, plan, table, report, heads, eval."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ablate.cli.app import app
from ablate.cli.console import console, user_errors
from ablate.cli.options import (
    FORMAT_CHOICES,
    AxisOpt,
    RecipeOpt,
    ResultsOpt,
    SaveStudyOpt,
    SeedsOpt,
    SetOpt,
    StudyArg,
)
from ablate.cli.session_io import print_and_save_table, print_stale, session_of, write_report
from ablate.core.errors import ConfigError


@app.command()
def status(study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None, axis: AxisOpt = None,
           seeds: SeedsOpt = None, recipe: RecipeOpt = None) -> None:  # fmt: skip
    """Count STUDY's runs by state: done, running (locked by a live process), failed, pending; and name the finished
    runs made by other plugin code than now (stale: `ablate run --rerun-stale` runs them again)."""
    with user_errors():
        session = session_of(study, set_, results, axis, seeds, recipe=recipe)
    states = session.states()
    counts = session.counts(states)
    console.print(
        f"{session.study.name}: {len(session.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    )
    for r in session.runs:
        if states[r.id] in ("running", "failed"):
            detail = (session.store.read_metrics(r) or {}).get("error", "") if states[r.id] == "failed" else ""
            console.print(f"  {states[r.id]:8} {r.id}  {escape(r.label)}  {escape(detail)}")
    print_stale(session, session.stale(), each=True)


@app.command()
def plan(
    study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None, axis: AxisOpt = None,
    seeds: SeedsOpt = None, save_study: SaveStudyOpt = None, recipe: RecipeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON (for scripts).")] = False,
) -> None:
    """List the runs STUDY expands to (id, axis values, seed) and which are finished. Imports no torch."""
    from ablate.core.text import format_value

    with user_errors():
        session = session_of(study, set_, results, axis, seeds, save_study, recipe)
    runs, states = session.runs, session.states()
    shared: dict[str, int] = {}
    for r in runs:
        shared[r.train_id] = shared.get(r.train_id, 0) + 1
    rows = [
        {"id": r.id, "seed": r.seed, "axes": r.axes, "coupled": r.coupled, "train_id": r.train_id,
         "shares_training": shared[r.train_id] > 1, "status": states[r.id]}
        for r in runs
    ]  # fmt: skip
    if as_json:
        out = {"study": session.study.name, "runs": rows, "count": len(rows), "trainings": len(shared)}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    table = Table(title=f"{session.study.name}: {len(runs)} runs, {len(shared)} trainings", title_justify="left")
    for col in ["id", *session.study.axes, "seed", "training", "status"]:
        table.add_column(col, no_wrap=True)
    for r, row in zip(runs, rows, strict=True):
        cells = [
            format_value(v) + (f" → {format_value(r.coupled[k])}" if k in r.coupled else "") for k, v in r.axes.items()
        ]
        training = r.train_id + (" (shared)" if row["shares_training"] else "")
        table.add_row(r.id, *cells, str(r.seed), training, row["status"])
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in session.counts(states).items()))


@app.command()
def table(
    study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None, axis: AxisOpt = None,
    seeds: SeedsOpt = None, recipe: RecipeOpt = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="terminal (rich), md, csv, latex (booktabs) or html: other than terminal, the table is printed in "
            "that format and written to results/<study>/table.{md,csv,tex,html}.",
        ),
    ] = "terminal",
    every_seed: Annotated[
        bool,
        typer.Option("--every-seed", help="Also print every seed's value of each configuration (outliers marked)."),
    ] = False,
    min_effect: Annotated[
        float | None,
        typer.Option("--min-effect", help="The Δ (metric points) the seeds-needed line sizes seeds for (default "
                     "the study's table.min_effect, 1).", show_default=False),
    ] = None,
) -> None:
    """Print STUDY's comparison table (finished, failed and missing runs) and save table.md and table.csv.

    One row per configuration: mean ± std over seeds, n, Δ vs the baseline with a significance mark (a paired
    t-test over the seeds it shares with the baseline, Holm-corrected across rows) and a bootstrap interval,
    parameters, multiply-adds, latency and peak memory with the hardware named; then the study's table layout (rows
    x columns), the factor effects of a study with several axes, and the notes (outlier seeds, seeds needed). A
    study whose seeds were added where undecided (adaptive seeds, `ablate run --until-decided`) is tested with the
    group-sequential test the seeds were added by, and the notes say which rows got seeds and why.
    """
    with user_errors():
        session = session_of(study, set_, results, axis, seeds, recipe=recipe)
        if fmt not in FORMAT_CHOICES:
            raise ConfigError(f"--format {fmt}: expected one of {', '.join(FORMAT_CHOICES)}")
        if min_effect is not None:
            if min_effect <= 0:
                raise ConfigError(f"--min-effect {min_effect}: give a positive number of metric points")
            session.loaded.study.table.min_effect = min_effect
    t = print_and_save_table(session, fmt)
    if fmt == "terminal":
        print_stale(session, session.stale())
    if every_seed:
        from ablate.report.terminal import print_seeds

        print_seeds(console, t)


@app.command()
def report(study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None, axis: AxisOpt = None,
           seeds: SeedsOpt = None, recipe: RecipeOpt = None) -> None:  # fmt: skip
    """Write results/<study>/report.html (self-contained) and report.md from the runs there: the table with its
    factor effects and every seed, plots (metric vs each axis, every seed, which axis matters, accuracy vs cost,
    training curves, per-class IoU, confusion matrices, qualitative grid), failed runs with their errors, the
    recipe and the command to reproduce."""
    with user_errors():
        session = session_of(study, set_, results, axis, seeds, recipe=recipe)
    write_report(session, print_and_save_table(session))


@app.command("eval")
def eval_(
    run_dir: Annotated[
        Path, typer.Argument(help="A finished run's folder: results/<study>/runs/<run id>.", show_default=False)
    ],
    set_: SetOpt = None,
) -> None:
    """Evaluate one finished run again with other evaluation settings (only eval.* keys), e.g.
    --set eval.crf=true --set eval.output_stride=8 --set eval.scales='[0.75,1,1.25]' --set eval.flip=true.

    The result is written to RUN_DIR/evals/<eval id>.json; the run's own metrics.json (what the study's table
    reads) is left as it is. Bad input exits with code 2 and a one-line message.
    """
    from ablate.config.overrides import parse_sets
    from ablate.train.eval_run import load_run

    with user_errors():
        overrides = parse_sets(set_)
        load_run(run_dir, overrides)  # every check before torch is imported
    from ablate.train.eval_run import eval_run

    record, path, original = eval_run(run_dir, overrides)
    title = f"{run_dir}  {' '.join(f'{k}={v}' for k, v in overrides.items()) or '(own eval settings)'}"
    out = Table(title=escape(title))
    out.add_column("")
    for title in ("PA", "mAcc", "mIoU", "FWIoU"):
        out.add_column(title, justify="right")
    keys = ("pixel_acc", "mean_acc", "miou", "fwiou")
    if original and original.get("status") == "done":
        out.add_row("run (metrics.json)", *(f"{100 * original['metrics'][k]:.2f}" for k in keys))
    out.add_row("this evaluation", *(f"{100 * record['metrics'][k]:.2f}" for k in keys))
    console.print(out)
    console.print(f"written to {path}")
