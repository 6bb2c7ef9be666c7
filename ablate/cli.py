"""The ``ablate`` command line. Heavy imports (torch, lightning, timm) happen only inside commands that train."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ablate.config import LoadedStudy, load_study
from ablate.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Ablation studies for semantic segmentation: expand a study's grid, train and evaluate every run, "
    "and compare the results in one table.",
)
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
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


def _fail(message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(2)


def _parse_sets(sets: list[str] | None) -> dict[str, Any]:
    out = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set train.steps=20")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item}: the value is not valid YAML") from None
    return out


def _load(study: Path, sets: list[str] | None = None) -> LoadedStudy:
    return load_study(study, overrides=_parse_sets(sets))


def _print_table(shown, title: str) -> None:
    import pandas as pd
    from rich import box

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    needed = 0
    for col in shown.columns:
        numeric = pd.api.types.is_numeric_dtype(shown[col]) or " (" in str(col)  # counts and cost columns
        width = max([len(str(v)) for v in shown[col]] + [len(str(col))])
        needed += width + 3  # padding and the column separator
        table.add_column(str(col), justify="right" if numeric else "left", no_wrap=True, min_width=width)
    for _, row in shown.iterrows():
        cells = [str(v) for v in row.tolist()]
        table.add_row(*[f"[red]{c}[/red]" if "FAILED" in c else c for c in cells])
    # piped or redirected: as wide as the table needs (a terminal keeps its own width)
    out = console if sys.stdout.isatty() else Console(highlight=False, width=max(needed + 2, 100))
    out.print(table)


FORMAT_CHOICES = ("terminal", "md", "csv", "latex", "html")


def _build_table(loaded: LoadedStudy, results: Path):
    from ablate.study.grid import expand
    from ablate.study.store import Store
    from ablate.study.tables import build

    runs = expand(loaded)
    store = Store(results, loaded.study.name)
    return runs, store, build(loaded, runs, store)


def _write_table(loaded: LoadedStudy, results: Path, fmt: str = "terminal"):
    """Save table.md and table.csv (and table.tex/table.html when asked), print the table; returns it."""
    from ablate.study.tables import FORMATS, save

    runs, store, t = _build_table(loaded, results)
    written = save(t, store.root, tuple(dict.fromkeys(["md", "csv"] + ([fmt] if fmt in FORMATS else []))))
    if fmt != "terminal":
        sys.stdout.write(FORMATS[fmt][1](t))
        err_console.print(f"wrote {written[fmt]}")
        return runs, store, t
    _print_table(t.shown, f"{t.title} ({store.root})")
    if t.layout is not None:
        from ablate.study.tables import METRICS

        _print_table(t.layout, f"{METRICS[t.metric]}: rows x columns as in the study's table layout")
    if t.published is not None:
        _print_table(t.published, f"Published vs reproduced: {t.published_caption}")
    for note in t.footnote:
        console.print(f"- {note}", markup=False)
    if t.failures:
        console.print("[red]failed runs:[/red]")
        for run_id, label, error in t.failures:
            console.print(f"  {run_id}  {label}: {error}", markup=False)
    if t.missing:
        console.print(f"[yellow]{len(t.missing)} run(s) missing (not run yet)[/yellow]")
    return runs, store, t


class _Outputs:
    """What the report and the W&B summary run were last made from (results/<study>/.outputs.json): a digest of
    the table (table.csv, table.md) and of the study and recipe."""

    def __init__(self, root: Path, loaded: LoadedStudy):
        import hashlib

        self.path = root / ".outputs.json"
        h = hashlib.sha256()
        for name in ("table.csv", "table.md"):
            h.update((root / name).read_bytes() if (root / name).is_file() else b"-")
        setup = [loaded.study.model_dump(mode="json"), loaded.recipe]
        h.update(json.dumps(setup, sort_keys=True, default=str).encode())
        self.digest = h.hexdigest()
        try:
            self.marks: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.marks = {}

    def same(self, what: str, key: str, output: Path | None = None) -> bool:
        return self.marks.get(what) == key and (output is None or output.is_file())

    def set(self, what: str, key: str) -> None:
        from ablate.study.store import atomic_write

        self.marks[what] = key
        atomic_write(self.path, json.dumps(self.marks, indent=1))


def _write_report(loaded: LoadedStudy, results: Path, runs, store, t):
    from ablate.study.report import write_report

    report = write_report(loaded, runs, store, t, results)
    console.print(f"report: {report.html} and {report.md}", markup=False)
    for f in report.figures:
        if f.error:
            console.print(f"  [yellow]{f.title} not drawn[/yellow]: {f.error}")
    return report


WandbOpt = Annotated[
    str | None,
    typer.Option(
        "--wandb",
        help="W&B logging: online, offline, disabled or auto (default: the study's wandb.mode, else auto: online "
        "when an API key is configured, else offline files under results/<study>/wandb/).",
        show_default=False,
    ),
]


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
            help="Jobs at once on this machine, each in its own process with its own GPUs (train.devices) or an "
            "equal share of the CPU cores. Default: one per free GPU set, 1 on a CPU-only machine.",
            show_default=False,
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            "-e",
            help="local or slurm; overrides the study's executor.kind (its other executor settings still apply).",
            show_default=False,
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="SLURM: submit and exit without waiting; run again later to collect."),
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
    code is then 1 (`--retry-failed` runs those again). Bad input exits with code 2 and a one-line message.
    """
    from ablate.study.executors import visible_gpus
    from ablate.study.grid import expand
    from ablate.study.runner import run_study, select
    from ablate.study.store import Store
    from ablate.study.worker import DEFAULT_JOB

    try:
        loaded = _load(study, set_)
        exec_cfg = loaded.study.executor
        if executor is not None:
            if executor not in ("local", "slurm"):
                raise ConfigError(f"--executor {executor}: allowed: local, slurm")
            exec_cfg = exec_cfg.model_copy(update={"kind": executor})
        runs = expand(loaded)
        todo, _ = select(runs, Store(results, loaded.study.name), retry_failed, exec_cfg.kind == "slurm")
        if todo:
            _preflight(loaded, todo)
        if wandb is not None and wandb.lower() not in ("auto", "online", "offline", "disabled"):
            raise ConfigError(f"--wandb {wandb}: expected one of online, offline, disabled, auto")
    except ConfigError as exc:
        _fail(str(exc))
    from ablate.study import wandb_sink

    ctx = wandb_sink.settings(loaded.study.name, results, loaded.study.wandb, wandb)
    wandb_sink.export(ctx)  # jobs in this process, worker processes and SLURM jobs inherit it
    if ctx["mode"] != "disabled":
        console.print(
            f"W&B: {ctx['mode']} (project {ctx['project']}, group {ctx['group']}, files in {ctx['dir']}/wandb)"
        )
    if exec_cfg.kind == "slurm":
        try:
            summary = run_study(loaded, results, DEFAULT_JOB, console, retry_failed, executor=exec_cfg, detach=detach)
        except ConfigError as exc:
            _fail(str(exc))
        if detach:
            return
    else:
        parallel = max_parallel or exec_cfg.max_parallel
        if parallel is None:  # one job per free set of GPUs, one at a time on a CPU-only machine
            gpus = len(visible_gpus())
            per_job = max((int(r.config["train"]["devices"]) for r in runs), default=1)
            parallel = max(1, gpus // per_job) if gpus else 1
        if parallel > 1 or any(int(r.config["train"]["devices"]) > 1 for r in todo):
            summary = run_study(loaded, results, DEFAULT_JOB, console, retry_failed, parallel)
        else:  # in this process; the job is imported on first use (no torch when nothing is to run)
            summary = run_study(loaded, results, DEFAULT_JOB, console, retry_failed)
    runs, store, t = _write_table(loaded, results)
    # The report and the W&B summary run are only made again when the table they show changed: a second
    # `ablate run` of a finished study neither redraws the plots nor logs a duplicate summary run.
    marks = _Outputs(store.root, loaded)
    wandb_key = f"{ctx['mode']}|{ctx['project']}|{marks.digest}"
    need_wandb = ctx["mode"] != "disabled" and not marks.same("wandb", wandb_key)
    rep = None
    if report and (need_wandb or not marks.same("report", marks.digest, store.root / "report.html")):
        rep = _write_report(loaded, results, runs, store, t)
        marks.set("report", marks.digest)
    elif report:
        console.print(f"report: {store.root / 'report.html'} (unchanged: its table is the same)", markup=False)
    if need_wandb:
        images = rep.images if rep is not None else {}
        try:
            where = wandb_sink.log_study_summary(
                ctx, t, images, {"study": loaded.study.model_dump(mode="json"), "recipe": loaded.recipe}
            )
            console.print(f"W&B summary run: {where}", markup=False)
            marks.set("wandb", wandb_key)
        except Exception as exc:  # noqa: BLE001 - the table and report are written; W&B is a copy
            err_console.print(f"[yellow]warning:[/yellow] W&B summary run not logged: {type(exc).__name__}: {exc}")
    elif ctx["mode"] != "disabled":
        console.print("W&B summary run: unchanged (logged by an earlier run of this study)")
    if t.failures:
        console.print(f"[red]{len(t.failures)} run(s) failed[/red]: `ablate run --retry-failed` runs them again")
    if summary.busy:
        console.print(f"{len(summary.busy)} run(s) are being run by another process; run again when it is done.")
    if t.failures or t.missing:
        raise typer.Exit(1)


@app.command()
def status(study: StudyArg, results: ResultsOpt = Path("results"), set_: SetOpt = None) -> None:
    """Count STUDY's runs by state: done, running (locked by a live process), failed, pending."""
    try:
        loaded = _load(study, set_)
    except ConfigError as exc:
        _fail(str(exc))
    from ablate.study.grid import expand
    from ablate.study.store import Store

    store = Store(results, loaded.study.name)
    runs = expand(loaded)
    states = {r.id: store.state(r) for r in runs}
    counts = {s: sum(v == s for v in states.values()) for s in ("done", "running", "failed", "pending")}
    console.print(f"{loaded.study.name}: {len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for r in runs:
        if states[r.id] in ("running", "failed"):
            detail = (store.read_metrics(r) or {}).get("error", "") if states[r.id] == "failed" else ""
            console.print(f"  {states[r.id]:8} {r.id}  {escape(r.label)}  {escape(detail)}")


def _preflight(loaded: LoadedStudy, runs) -> None:
    """Build every distinct model once on the meta device; a bad backbone or head stops here, before training."""
    from ablate.config import Recipe
    from ablate.data.layout import DataRootError, check_data
    from ablate.models.backbone import BuildError
    from ablate.train.inference import eval_model_config
    from ablate.train.job import check_model

    seen = set()
    for r in runs:
        recipe = Recipe.model_validate(r.config)
        data = recipe.data
        if ("data", data.model_dump_json()) not in seen:
            seen.add(("data", data.model_dump_json()))
            try:
                check_data(data)
            except DataRootError as exc:
                msg = str(exc).removeprefix("data.root: ")
                raise ConfigError(f"{loaded.source_of('data.root')}: {msg}") from None
        for model, at_eval in ((recipe.model, False), (eval_model_config(recipe.model, recipe.eval), True)):
            key = model.model_dump_json()
            if key in seen:
                continue
            seen.add(key)
            try:
                check_model(model)
            except BuildError as exc:
                where = "eval.output_stride" if at_eval and exc.key == "model.output_stride" else exc.key
                raise ConfigError(f"{loaded.source_of(where)}: {exc}") from None


@app.command()
def plan(
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON (for scripts).")] = False,
) -> None:
    """List the runs STUDY expands to (id, axis values, seed) and which are finished. Imports no torch."""
    try:
        loaded = _load(study, set_)
    except ConfigError as exc:
        _fail(str(exc))
    from ablate.study.grid import expand
    from ablate.study.store import Store

    runs = expand(loaded)
    store = Store(results, loaded.study.name)
    shared: dict[str, int] = {}
    for r in runs:
        shared[r.train_id] = shared.get(r.train_id, 0) + 1
    rows = [
        {
            "id": r.id,
            "seed": r.seed,
            "axes": r.axes,
            "coupled": r.coupled,
            "train_id": r.train_id,
            "shares_training": shared[r.train_id] > 1,
            "status": store.state(r),
        }
        for r in runs
    ]
    if as_json:
        out = {"study": loaded.study.name, "runs": rows, "count": len(rows), "trainings": len(shared)}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    title = f"{loaded.study.name}: {len(runs)} runs, {len(shared)} trainings"
    table = Table(title=title, title_justify="left")
    for col in ["id", *(k for k in loaded.study.axes), "seed", "training", "status"]:
        table.add_column(col)
    from ablate.study.grid import format_value

    for r, row in zip(runs, rows, strict=True):
        cells = [
            format_value(v) + (f" → {format_value(r.coupled[k])}" if k in r.coupled else "") for k, v in r.axes.items()
        ]
        training = r.train_id + (" (shared)" if row["shares_training"] else "")
        table.add_row(r.id, *cells, str(r.seed), training, row["status"])
    console.print(table)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "running", "failed", "pending")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))


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
    try:
        loaded = _load(study, set_)
        if fmt not in FORMAT_CHOICES:
            raise ConfigError(f"--format {fmt}: expected one of {', '.join(FORMAT_CHOICES)}")
    except ConfigError as exc:
        _fail(str(exc))
    _write_table(loaded, results, fmt)


