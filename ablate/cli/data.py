"""``ablate data``: the data a recipe or a study reads. ``ablate data check`` checks it and prints what it holds
(images per split, their sizes, each class's share of the pixels); ``ablate data fetch`` downloads a data set
(checksummed, resumable). Imports no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ablate.cli.app import app
from ablate.cli.console import console, err_console, fail, user_errors
from ablate.cli.options import SetOpt
from ablate.core.errors import ConfigError

data_app = typer.Typer(
    no_args_is_help=True, help="The data a recipe or a study reads: download it, check it, see what it holds."
)
app.add_typer(data_app, name="data")

SIZES_SHOWN = 4  # distinct image sizes listed one by one; more are shown as their range

PathArg = Annotated[
    Path,
    typer.Argument(
        metavar="RECIPE_OR_STUDY",
        help="A recipe or a study YAML file (a study: every data set its runs read).",
        show_default=False,
    ),
]


def data_sets(path: Path, sets: list[str] | None) -> list[tuple[Any, str]]:
    """The distinct ``data:`` sections a recipe (with ``--set``) or a study's runs read, each with where its root is
    set (for errors)."""
    from ablate.config.errors import validate
    from ablate.config.overrides import apply_overrides, check_block, parse_sets
    from ablate.config.schema import Recipe
    from ablate.config.yaml_io import load_yaml
    from ablate.study.adhoc import is_recipe

    overrides = parse_sets(sets)
    if is_recipe(path):
        base = load_yaml(path)
        validate(Recipe, base, str(path))
        check_block(base, overrides, "--set", sep=" ")
        recipe = validate(Recipe, apply_overrides(base, overrides), "--set" if overrides else str(path))
        return [(recipe.data, "--set data.root" if "data.root" in overrides else f"{path}: data.root")]
    from ablate.study.grid import expand
    from ablate.study.load import load_study

    loaded = load_study(path, overrides)
    seen: dict[str, Any] = {}
    for run in expand(loaded):
        data = run.config["data"]
        seen.setdefault(json.dumps(data, sort_keys=True), data)
    where = loaded.source_of("data.root")
    return [(Recipe.model_validate({"data": data}).data, where) for data in seen.values()]


def _sizes(sizes: dict[tuple[int, int], int]) -> str:
    ordered = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    if len(ordered) <= SIZES_SHOWN:
        return ", ".join(f"{w}x{h} ({n})" for (w, h), n in ordered)
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return f"{len(sizes)} sizes: {min(widths)}-{max(widths)} x {min(heights)}-{max(heights)}"


def print_survey(spec: Any, splits: list) -> None:
    root = getattr(spec, "resolve_root", None)
    where = f" at {root()}" if root is not None else ""
    console.print(
        f"data set [bold]{escape(spec.name)}[/bold]{escape(where)}: {len(spec.classes)} classes; checked, no problems"
    )
    files = Table(title_justify="left")
    for col in ("split", "from", "images", "sizes (width x height)"):
        files.add_column(col, justify="right" if col == "images" else "left")
    for s in splits:
        files.add_row(s.role, escape(s.name), str(s.count), _sizes(s.sizes))
    console.print(files)
    shares = Table(title="class pixel shares (%)", title_justify="left")
    shares.add_column("class")
    for s in splits:
        shares.add_column(s.role, justify="right")
    columns = [s.shares() for s in splits]
    for k, name in enumerate([*spec.classes, "(ignored)"]):
        shares.add_row(escape(str(name)), *(f"{col[k]:.2f}" for col in columns))
    console.print(shares)
    for s in splits:
        absent = [name for name, n in zip(spec.classes, s.pixels.tolist(), strict=True) if n == 0]
        if absent:
            console.print(f"[yellow]note:[/yellow] no pixels of {escape(', '.join(absent))} in the {s.role} split")


@data_app.command()
def check(path: PathArg, set_: SetOpt = None) -> None:
    """Check the data a RECIPE or a STUDY reads, as `ablate run` does before anything trains, and print what it
    holds: the images of each split, their sizes, and each class's share of the pixels.

    For a `folder` data set every mask is read (once: the result is cached by file, mtime and size) and any image
    without a mask or mask without an image, image and mask of different sizes, or mask value that is not a class
    stops the check with one line naming the file (exit code 2)."""
    from ablate.data.base import DataRootError
    from ablate.data.survey import survey

    with user_errors():
        specs = data_sets(path, set_)
        for i, (spec, where) in enumerate(specs):
            if i:
                console.print()
            try:
                splits = survey(spec)
            except DataRootError as exc:
                raise ConfigError(f"{where}: {str(exc).removeprefix('data.root: ')}") from None
            print_survey(spec, splits)
    if len(specs) > 1:
        err_console.print(f"{len(specs)} data sets checked")


def _fetchable() -> dict[str, type]:
    from ablate.data import DATASETS

    return {name: cls for name, cls in DATASETS.items() if getattr(cls, "download", None) is not None}


@data_app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="The data set, e.g. camvid.")],
    dest: Annotated[
        Path | None, typer.Argument(help="Folder to put it in (default: where recipes look without data.root).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64, help="Parallel downloads.")] = 8,
) -> None:
    """Download data set NAME into DEST, every file checked against its sha256. Run it again to resume an
    interrupted download; files already there are checked again, and a corrupted one is named and fetched anew."""
    from ablate.core.errors import did_you_mean
    from ablate.data.fetch import FetchError, fetch
    from ablate.data.folder import data_home

    known = _fetchable()
    if name not in known:
        fail(f"ablate data fetch: '{name}' cannot be fetched{did_you_mean(name, known)}; allowed: {', '.join(known)}")
    download = known[name].download
    dest = dest or data_home() / name
    console.print(f"{name}: {download.source}", markup=False)
    console.print(f"from {download.url()} to {dest}", markup=False)
    files = download.files()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("files", total=len(files))

        def step(rel: str, outcome: str) -> None:
            if outcome == "corrupt":
                bar.console.print(f"{escape(rel)}: sha256 does not match: fetching it again", markup=True)
                return
            bar.advance(task)

        try:
            report = fetch(download, dest, workers, step)
        except FetchError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            fail(f"ablate data fetch: cannot write to {dest}: {exc}")
    parts = [f"{report.present} already there", f"{report.downloaded} downloaded"]
    parts += [f"{report.resumed} resumed"] if report.resumed else []
    parts += [f"{len(report.corrupt)} corrupted and fetched again"] if report.corrupt else []
    counts = ", ".join(f"{folder} {n}" for folder, n in report.counts.items())
    console.print(f"{len(files)} files match their sha256 ({'; '.join(parts)}): {counts}", markup=False)
    console.print(f"recipes find it there{'' if dest == data_home() / name else f' with data.root: {dest}'}",
                  markup=False)  # fmt: skip
