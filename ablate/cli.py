"""The ``ablate`` command line: parse arguments, call the study session, print. Heavy imports (torch, lightning,
timm) happen only inside commands that train or evaluate."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from ablate.core import signals, warn
from ablate.core.errors import ConfigError
from ablate.report.terminal import terminal_width


class _OneLineErrors(typer.core.TyperGroup):
    """Usage errors (an unknown option, a value out of range) as one line and exit code 2, like every other bad
    input; a signal outside a training (it checkpoints itself) as one line and 128 + its number."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            sys.exit(130)
        except TyperException as exc:  # click's usage errors (typer vendors click): an option, a value, a command
            if not exc.format_message():  # `ablate` alone: the help was the answer
                sys.exit(0)
            ctx = getattr(exc, "ctx", None)
            command = " ".join(["ablate", *([ctx.info_name] if ctx is not None and ctx.parent else []), "--help"])
            err_console.print(f"[red]error:[/red] {escape(exc.format_message())} (see {command})", markup=True)
            sys.exit(getattr(exc, "exit_code", 2))
        except signals.Interrupted as stop:
            err_console.print(f"interrupted by {stop.name}; nothing was running: run the same command again")
            sys.exit(stop.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Ablation studies for semantic segmentation: expand a study's grid, train and evaluate every run, "
    "and compare the results in one table.",
)
console = Console(highlight=False, width=terminal_width())
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

StudyArg = Annotated[Path, typer.Argument(help="Study YAML file, e.g. studies/aspp_rates.yaml.", show_default=False)]
ResultsOpt = Annotated[
    Path, typer.Option("--results", "-r", help="Folder that holds results/<study>/runs/<run id>/ folders.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a recipe key for every run, as KEY=VALUE with a YAML value "
        "(e.g. --set train.steps=20 --set model.head.rates='[6,12]'). Repeatable.",
        show_default=False,
    ),
]
WandbOpt = Annotated[
    str | None,
    typer.Option(
        "--wandb",
        help="W&B logging: online, offline, disabled or auto (default: the study's wandb.mode, else auto: online "
        "when an API key is configured, else offline files under results/<study>/wandb/).",
        show_default=False,
    ),
]
FORMAT_CHOICES = ("terminal", "md", "csv", "latex", "html")
WANDB_MODES = ("auto", "online", "offline", "disabled")


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input: one line on stderr, exit code 2, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        _fail(str(exc))


def _session(study: Path, sets: list[str] | None, results: Path):
    from ablate.config.loading import parse_sets
    from ablate.study.session import StudySession

    return StudySession(study, parse_sets(sets), results)


def _table(session, fmt: str = "terminal"):
    """Save table.md and table.csv (and the asked format), print the table; returns it."""
    from ablate.report.render import FORMATS
    from ablate.report.terminal import print_comparison

    t = session.table()
    written = session.save_table(t, tuple(dict.fromkeys(["md", "csv"] + ([fmt] if fmt in FORMATS else []))))
    if fmt != "terminal":
        sys.stdout.write(FORMATS[fmt][1](t))
        err_console.print(f"wrote {written[fmt]}")
    else:
        print_comparison(console, t, session.store.root)
    return t


def _report(session, t):
    report = session.write_report(t)
    console.print(f"report: {report.html} and {report.md}", markup=False)
    for f in report.figures:
        if f.error:
            console.print(f"  [yellow]{escape(f.title)} not drawn[/yellow]: {escape(f.error)}")
    return report


@app.command()
def run(
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    set_: SetOpt = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run again only the runs that failed before (nothing else).")
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
) -> None:
    """Run every run of STUDY that is not finished yet, then print and save its comparison table and its report,
    and log a W&B summary run (see --wandb).

    Finished runs (results/<study>/runs/<id>/metrics.json with status done) are skipped, so running a study again
    only does what is left; an interrupted training resumes from its last checkpoint. Runs that differ only in
    `eval.` keys share one training. A run that fails is recorded with its error and the study goes on; the exit
    code is then 1 (`--retry-failed` runs those again). Ctrl-C or SIGTERM writes a checkpoint and exits with 130 or
    143. Bad input exits with code 2 and a one-line message.
    """
    signals.install()
    with user_errors():
        session = _session(study, set_, results)
        if wandb is not None and wandb.lower() not in WANDB_MODES:
            raise ConfigError(f"--wandb {wandb}: expected one of {', '.join(WANDB_MODES)}")
        exec_cfg = session.executor(executor, max_parallel=max_parallel, threads=threads, detach=detach or None)
        todo, busy = session.todo(exec_cfg, retry_failed)
        if todo:
            from ablate.train.preflight import preflight

            preflight((r.config for r in todo), session.loaded.source_of)
    from ablate.study import wandb_sink

    ctx = wandb_sink.settings(session.study.name, results, session.study.wandb, wandb)
    wandb_sink.export(ctx)  # jobs in this process, worker processes and SLURM jobs inherit it
    if ctx["mode"] != "disabled":
        where = f"project {ctx['project']}, group {ctx['group']}, files in {ctx['dir']}/wandb"
        console.print(f"W&B: {ctx['mode']} ({where})")
    try:
        summary = session.run(exec_cfg, console, todo, busy, retry_failed=retry_failed)
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
    if t.failures or t.missing:
        raise typer.Exit(1)


