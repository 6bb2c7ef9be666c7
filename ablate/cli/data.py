"""``ablate data``: the commands about data sets themselves: ``fetch`` downloads one (checksummed, resumable).
Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ablate.cli.app import app
from ablate.cli.common import console, err_console, fail

data_app = typer.Typer(no_args_is_help=True, help="Data sets: download one (fetch).")
app.add_typer(data_app, name="data")


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
