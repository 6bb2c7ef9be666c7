"""A command's study session, opened from its arguments (a study, or a recipe with ``--axis``), and what the
commands print and save from it: the table, the stale runs, the report."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.markup import escape

from ablate.cli.console import console, err_console
from ablate.core.errors import ConfigError


def session_of(study: Path, sets: list[str] | None, results: Path, axes: list[str] | None = None,
               seeds: str | None = None, save: Path | None = None, recipe: Path | None = None):  # fmt: skip
    """The study session of STUDY (``--seeds`` and ``--recipe`` replace its own), or of the ad-hoc study of a
    recipe and ``--axis`` options."""
    from ablate.config.overrides import parse_sets
    from ablate.config.yaml_io import load_yaml
    from ablate.study import adhoc
    from ablate.study.session import StudySession

    a_recipe = study.is_file() and adhoc.is_recipe(study)
    if axes or save or a_recipe:
        if study.is_file() and not a_recipe:
            raise ConfigError(f"{study}: is a study; --axis and --save-study go with a recipe")
        if recipe is not None:
            raise ConfigError(f"--recipe {recipe}: goes with a study (STUDY is the recipe here)")
        load_yaml(study)  # a missing or broken file says so, in one line
        study = adhoc.write_adhoc(study, axes or [], seeds, results, save)
        return StudySession(study, parse_sets(sets), results)
    chosen = adhoc.parse_seeds(seeds) if seeds else None
    return StudySession(study, parse_sets(sets), results, recipe=recipe, seeds=chosen)


def print_and_save_table(session, fmt: str = "terminal"):
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


def print_stale(session, stale: dict[str, list[str]], each: bool = False) -> None:
    """Say which finished runs were made by other plugin code than now (``each``: one line per run)."""
    if not stale:
        return
    from ablate.study.stale import describe

    if each:
        for r in session.runs:
            if r.id in stale:
                console.print(f"  stale    {r.id}  {escape(r.label)}  (changed: {escape(', '.join(stale[r.id]))})")
    shown = "" if each else ": " + ", ".join(r.id for r in session.runs if r.id in stale)
    them = "them" if len(stale) > 1 else "it"
    console.print(f"[yellow]{escape(describe(stale))}[/yellow]{shown}; `ablate run --rerun-stale` runs {them} again")


def write_report(session, t):
    report = session.write_report(t)
    console.print(f"report: {report.html} and {report.md}", markup=False)
    for f in report.figures:
        if f.error:
            console.print(f"  [yellow]{escape(f.title)} not drawn[/yellow]: {escape(f.error)}")
    return report
