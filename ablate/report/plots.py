"""The report's plots (matplotlib, Agg): the main metric against each axis, accuracy vs cost, per-class IoU,
training curves and the qualitative grid. Each reads the comparison table or the files the runs left."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.core.curve import CURVE_FILE, read_curve
from ablate.report.table import ComparisonTable, metric_title, short_names

PREDICTIONS_FILE = "predictions.npz"  # written by ablate.train.record

PALETTE = [
    (0.10, 0.10, 0.10),
    (0.90, 0.30, 0.25),
    (0.20, 0.55, 0.90),
    (0.30, 0.75, 0.35),
    (0.95, 0.75, 0.20),
    (0.60, 0.35, 0.80),
    (0.20, 0.80, 0.80),
    (0.90, 0.50, 0.80),
]


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    path: Path | None = None
    error: str = ""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _finish(fig, out: Path, title: str, fontsize: int = 9, rect: tuple | None = None) -> None:
    """Title, layout, save, close: the end of every plot."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout(**({"rect": rect} if rect else {}))
    fig.savefig(out)
    plt.close(fig)


def _config_label(row: pd.Series, axes: list[str]) -> str:
    names = short_names(axes)
    return " ".join(f"{names[a]}={row[a]}" for a in axes) or "all"


# ------------------------------------------------------------------------------------------------- plots
def plot_metric_vs_axes(t: ComparisonTable, axes: list[str], values: dict[str, list[str]], out: Path) -> None:
    plt = _plt()
    s, metric = t.summary, t.metric
    fig, panels = plt.subplots(1, max(1, len(axes)), figsize=(4.6 * max(1, len(axes)), 3.4), squeeze=False)
    names = short_names(axes)
    for ax, axis in zip(panels[0], axes or ["_"], strict=False):
        if not axes:
            break
        order = values[axis]
        others = [a for a in axes if a != axis]
        groups = s.groupby(others, sort=False) if others else [((), s)]
        for i, (key, g) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            label = " ".join(f"{names[o]}={k}" for o, k in zip(others, key, strict=True)) or metric_title(metric)
            g = g.set_index(axis).reindex(order)
            x = list(range(len(order)))
            color = PALETTE[(i + 1) % len(PALETTE)]
            ax.errorbar(
                x,
                g[f"{metric}_mean"],
                yerr=g[f"{metric}_std"].fillna(0),
                marker="o",
                capsize=3,
                label=label,
                color=color,
            )
            failed = [j for j, n in enumerate(g["n"].fillna(0)) if n == 0]
            for j in failed:
                ax.annotate(
                    "failed",
                    (j, 0),
                    xycoords=("data", "axes fraction"),
                    color="#b00020",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        ax.set_xticks(range(len(order)), order, rotation=20 if max(map(len, order)) > 8 else 0)
        ax.set_xlabel(names[axis])
        ax.set_ylabel(f"{metric_title(metric)} (%)")
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7, frameon=False)
    _finish(fig, out, f"{metric_title(metric)} vs each axis (mean ± std over seeds)", 10)


def plot_cost(t: ComparisonTable, axes: list[str], out: Path) -> None:
    plt = _plt()
    s, metric = t.summary, t.metric
    keys = [("macs", 1e9, "GMACs"), ("latency_ms", 1, "latency (ms)"), ("params", 1e6, "parameters (M)")]
    keys = [k for k in keys if k[0] in s]
    fig, panels = plt.subplots(1, max(1, len(keys)), figsize=(4.4 * max(1, len(keys)), 3.4), squeeze=False)
    ok = s[s["n"] > 0]
    for ax, (key, scale, label) in zip(panels[0], keys, strict=False):
        for i, (_, row) in enumerate(ok.iterrows()):
            ax.errorbar(
                row[key] / scale,
                row[f"{metric}_mean"],
                yerr=0 if pd.isna(row[f"{metric}_std"]) else row[f"{metric}_std"],
                marker="o",
                capsize=3,
                color=PALETTE[(i + 1) % len(PALETTE)],
            )
            ax.annotate(
                _config_label(row, axes),
                (row[key] / scale, row[f"{metric}_mean"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(label)
        ax.set_ylabel(f"{metric_title(metric)} (%)")
        ax.locator_params(axis="x", nbins=4)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.grid(alpha=0.3)
    hw = "; ".join(dict.fromkeys(h for h in s.get("hardware", []) if h))
    _finish(fig, out, f"{metric_title(metric)} vs cost (batch 1 at the eval size; {hw})", 9)


def plot_per_class(t: ComparisonTable, axes: list[str], out: Path) -> None:
    plt = _plt()
    s = t.summary
    cols = [c for c in s.columns if str(c).startswith("iou:")]
    labels = [_config_label(r, axes) for _, r in s.iterrows()]
    data = s[cols].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 3, 0.38 * len(labels) + 1.4))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.split(":", 1)[1] for c in cols])
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            text = "failed" if s.iloc[i]["n"] == 0 and s.iloc[i]["failed"] else ("—" if math.isnan(v) else f"{v:.1f}")
            dark = math.isnan(v) or v > 60  # NaN cells are blank (white): dark text
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="#b00020" if text == "failed" else ("black" if dark else "white"),
            )
    fig.colorbar(im, ax=ax, label="IoU (%)")
    _finish(fig, out, "Per-class IoU (mean over seeds)", 10)


