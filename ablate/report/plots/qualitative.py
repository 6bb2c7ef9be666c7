"""The qualitative grid: per fixed validation image, the image, its ground truth and each configuration's
prediction, as the evaluation scored it (``runs/<id>/predictions.npz``)."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.core.text import short_names
from ablate.data.base import pascal_colour_map
from ablate.report.plots.figure import PAGE_INCHES, PlotData, finish, pyplot
from ablate.report.table import ComparisonTable

PREDICTIONS_FILE = "predictions.npz"  # written by ablate.train.record


@dataclass
class Grid:
    """The qualitative grid's content: per validation image a row of panels (title, RGB float H x W x 3, or None
    for a configuration without a model)."""

    indices: list[int]
    classes: list[str]
    palette: Any
    rows: list[list[tuple[str, Any]]]
    present: list[int]  # the classes some panel shows, in class order: the legend's (ADE20K has 150)
    split: str = ""  # the evaluated split the images are of ("": recorded before the split was kept)


def qualitative_grid(t: ComparisonTable, axes: list[str], root: Path) -> Grid:
    """Image, ground truth and each configuration's prediction on the fixed validation images its evaluation kept
    (``runs/<id>/predictions.npz``, written by the evaluation itself: the predictions of the evaluated model, with
    its eval output stride, scales, flip and CRF; the RGB as the data set stores it, so in its own colours; the
    classes in the data set's colours, e.g. VOC's palette, white where ignored)."""
    import numpy as np

    configs = []
    for _key, g in t.runs.groupby(axes, sort=False) if axes else [((), t.runs)]:
        done = g[g["status"] == "done"].sort_values("seed")
        first = g.iloc[0] if done.empty else done.iloc[0]
        label = " ".join(f"{short_names(axes)[a]}={t.name(a, str(first[a]))}" for a in axes) or "model"
        path = root / "runs" / first["run_id"] / PREDICTIONS_FILE
        if done.empty:
            label += " (failed)" if (g["status"] == "failed").any() else " (missing)"
        configs.append((label, np.load(path) if path.is_file() and not done.empty else None))
    # one split: the images of a study that evaluates several (eval.split) differ between them; the test split
    # where there is one (what a study on real data reports), else the first evaluated
    splits = [str(npz["split"]) if "split" in npz.files else "" for _, npz in configs if npz is not None]
    split = "test" if "test" in splits else (splits[0] if splits else "")
    if len(set(splits)) > 1:
        configs = [(label, npz) for label, npz in configs
                   if npz is None or ("split" in npz.files and str(npz["split"]) == split)]  # fmt: skip
    shown = next((npz for _, npz in configs if npz is not None), None)
    if shown is None:
        raise RuntimeError("no run kept predictions (runs finished before predictions were recorded)")
    classes, indices = [str(c) for c in shown["classes"]], [int(i) for i in shown["indices"]]
    # the data set's class colours (VOC's colour map for predictions recorded before they were kept)
    palette = (shown["palette"] if "palette" in shown.files else pascal_colour_map(len(classes))) / 255.0

    present: set[int] = set()

    def colour(mask):
        img = np.ones((*mask.shape, 3))
        valid = mask < len(classes)  # white: ignored
        img[valid] = palette[mask[valid]]
        present.update(np.unique(mask[valid]).tolist())
        return img

    rows = []
    for r in range(len(indices)):
        panels = [("image", shown["rgb"][r] / 255.0), ("ground truth", colour(shown["labels"][r]))]
        for label, npz in configs:
            same = npz is not None and [int(i) for i in npz["indices"]] == indices
            panels.append((label, colour(npz["predictions"][r]) if same else None))
        rows.append(panels)
    return Grid(indices=indices, classes=classes, palette=palette, rows=rows, present=sorted(present), split=split)


def plot(d: PlotData, out: Path) -> None:
    grid_data = qualitative_grid(d.table, d.axes, d.root)
    plt = pyplot()
    n, cols = len(grid_data.rows), len(grid_data.rows[0])
    side = min(1.7, PAGE_INCHES / cols)
    # titles wrapped to their panel's width (a 7-pt character is about 0.6 x 7 pt wide): long axis labels of
    # narrow panels otherwise run into their neighbours
    titles = [_wrap(title, max(6, int(side * 72 / (0.6 * 7)))) for title, _ in grid_data.rows[0]]
    extra = 0.11 * (max(t.count("\n") for t in titles))  # inches for the title lines beyond the first
    fig, grid = plt.subplots(n, cols, figsize=(side * cols, (side + 0.05) * n + 0.6 + extra), squeeze=False)
    for r, panels in enumerate(grid_data.rows):
        for c, (_title, img) in enumerate(panels):
            ax = grid[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "no model", ha="center", va="center", color="#b00020", fontsize=8)
            else:
                ax.imshow(img, interpolation="nearest")
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
        grid[r][0].set_ylabel(f"{grid_data.split or 'val'} #{grid_data.indices[r]}", fontsize=7)
    shown = grid_data.present
    handles = [plt.Rectangle((0, 0), 1, 1, color=grid_data.palette[i]) for i in shown]
    names = [grid_data.classes[i] for i in shown]
    ncol = max(1, min(len(shown), int(fig.get_figwidth() / 1.25)))  # an entry: a swatch and ~14 characters
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    legend_rows = -(-len(shown) // ncol)  # about 0.15 inch a row
    bottom = min(0.4, 0.05 + 0.15 * max(0, legend_rows - 1) / fig.get_figheight())
    title = f"Predictions on fixed {grid_data.split or 'validation'} images (first finished seed of each configuration)"
    finish(fig, out, title, 9, rect=(0, bottom, 1, 1))


def _wrap(title: str, width: int) -> str:
    """``title`` in lines of at most ``width`` characters, broken at spaces or after ``,``, ``=`` and ``(`` (an
    axis label such as ``head=aspp(rates=(2,4,5))`` has no spaces: a plain fill would leave a lone ``)``)."""
    lines: list[str] = []
    for word in textwrap.wrap(title, width, break_long_words=False) or [""]:
        line = ""
        for token in re.split(r"(?<=[,=(])", word):
            if line and len(line) + len(token) > width:
                lines.append(line)
                line = ""
            line += token
        lines += textwrap.wrap(line, width) or [""]  # a token longer than the panel: cut where it must
    return "\n".join(lines)
