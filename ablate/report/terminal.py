"""The comparison table on the terminal (rich)."""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table


def print_table(console: Console, shown: pd.DataFrame, title: str) -> None:
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


def print_comparison(console: Console, t: Any, root: Any) -> None:
    """The per-configuration table, the study's layout, the published numbers, the notes, failed and missing runs."""
    from ablate.report.table import metric_title

    print_table(console, t.shown, f"{t.title} ({root})")
    if t.layout is not None:
        print_table(console, t.layout, f"{metric_title(t.metric)}: rows x columns as in the study's table layout")
    if t.published is not None:
        print_table(console, t.published, f"Published vs reproduced: {t.published_caption}")
    for note in t.footnote:
        console.print(f"- {note}", markup=False)
    if t.failures:
        console.print("[red]failed runs:[/red]")
        for run_id, label, error in t.failures:
            console.print(f"  {run_id}  {label}: {error}", markup=False)
    if t.missing:
        console.print(f"[yellow]{len(t.missing)} run(s) missing (not run yet)[/yellow]")
