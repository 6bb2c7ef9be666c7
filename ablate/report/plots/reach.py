"""Where each configuration's reach ends: pixel accuracy against the pixel's distance to the evidence of its class
(``reach`` in metrics.json, on a data set that knows that distance: the synthetic one), one line per
configuration, mean over seeds with the band of the seeds; chance is 1 / (object classes) where the evidence is out
of sight. With a ``data.context_distance`` axis, a second panel gives the main metric against that distance, one
line per value of the other axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ablate.report.plots.figure import PAGE_INCHES, NotApplicable, PlotData, finish, pyplot

DISTANCE_AXIS = "data.context_distance"


def _reach(d: PlotData, row: pd.Series) -> pd.DataFrame | None:
    """Seeds x distance bins: the accuracy (%) of each finished seed of a configuration."""
    runs = d.seeds(row)
    rows = {}
    for run in runs[runs["status"] == "done"].itertuples():
        reach = d.record(run.run_id).get("reach")
        if reach:
            rows[run.seed] = {k: (np.nan if v is None else 100 * v) for k, v in reach.items()}
    if not rows:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index")  # metrics.json sorts its keys as text: "8-16" after "72+"
    return frame[sorted(frame.columns, key=lambda b: float(b.split("-")[0].rstrip("+")))]


def _distance(value: str) -> float:
    """The middle of a written context_distance range, ``(16,32)`` -> 24."""
    numbers = [float(x) for x in value.strip("()[] ").split(",") if x.strip()]
    return float(np.mean(numbers))


def plot(d: PlotData, out: Path) -> None:
    s = d.finished()
    curves = [(i, row, _reach(d, row)) for i, (_, row) in enumerate(s.iterrows())]
    curves = [(i, row, c) for i, row, c in curves if c is not None]
    if not curves:
        raise NotApplicable("no accuracy by distance recorded (the data set does not know where the evidence is)")
    plt = pyplot()
    probe = DISTANCE_AXIS in d.axes
    fig, panels = plt.subplots(1, 2 if probe else 1, figsize=(PAGE_INCHES if probe else 8.5, 4.0), squeeze=False)
    ax = panels[0][0]
    for i, row, frame in curves:
        x = np.arange(frame.shape[1])
        mean = frame.mean(0)
        ax.fill_between(x, frame.min(0), frame.max(0), color=d.colour(i), alpha=0.15, lw=0)
        ax.plot(x, mean, marker="o", ms=3, color=d.colour(i), label=d.label(row))
    bins = list(curves[0][2].columns)
    ax.set_xticks(range(len(bins)), bins)
    ax.axhline(25, color="#999", ls=":", lw=1)
    ax.axhline(50, color="#bbb", ls="--", lw=0.8)  # where the table's reach (px) is read off
    ax.annotate("chance (1 of 4 classes)", (len(bins) - 1, 25), xytext=(0, 3), textcoords="offset points",
                ha="right", fontsize=7, color="#777")  # fmt: skip
    ax.set(xlabel="distance to the class's evidence (px)", ylabel="pixel accuracy (%)", ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    if probe:
        ax2 = panels[0][1]
        others = [a for a in d.axes if a != DISTANCE_AXIS]
        groups = list(s.groupby(others, sort=False)) if others else [((), s)]
        for i, (key, g) in enumerate(groups):
            g = g[g["n"] > 0]
            x = [_distance(v) for v in g[DISTANCE_AXIS]]
            order = np.argsort(x)
            ys, es = g[f"{d.metric}_mean"].to_numpy()[order], g[f"{d.metric}_std"].fillna(0).to_numpy()[order]
            key = key if isinstance(key, tuple) else (key,)
            label = " ".join(f"{d.short[o]}={d.table.name(o, str(v))}" for o, v in zip(others, key, strict=True))
            ax2.errorbar(np.array(x)[order], ys, yerr=es, marker="o", capsize=3, color=d.colour(i), label=label)
        ax2.set(xlabel="context_distance of the data (middle of the range, px)", ylabel=f"{d.title} (%)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    finish(fig, out, "Reach: accuracy by distance to the evidence (mean over seeds, band: min-max)")
