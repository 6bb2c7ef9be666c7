"""The study report: results/<study>/report.html (self-contained: plots inline as base64 PNG) and report.md (plots
next to it in report_files/), rendered from the Jinja2 templates in ``templates/``.

Contents: the comparison table (the paper layout, published vs reproduced, the factor effects, every seed); the plots
of ``ablate.report.plots``; failed runs with their errors; the recipe, the study and the exact command to
reproduce, with the code's git commit and package versions.
Reads files only (the runs' records, curves and kept predictions).
"""

from __future__ import annotations

import base64
import platform
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from ablate.core.files import atomic_write
from ablate.core.text import format_value
from ablate.report.plots import PLOTS, Figure, PlotData, Unavailable
from ablate.report.plots.figure import DPI, NotApplicable
from ablate.report.render import HTML_STYLE, to_html_fragment, to_markdown
from ablate.report.table import ComparisonTable

FILES = "report_files"
_ENV = Environment(
    loader=PackageLoader("ablate.report"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    keep_trailing_newline=True,
)


@dataclass
class Report:
    html: Path
    md: Path
    figures: list[Figure] = field(default_factory=list)

    @property
    def images(self) -> dict[str, Path]:
        return {f.name: f.path for f in self.figures if f.path is not None}


def git_state(path: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            # the code's state: the committed tables and reports under results/ change with every run
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top,exclude)results"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" (uncommitted changes)" if dirty else "")) if commit else "unknown"


def reproduce_command(loaded, results: Path, command: str = "run", flags: tuple[str, ...] = ()) -> str:
    """The command line that makes these results again (``flags``: options of ``command``, e.g. --until-decided)."""
    parts = ["ablate", command, loaded.path, *flags]
    if str(results) != "results":
        parts += ["--results", str(results)]
    for key, value in loaded.overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        parts += ["--set", f"'{key}={text}'"]
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------- the report
def png_width(path: Path) -> int:
    """The pixel width of a PNG (its IHDR chunk)."""
    with open(path, "rb") as fh:
        return struct.unpack(">I", fh.read(24)[16:20])[0]


def write_report(loaded: Any, table: ComparisonTable, root: Path, results: Path, run_flags: tuple[str, ...] = ()
                 ) -> Report:  # fmt: skip
    """Draw every plot into ``root/report_files/`` and write ``root/report.html`` (self-contained) and
    ``root/report.md``. A plot that cannot be drawn (e.g. no finished run) is replaced by a note saying why; the
    report is always written. ``loaded`` is the ``LoadedStudy``."""
    study = loaded.study
    axes = list(study.axes)
    # each value once: a zipped axis repeats its values (scales [1], MS, MS zipped with flip F, F, T)
    values = {a: list(dict.fromkeys(format_value(v) for v in vals)) for a, vals in study.axes.items()}
    files = root / FILES
    files.mkdir(parents=True, exist_ok=True)
    data = PlotData(table=table, axes=axes, values=values, root=root)
    figures: list[Figure] = []
    for plot in PLOTS:
        fig = Figure(plot.name, plot.title, plot.caption)
        path = files / f"{plot.name}.png"
        try:
            plot.draw(data, path)
            fig.path = path
        except NotApplicable:
            path.unlink(missing_ok=True)
            continue
        except Exception as exc:  # noqa: BLE001 - a missing plot must not cost the whole report
            text = str(exc) if isinstance(exc, Unavailable) else f"{type(exc).__name__}: {exc}"
            fig.error = text.splitlines()[0] if text else type(exc).__name__
            path.unlink(missing_ok=True)
        figures.append(fig)
    counts = table.runs["status"].value_counts().to_dict()
    context = {
        "study": study,
        "status_line": ", ".join(f"{v} {k}" for k, v in counts.items()),
        "figures": figures,
        "files": FILES,
        "command": reproduce_command(loaded, results, "run", run_flags) + "\n"
        + reproduce_command(loaded, results, "report"),
        "provenance": _provenance(),
        "study_path": loaded.path,
        "study_text": Path(loaded.path).read_text() if Path(loaded.path).is_file() else "",
        "recipe_path": loaded.recipe_path,
        "recipe_text": yaml.safe_dump(loaded.recipe, sort_keys=False),
    }
    md = to_markdown(table, heading="##").replace(f"## {table.title}\n", "## Comparison table\n", 1)
    md_path, html_path = root / "report.md", root / "report.html"
    atomic_write(md_path, _ENV.get_template("report.md.j2").render(table_md=md, **context))
    images = {f.name: base64.b64encode(f.path.read_bytes()).decode() for f in figures if f.path}
    widths = {f.name: png_width(f.path) * 100 // DPI for f in figures if f.path}  # CSS px: shown at 1x
    page = _ENV.get_template("report.html.j2").render(
        table_html=to_html_fragment(table), table_style=HTML_STYLE, images=images, widths=widths,
        **context
    )
    atomic_write(html_path, page)
    return Report(html=html_path, md=md_path, figures=figures)


def _provenance() -> str:
    import importlib.metadata as md

    versions = []
    for pkg in ("ablate", "torch", "timm", "lightning"):
        try:
            versions.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    code = git_state(Path(__file__).resolve().parent)
    return f"Code: git {code}; Python {platform.python_version()}; {', '.join(versions)}."
