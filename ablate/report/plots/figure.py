"""What every report plot shares: the data it reads (``PlotData``), readable configuration labels, one colour per
configuration across plots, and saving at 2x resolution."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.text import short_names
from ablate.report.table import ComparisonTable, metric_title

DPI = 200  # 2x: the page shows a figure at 100 CSS px per inch, so the PNG is sharp on high-density screens
PAGE_INCHES = 12.4  # the widest figure that fits a 1280 px window beside the page margins
OUTLIER = "#c62828"
# colour-blind-safe qualitative colours (Okabe & Ito), then matplotlib's tab10 for longer studies
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]  # fmt: skip


class Unavailable(RuntimeError):
    """A plot that cannot be drawn from what the runs recorded; the report says why in its place."""


class NotApplicable(Unavailable):
    """A plot of something the data set does not have (the reach on real photos): left out of the report."""


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    path: Path | None = None
    error: str = ""


@dataclass
class PlotData:
    """What a plot reads: the comparison table, the study's axes with their written values (study order), and the
    study folder (runs' records, curves, kept predictions)."""

    table: ComparisonTable
    axes: list[str]
    values: dict[str, list[str]]
    root: Path
    _records: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def metric(self) -> str:
        return self.table.metric

    @property
    def title(self) -> str:
        return metric_title(self.table.metric)

    @cached_property
    def short(self) -> dict[str, str]:
        return short_names(self.axes)

    def label(self, row: pd.Series, axes: list[str] | None = None) -> str:
        """``rates=(6,12,18) output_stride=16``: the readable names of a row's axis values."""
        axes = self.axes if axes is None else axes
        return " ".join(f"{self.short[a]}={self.table.name(a, str(row[a]))}" for a in axes) or "all"

    def colour(self, i: int) -> str:
        return COLOURS[i % len(COLOURS)]

    def seeds(self, row: pd.Series) -> pd.DataFrame:
        """The runs of a summary row (one configuration): every seed, finished or not."""
        runs = self.table.runs
        mask = pd.Series(True, index=runs.index)
        for a in self.axes:
            mask &= runs[a] == row[a]
        return runs[mask].sort_values("seed")

    def outliers(self, row: pd.Series) -> set[int]:
        return {int(s) for s in str(row.get("outliers", "") or "").split(",") if s}

    def record(self, run_id: str) -> dict[str, Any]:
        """A run's metrics.json (read once)."""
        if run_id not in self._records:
            path = self.root / "runs" / run_id / "metrics.json"
            self._records[run_id] = json.loads(path.read_text()) if path.is_file() else {}
        return self._records[run_id]

    def finished(self) -> pd.DataFrame:
        s = self.table.summary
        if not (s["n"] > 0).any():
            raise Unavailable("no finished run")
        return s


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": DPI, "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.frameon": False})  # fmt: skip
    return plt


def finish(fig, out: Path, title: str, fontsize: int = 10, rect: tuple | None = None) -> None:
    """Title, layout, save (2x), close: the end of every plot."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout(**({"rect": rect} if rect else {}))
    fig.savefig(out)
    plt.close(fig)


def slanted(labels: list[str]) -> bool:
    """Whether ``tick_labels`` slants these x labels (long or many)."""
    return max(map(len, labels), default=0) * len(labels) > 48


def tick_labels(ax, labels: list[str], axis: str = "x") -> None:
    """Category labels that do not overlap: slanted when they are long or many."""
    positions = range(len(labels))
    if axis == "y":
        ax.set_yticks(positions, labels)
        return
    slant = slanted(labels)
    ax.set_xticks(positions, labels, rotation=30 if slant else 0, ha="right" if slant else "center",
                  rotation_mode="anchor")  # fmt: skip