@app.command()
def report(
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    set_: SetOpt = None,
) -> None:
    """Write results/<study>/report.html (self-contained) and report.md from the runs there: the table, plots
    (metric vs each axis, accuracy vs cost, per-class IoU, training curves, qualitative grid), failed runs with
    their errors, the recipe and the command to reproduce."""
    try:
        loaded = _load(study, set_)
    except ConfigError as exc:
        _fail(str(exc))
    runs, store, t = _write_table(loaded, results)
    _write_report(loaded, results, runs, store, t)


@app.command()
def heads(
    name: Annotated[str | None, typer.Argument(help="Show only this head.", show_default=False)] = None,
) -> None:
    """List every context head (model.head.name) with its parameters, their types and defaults. Imports no torch."""
    from rich.markup import escape

    from ablate.errors import did_you_mean
    from ablate.models.params import HEAD_PARAMS, describe_fields

    if name is not None and name not in HEAD_PARAMS:
        _fail(f"unknown head '{name}'{did_you_mean(name, HEAD_PARAMS)}; allowed: {', '.join(HEAD_PARAMS)}")
    for head, params in HEAD_PARAMS.items():
        if name not in (None, head):
            continue
        doc = (params.__doc__ or "").strip().splitlines()[0]
        table = Table(title=escape(f"{head}: {doc}"), title_justify="left")
        for col in ("parameter", "type", "default", "description"):
            table.add_column(col)
        for row in describe_fields(params):
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)


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
    try:
        overrides = _parse_sets(set_)
        from ablate.train.eval_run import load_run

        load_run(run_dir, overrides)  # every check before torch is imported
    except ConfigError as exc:
        _fail(str(exc))
    from ablate.train.eval_run import eval_run

    record, path, original = eval_run(run_dir, overrides)
    table = Table(title=f"{run_dir}  {' '.join(f'{k}={v}' for k, v in overrides.items()) or '(own eval settings)'}")
    table.add_column("")
    for title in ("PA", "mAcc", "mIoU", "FWIoU"):
        table.add_column(title, justify="right")
    keys = ("pixel_acc", "mean_acc", "miou", "fwiou")
    if original and original.get("status") == "done":
        table.add_row("run (metrics.json)", *(f"{100 * original['metrics'][k]:.2f}" for k in keys))
    table.add_row("this evaluation", *(f"{100 * record['metrics'][k]:.2f}" for k in keys))
    console.print(table)
    console.print(f"written to {path}")