def _publish(session, ctx: dict[str, Any], report: bool) -> None:
    """The table, then the report and the W&B summary run, each only when the table changed since it was made."""
    from ablate.study import wandb_sink

    t = _table(session)
    marks = session.outputs()
    wandb_key = f"{ctx['mode']}|{ctx['project']}|{marks.digest}"
    need_wandb = ctx["mode"] != "disabled" and not marks.same("wandb", wandb_key)
    rep = None
    if report and (need_wandb or not marks.same("report", marks.digest, session.store.root / "report.html")):
        rep = _report(session, t)
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


@app.command()
def status(study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None) -> None:
    """Count STUDY's runs by state: done, running (locked by a live process), failed, pending."""
    with user_errors():
        session = _session(study, set_, results)
    states = session.states()
    counts = session.counts(states)
    console.print(
        f"{session.study.name}: {len(session.runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    )
    for r in session.runs:
        if states[r.id] in ("running", "failed"):
            detail = (session.store.read_metrics(r) or {}).get("error", "") if states[r.id] == "failed" else ""
            console.print(f"  {states[r.id]:8} {r.id}  {escape(r.label)}  {escape(detail)}")


@app.command()
def plan(
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON (for scripts).")] = False,
) -> None:
    """List the runs STUDY expands to (id, axis values, seed) and which are finished. Imports no torch."""
    from ablate.core.text import format_value

    with user_errors():
        session = _session(study, set_, results)
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
        table.add_column(col)
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
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    set_: SetOpt = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="terminal (rich), md, csv, latex (booktabs) or html: other than terminal, the table is printed in "
            "that format and written to results/<study>/table.{md,csv,tex,html}.",
        ),
    ] = "terminal",
) -> None:
    """Print STUDY's comparison table (finished, failed and missing runs) and save table.md and table.csv.

    One row per configuration: mean ± std over seeds, n, Δ vs the baseline with a significance mark (Welch's
    t-test over seeds), parameters, multiply-adds, latency and peak memory with the hardware named; then the
    study's table layout (rows x columns) when it has one.
    """
    with user_errors():
        session = _session(study, set_, results)
        if fmt not in FORMAT_CHOICES:
            raise ConfigError(f"--format {fmt}: expected one of {', '.join(FORMAT_CHOICES)}")
    _table(session, fmt)


@app.command()
def report(study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None) -> None:
    """Write results/<study>/report.html (self-contained) and report.md from the runs there: the table, plots
    (metric vs each axis, accuracy vs cost, per-class IoU, training curves, qualitative grid), failed runs with
    their errors, the recipe and the command to reproduce."""
    with user_errors():
        session = _session(study, set_, results)
    _report(session, _table(session))


@app.command()
def heads(
    name: Annotated[str | None, typer.Argument(help="Show only this head.", show_default=False)] = None,
) -> None:
    """List every context head (model.head.name) with its parameters, their types and defaults. Imports no torch."""
    from ablate.core.schema import describe_fields
    from ablate.models.heads import HEADS

    with user_errors():
        chosen = [(name, HEADS[name])] if name is not None else HEADS.items()
    for head, params in chosen:
        doc = (params.__doc__ or "").strip().splitlines()[0]
        out = Table(title=escape(f"{head}: {doc}"), title_justify="left")
        for col in ("parameter", "type", "default", "description"):
            out.add_column(col)
        for row in describe_fields(params):
            out.add_row(*(escape(cell) for cell in row))
        console.print(out)


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
    from ablate.config.loading import parse_sets
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


from ablate.bench.command import bench  # noqa: E402 - registered on ``app`` below, imports nothing heavy

app.command()(bench)


def _version(value: bool) -> None:
    if value:
        import importlib.metadata

        console.print(f"ablate {importlib.metadata.version('ablate')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print ablate's version and exit.")
    ] = False,
) -> None:
    """Ablation studies for semantic segmentation: expand a study's grid, train and evaluate every run, and compare
    the results in one table."""


def _prose(doc: str | None) -> str | None:
    """A docstring as the help shows it: its paragraphs as flowing text (the terminal wraps them), not the source's
    line breaks."""
    if not doc:
        return doc
    paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in inspect.cleandoc(doc).split("\n\n")]
    return "\n\n".join(paragraphs)


for _info in app.registered_commands:
    _info.help = _prose(_info.help or (_info.callback.__doc__ if _info.callback else None))


def main() -> None:  # pragma: no cover - the console script
    warn.install()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
