"""The commands' consoles (stdout for results, stderr for messages), and bad input as one line: exit code 2, never a
traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from ablate.core.errors import ConfigError
from ablate.report.terminal import terminal_width

console = Console(highlight=False, width=terminal_width())
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input: one line on stderr, exit code 2, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc))