@app.command()
def bench(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for bench.md and bench.json.")] = Path(
        "results/bench"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny sizes and one repeat: checks that every section runs (seconds).")
    ] = False,
    batch: Annotated[int | None, typer.Option(help="Images per training step (step and FLOP/s sections).")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in pixels (step and FLOP/s sections).")] = None,
    steps: Annotated[int | None, typer.Option(help="Timed training steps per model.")] = None,
    loop_steps: Annotated[int | None, typer.Option(help="Steps of the whole-loop vs bare-loop comparison.")] = None,
    study: Annotated[
        Path | None, typer.Option(help="Study whose wall time is measured (default studies/aspp_rates.yaml).")
    ] = None,
    no_study: Annotated[bool, typer.Option("--no-study", help="Skip the study sections (the longest).")] = False,
    no_bf16_study: Annotated[bool, typer.Option("--no-bf16-study", help="Do not run the study again in bf16.")] = False,
    no_compile: Annotated[
        bool, typer.Option("--no-compile", help="Do not time the torch.compile'd step (it compiles for ~1 min).")
    ] = False,
    before: Annotated[
        str | None,
        typer.Option(help="Git ref whose code also runs the study, for a before/after wall time (git worktree)."),
    ] = None,
    set_: SetOpt = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these sections: step, flops, loop, study, metrics, crf.")
    ] = None,
) -> None:
    """Measure ablate's speed against its peers on this machine; writes OUT/bench.md and OUT/bench.json.

    Training step vs torchvision's and segmentation_models_pytorch's DeepLabv3, the whole loop vs a bare PyTorch
    loop, a study's wall time vs its runs, achieved FLOP/s vs the GEMM peak (fp32, bf16), the metric update vs
    torchmetrics and the dense CRF pool's speed-up. About 10 minutes on 2 cores; --quick takes well under one.
    """
    from ablate.bench import SECTIONS, BenchConfig, run_bench

    kw: dict[str, Any] = {"out": out, "command": "ablate bench " + " ".join(sys.argv[2:])}
    for key, value in (("batch", batch), ("size", size), ("steps", steps), ("loop_steps", loop_steps)):
        if value is not None:
            kw[key] = value
    if study is not None:
        kw["study"] = study.resolve()
    if no_study:
        kw["study"] = None
    if set_:
        kw["study_sets"] = list(set_)
    if no_bf16_study:
        kw["bf16_study"] = False
    if no_compile:
        kw["compiled"] = False
    if before:
        kw["before"] = before
    cfg = BenchConfig.quick_config(**kw) if quick else BenchConfig(**kw)
    sections = tuple(only) if only else SECTIONS
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        _fail(f"--only {', '.join(unknown)}: allowed: {', '.join(SECTIONS)}")
    run_bench(cfg, sections, log=lambda line: console.print(escape(line)))
    console.print(f"wrote {out / 'bench.md'} and {out / 'bench.json'}")


def main() -> None:  # pragma: no cover - the console script
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
