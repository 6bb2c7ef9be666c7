"""``ablate heads``, ``ablate datasets``, ``ablate executors``: what each registry holds, with every parameter's type
and default, as tables for the terminal or (``--markdown``) the blocks README shows, so README's lists are the
registries' and a test says when they drift. Imports no torch."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ablate.cli.app import app
from ablate.cli.console import console, user_errors

# kind -> (module, registry, the recipe or study key that picks an entry)
REGISTRIES = {
    "heads": ("ablate.models.heads", "HEADS", "model.head.name"),
    "datasets": ("ablate.data", "DATASETS", "data.name"),
    "executors": ("ablate.study.executors", "EXECUTORS", "executor.kind"),
}
START = "<!-- ablate {kind} --markdown -->"
END = "<!-- end of ablate {kind} -->"


def registry(kind: str):
    module, name, _ = REGISTRIES[kind]
    return getattr(importlib.import_module(module), name)


def summary(doc: str | None) -> str:
    """The first sentence of a docstring, on one line."""
    text = " ".join((doc or "").strip().split("\n\n")[0].split())
    match = re.search(r"(?<!e\.g)(?<!i\.e)(?<! al)\.(\s|$)", text)
    return text[: match.start() + 1] if match else text


def markdown(kind: str) -> str:
    """The README block of a registry: one row per entry, its key, what it is and its parameters (defaults)."""
    from ablate.core.schema import describe_fields

    reg = registry(kind)
    key = REGISTRIES[kind][2]
    lines = [START.format(kind=kind), f"| `{key}` | what it is | parameters (default) |", "| --- | --- | --- |"]
    for name, config in reg.items():
        params = ", ".join(f"`{p}` ({d})" for p, _, d, _ in describe_fields(config, (reg.key,)))
        lines.append(f"| `{name}` | {summary(config.__doc__)} | {params or '—'} |".replace("PydanticUndefined", "—"))
    return "\n".join([*lines, END.format(kind=kind)]) + "\n"


def show(kind: str, name: str | None, as_markdown: bool, plugin: list[str] | None = None) -> None:
    from ablate.core import plugins
    from ablate.core.schema import describe_fields

    with user_errors():  # the installed plugins and those named (as a study's plugins: key would)
        reg = registry(kind)
        plugins.load_entry_points()
        plugins.load(plugin or [], Path.cwd(), "--plugin")
    if as_markdown:
        print(markdown(kind), end="")
        return
    with user_errors():
        chosen = [(name, reg[name])] if name is not None else reg.items()
    for entry, config in chosen:
        rows = describe_fields(config, (reg.key,))
        out = Table(title=escape(f"{entry}: {summary(config.__doc__)}"), title_justify="left")
        columns = ["parameter", "type", "default"] + (["description"] if any(r[3] for r in rows) else [])
        for col in columns:
            out.add_column(col)
        for row in rows:
            out.add_row(*(escape(cell.replace("PydanticUndefined", "—")) for cell in row[: len(columns)]))
        console.print(out)


NameArg = Annotated[str | None, typer.Argument(help="Show only this one.", show_default=False)]
MarkdownOpt = Annotated[bool, typer.Option("--markdown", help="Print README's markdown block instead.")]
PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        "-p",
        help="Import this plugin first, as a study's plugins: key does: a module name or a .py file. Repeatable; "
        "installed plugins (entry points ablate.plugins) are always imported.",
        show_default=False,
    ),
]


@app.command()
def heads(name: NameArg = None, as_markdown: MarkdownOpt = False, plugin: PluginOpt = None) -> None:
    """List every context head (model.head.name) with its parameters, their types and defaults, plugins' included.
    Imports no torch (a plugin may)."""
    show("heads", name, as_markdown, plugin)


@app.command()
def datasets(name: NameArg = None, as_markdown: MarkdownOpt = False, plugin: PluginOpt = None) -> None:
    """List every data set (data.name) with its settings, their types and defaults, plugins' included. Imports no
    torch (a plugin may)."""
    show("datasets", name, as_markdown, plugin)


@app.command()
def executors(name: NameArg = None, as_markdown: MarkdownOpt = False, plugin: PluginOpt = None) -> None:
    """List every executor (a study's executor.kind) with its settings, their types and defaults, plugins'
    included."""
    show("executors", name, as_markdown, plugin)