def plot_curves(t: ComparisonTable, axes: list[str], root: Path, out: Path) -> bool:
    plt = _plt()
    df = t.runs
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    drawn = False
    keys = axes or []
    groups = df.groupby(keys, sort=False) if keys else [((), df)]
    for i, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = " ".join(f"{short_names(keys)[a]}={v}" for a, v in zip(keys, key, strict=True)) or "all"
        color = PALETTE[(i + 1) % len(PALETTE)]
        first = True
        for row in g.itertuples():
            points = read_curve(root / "trainings" / row.train_id / CURVE_FILE)
            if not points:
                continue
            curve = pd.DataFrame(points, columns=["step", "loss", "lr"])
            loss = curve["loss"].where(curve["loss"].apply(lambda v: math.isfinite(v) and v > 0))
            failed = row.status == "failed"
            ax.plot(
                curve["step"],
                loss,
                color=color,
                lw=1,
                ls="--" if failed else "-",
                alpha=0.85,
                label=(label + (" (failed)" if failed else "")) if first else None,
            )
            first, drawn = False, True
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    _finish(fig, out, "Training curves (one line per seed; dashed: failed)", 10)
    return drawn


@dataclass
class Grid:
    """The qualitative grid's content: per validation image a row of panels (title, RGB float H x W x 3, or None
    for a configuration without a model)."""

    indices: list[int]
    classes: list[str]
    palette: Any
    rows: list[list[tuple[str, Any]]]


def qualitative_grid(t: ComparisonTable, axes: list[str], root: Path) -> Grid:
    """Image, ground truth and each configuration's prediction on the fixed validation images its evaluation kept
    (``runs/<id>/predictions.npz``, written by the evaluation itself: the predictions of the evaluated model, with
    its eval output stride, scales, flip and CRF; the RGB as the data set stores it, so in its own colours)."""
    import numpy as np

    configs = []
    for _key, g in t.runs.groupby(axes, sort=False) if axes else [((), t.runs)]:
        done = g[g["status"] == "done"].sort_values("seed")
        first = g.iloc[0] if done.empty else done.iloc[0]
        label = " ".join(f"{short_names(axes)[a]}={first[a]}" for a in axes) or "model"
        path = root / "runs" / first["run_id"] / PREDICTIONS_FILE
        if done.empty:
            label += " (failed)" if (g["status"] == "failed").any() else " (missing)"
        configs.append((label, np.load(path) if path.is_file() and not done.empty else None))
    shown = next((npz for _, npz in configs if npz is not None), None)
    if shown is None:
        raise RuntimeError("no run kept predictions (runs finished before predictions were recorded)")
    classes, indices = [str(c) for c in shown["classes"]], [int(i) for i in shown["indices"]]
    palette = np.array([PALETTE[i % len(PALETTE)] for i in range(len(classes))])

    def colour(mask):
        img = np.ones((*mask.shape, 3))
        valid = mask < len(classes)  # white: ignored
        img[valid] = palette[mask[valid]]
        return img

    rows = []
    for r in range(len(indices)):
        panels = [("image", shown["rgb"][r] / 255.0), ("ground truth", colour(shown["labels"][r]))]
        for label, npz in configs:
            same = npz is not None and [int(i) for i in npz["indices"]] == indices
            panels.append((label, colour(npz["predictions"][r]) if same else None))
        rows.append(panels)
    return Grid(indices=indices, classes=classes, palette=palette, rows=rows)


def plot_qualitative(t: ComparisonTable, axes: list[str], root: Path, out: Path) -> None:
    grid_data = qualitative_grid(t, axes, root)
    plt = _plt()
    n, cols = len(grid_data.rows), len(grid_data.rows[0])
    fig, grid = plt.subplots(n, cols, figsize=(1.7 * cols, 1.75 * n + 0.6), squeeze=False)
    for r, panels in enumerate(grid_data.rows):
        for c, (title, img) in enumerate(panels):
            ax = grid[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "no model", ha="center", va="center", color="#b00020", fontsize=8)
            else:
                ax.imshow(img, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=7)
        grid[r][0].set_ylabel(f"val #{grid_data.indices[r]}", fontsize=7)
    classes, palette = grid_data.classes, grid_data.palette
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i]) for i in range(len(classes))]
    fig.legend(handles, classes, loc="lower center", ncol=min(len(classes), 8), fontsize=7, frameon=False)
    _finish(fig, out, "Predictions on fixed validation images (first finished seed of each configuration)", 9,
            rect=(0, 0.05, 1, 1))  # fmt: skip
