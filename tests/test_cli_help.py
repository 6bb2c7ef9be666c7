"""The help: commands in the order a user meets them, and no type after a flag (a flag takes no value)."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from ablate.cli import app
from ablate.cli.app import COMMAND_ORDER, _OneLineErrors

runner = CliRunner()


def _commands(help_text: str) -> list[str]:
    """The command names of the help's Commands panel, in order."""
    panel = help_text.split("Commands", 1)[1]
    return [m.group(1) for m in re.finditer(r"^│ (\w+)\s", panel, flags=re.MULTILINE)]


def test_help_lists_commands_in_the_order_a_user_meets_them():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    shown = _commands(result.output)
    expected = ["run", "plan", "status", "table", "report", "eval", "heads", "datasets", "executors", "bench"]
    assert [c for c in shown if c in expected] == expected, shown
    assert shown[0] == "run"


def test_flags_show_no_type_placeholder():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert "--version" in result.output and "<bool>" not in result.output, result.output
    for command in ("run", "table", "report", "bench"):
        out = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "--help" in out and "<bool>" not in out, out
        if command == "run":  # value options keep their type
            assert re.search(r"--retry-failed\s+Run again", out) and "<path>" in out and "<int range>" in out, out


def test_a_command_not_in_the_order_comes_last_and_a_sub_app_is_restyled():
    """A later command (a plugin's) goes after the known ones in registration order; ``data`` sits before bench."""
    extra = typer.Typer(cls=_OneLineErrors, add_completion=False)

    def command(name: str):
        def body(force: bool = typer.Option(False, "--force", help="Do it.")) -> None:
            """A command."""

        body.__name__ = name
        return body

    for name in ("zeta", "bench", "alpha", "status", "run"):
        extra.command(name)(command(name))
    sub = typer.Typer()
    sub.command("fetch")(command("fetch"))
    sub.command("list")(command("list"))
    extra.add_typer(sub, name="data")
    out = runner.invoke(extra, ["--help"], env={"COLUMNS": "120"}).output
    assert _commands(out) == ["run", "status", "data", "bench", "zeta", "alpha"], out
    assert COMMAND_ORDER.index("data") < COMMAND_ORDER.index("bench")
    for args in (["zeta", "--help"], ["data", "fetch", "--help"]):
        out = runner.invoke(extra, args, env={"COLUMNS": "120"}).output
        assert "--force" in out and "<bool>" not in out, out
