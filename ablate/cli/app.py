"""The ``ablate`` application: one-line usage errors, ``--version``, help as prose. The commands are in
``ablate.cli.run``, ``ablate.cli.browse``, ``ablate.cli.listing``, ``ablate.cli.data`` (the ``data`` sub-commands)
and ``ablate.bench.command``; ``ablate.cli`` puts them together."""

from __future__ import annotations

import inspect
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from ablate.cli.console import console, err_console
from ablate.core import signals

# The order the help lists the commands in: the order a user meets them (run a study, look at it, evaluate again),
# then the listings and the benchmark. A command not named here (a plugin's, a new one) comes after these, in the
# order it was registered.
COMMAND_ORDER = ("run", "plan", "status", "table", "report", "eval", "heads", "datasets", "executors", "data", "bench")


def _untyped_flags(params: list[Any]) -> list[Any]:
    """A flag takes no value, so its help shows no type: typer 0.29 prints ``<bool>`` after every flag
    (``--version <bool>``), which its own style (and click's) leaves out. An empty metavar is what it shows."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    """Every command of ``ablate``: its flags' help without a type (``_untyped_flags``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    """A group of commands: listed in ``COMMAND_ORDER`` (the rest as registered), flags untyped."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)  # registration order
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(COMMAND_ORDER)))  # stable: the rest as registered


def _restyle(group: typer.core.TyperGroup) -> None:
    """typer builds plain TyperCommand/TyperGroup objects: make them the same objects with untyped flags (a sub-app
    such as ``ablate data ...`` too)."""
    for command in group.commands.values():
        if type(command) is typer.core.TyperCommand:
            command.__class__ = _Command
        elif type(command) is typer.core.TyperGroup:
            command.__class__ = _Group
            _restyle(command)


class _OneLineErrors(_Group):
    """Usage errors (an unknown option, a value out of range) as one line and exit code 2, like every other bad
    input; a signal outside a training (it checkpoints itself) as one line and 128 + its number. The help lists the
    commands in ``COMMAND_ORDER`` and shows no type after a flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _restyle(self)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            sys.exit(130)
        except TyperException as exc:  # click's usage errors (typer vendors click): an option, a value, a command
            if not exc.format_message():  # `ablate` alone: the help was the answer
                sys.exit(0)
            ctx, names = getattr(exc, "ctx", None), []
            while ctx is not None and ctx.parent is not None:  # the command's path below ``ablate``: data check
                names.insert(0, ctx.info_name)
                ctx = ctx.parent
            command = " ".join(["ablate", *names, "--help"])
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


def reflow_help(typer_app: typer.Typer = app) -> None:
    """Every command's help as prose, sub-commands' (``ablate data check``) too (called once every command is
    registered)."""
    for info in typer_app.registered_commands:
        info.help = _prose(info.help or (info.callback.__doc__ if info.callback else None))
    for group in typer_app.registered_groups:
        reflow_help(group.typer_instance)
