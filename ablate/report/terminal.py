"""The comparison table on the terminal (rich), fitted to its width: the columns a reader needs first (the axis
values, the table's metric with its spread, n, Δ, the status) lead; the rest follow in further blocks, each
repeating the axis values, so every column is shown at any width. Too narrow even for the leading columns, long
axis values are shortened (…). The last line names the files that hold the full table."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

GAP = 2  # the space between two columns


def terminal_width() -> int:
    """``$COLUMNS`` when set, else the terminal's width; a pipe or a file gets the width of a wide terminal."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return 160


def _widths(shown: pd.DataFrame) -> dict[str, int]:
    return {str(c): max([len(str(v)) for v in shown[c]] + [len(str(c))]) for c in shown.columns}


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def blocks(shown: pd.DataFrame, keys: list[str], lead: list[str], width: int) -> list[pd.DataFrame]:
    """``shown`` cut into column blocks that each fit ``width``: the first holds ``lead`` (``keys``, the columns
    that name a configuration, then the others a reader needs first); every later block repeats ``keys``."""
    cols = [str(c) for c in shown.columns]
    shown = shown.set_axis(cols, axis=1)
    keys = [c for c in keys if c in cols]
    lead = [*keys, *(c for c in lead if c in cols and c not in keys)]
    sizes = _widths(shown)
    need = sum(sizes[c] + GAP for c in lead)
    if need > width and keys:  # shorten the axis values so that the leading block fits
        spare = max(4, (width - sum(sizes[c] + GAP for c in lead if c not in keys)) // len(keys) - GAP)
        shown = shown.copy()
        for c in keys:
            shown[c] = shown[c].map(lambda v, w=spare: _shorten(str(v), w))
        sizes = _widths(shown)
    out, current = [], list(lead)
    used = sum(sizes[c] + GAP for c in current)
    for c in (c for c in cols if c not in lead):
        if used + sizes[c] + GAP > width and len(current) > len(keys):
            out.append(shown[current])
            current, used = list(keys), sum(sizes[k] + GAP for k in keys)
        current.append(c)
        used += sizes[c] + GAP
    out.append(shown[current])
    return out


def print_table(console: Console, shown: pd.DataFrame, title: str, keys: list[str] | None = None,
                lead: list[str] | None = None, width: int | None = None) -> None:  # fmt: skip
    width = width or terminal_width()
    keys = keys if keys is not None else [str(shown.columns[0])]
    parts = blocks(shown, keys, lead or [], width)
    for i, part in enumerate(parts):
        suffix = f" ({i + 1}/{len(parts)})" if len(parts) > 1 else ""
        table = Table(title=title + suffix, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                      pad_edge=False, collapse_padding=True)  # fmt: skip
        for col in part.columns:
            numeric = pd.api.types.is_numeric_dtype(part[col]) or " (" in str(col) or str(col).startswith("Δ")
            table.add_column(str(col), justify="right" if numeric else "left", no_wrap=True)
        for _, row in part.iterrows():
            cells = [str(v) for v in row.tolist()]
            table.add_row(*[f"[red]{c}[/red]" if "FAILED" in c else c for c in cells])
        Console(highlight=False, width=width, file=console.file).print(table)


def lead_columns(t: Any) -> tuple[list[str], list[str]]:
    """(the axis columns, the columns a reader needs next: the table's metric, n, Δ, status)."""
    from ablate.core.text import short_names
    from ablate.report.table import metric_title

    axes = list(short_names(list(t.names)).values())
    return axes, [metric_title(t.metric), "n", f"Δ {metric_title(t.metric)}", "status"]


def print_comparison(console: Console, t: Any, root: Any, width: int | None = None) -> None:
    """The per-configuration table, the study's layout, the published numbers, the notes, failed and missing runs,
    and where the full table is."""
    from ablate.report.table import metric_title

    keys, lead = lead_columns(t)
    print_table(console, t.shown, f"{t.title} ({root})", keys, lead, width)
    if t.layout is not None:
        title = f"{metric_title(t.metric)}: rows x columns as in the study's table layout"
        print_table(console, t.layout, title, [c for c in t.layout.columns if "=" not in str(c)], width=width)
    if t.published is not None:
        print_table(console, t.published, f"Published vs reproduced: {t.published_caption}", width=width)
    from ablate.report.effects import effects_view

    view = effects_view(t)
    if view is not None:
        print_table(console, view[0], f"Which axis matters: effects on {metric_title(t.metric)}, ranked by size",
                    ["effect"], width=width)  # fmt: skip
        for note in view[1]:
            console.print(f"- {note}", markup=False)
    for note in t.footnote:
        console.print(f"- {note}", markup=False)
    if t.failures:
        console.print("[red]failed runs:[/red]")
        for run_id, label, error in t.failures:
            console.print(f"  {run_id}  {label}: {error}", markup=False)
    if t.missing:
        console.print(f"[yellow]{len(t.missing)} run(s) missing (not run yet)[/yellow]")
    console.print(f"full table: {root}/table.md, table.csv (every number), table.html", markup=False)


def print_seeds(console: Console, t: Any, width: int | None = None) -> None:
    """Every seed's value of the table's metric per configuration; ``!`` marks an outlier seed."""
    from ablate.core.text import short_names
    from ablate.report.table import metric_title, seed_table

    shown = seed_table(t)
    keys = list(short_names(list(t.names)).values())
    print_table(console, shown, f"{metric_title(t.metric)} of every seed (! : more than 3 robust SDs from its row)",
                keys, width=width)  # fmt: skip
