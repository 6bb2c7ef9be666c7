"""The main metric against each axis: per axis value a point (mean over seeds) with its ± std bar and every seed
beside it; the other axes' combinations side by side in their own colours. Lines join the points only where the
axis is a number (output stride, a distance), never across categories."""

from __future__ import annotations

import math
from pathlib import Path

from ablate.report.plots.figure import OUTLIER, PAGE_INCHES, PlotData, finish, pyplot, slanted, tick_labels


def _numeric(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _layout(d: PlotData) -> tuple[list[float], int]:
    """Each axis's panel width (inches, by its number of values) and how many panels fit a row of the page."""
    widths = [min(PAGE_INCHES, max(3.2, 0.85 * len(d.values[a]) + 1.6)) for a in d.axes]
    per_row, total = 0, 0.0
    for w in widths:
        if total + w > PAGE_INCHES and per_row:
            break
        per_row, total = per_row + 1, total + w
    return widths, max(1, per_row)


def plot(d: PlotData, out: Path) -> None:
    s = d.finished()
    if not d.axes:
        raise ValueError("the study has no axis")
    plt = pyplot()
    widths, per_row = _layout(d)
    rows = math.ceil(len(d.axes) / per_row)
    # per axis, the combinations of the other axes: one colour each
    grouped = {}
    for axis in d.axes:
        others = [a for a in d.axes if a != axis]
        grouped[axis] = (others, list(s.groupby(others, sort=False)) if others else [((), s)])
    # a legend of more than a few combinations goes below its panel (inside it covered the points), its lines
    # added to the row's height
    keys = max(len(groups) for others, groups in grouped.values() if others) if len(d.axes) > 1 else 0
    below = keys > 3
    fig = plt.figure(figsize=(min(PAGE_INCHES, sum(widths[:per_row])), (3.6 + (0.16 * keys if below else 0)) * rows))
    grid = fig.add_gridspec(rows, per_row, width_ratios=widths[:per_row])
    for k, axis in enumerate(d.axes):
        ax = fig.add_subplot(grid[k // per_row, k % per_row])
        order = d.values[axis]
        others, groups = grouped[axis]
        step = 0.7 / max(1, len(groups))
        for i, (key, g) in enumerate(groups):
            shift = (i - (len(groups) - 1) / 2) * step
            colour = d.colour(i)
            g = g.set_index(axis).reindex(order)
            xs, means = [], []
            for j, value in enumerate(order):
                if value not in g.index or not g.loc[value, "n"] >= 0:
                    continue  # not in the grid (excluded)
                row = g.loc[value]
                if row["n"] == 0:
                    ax.annotate("no finished run", (j + shift, 0.02), xycoords=("data", "axes fraction"),
                                color=OUTLIER, ha="center", fontsize=7, rotation=90)  # fmt: skip
                    continue
                full = row.copy()
                full[axis] = value
                seeds = d.seeds(full)
                done = seeds[seeds["status"] == "done"]
                flagged = d.outliers(row)
                for n, (seed, v) in enumerate(zip(done["seed"], done[d.metric], strict=True)):
                    off = shift + (n - (len(done) - 1) / 2) * step * 0.25
                    red = int(seed) in flagged
                    ax.scatter(j + off, v, s=14 if red else 9, color=OUTLIER if red else colour,
                               alpha=0.9 if red else 0.45, lw=0, zorder=2)  # fmt: skip
                std = 0.0 if math.isnan(row[f"{d.metric}_std"]) else row[f"{d.metric}_std"]
                ax.errorbar(j + shift, row[f"{d.metric}_mean"], yerr=std, fmt="o", ms=5, capsize=3, color=colour,
                            zorder=3)  # fmt: skip
                xs.append(j + shift)
                means.append(row[f"{d.metric}_mean"])
            if _numeric(order) and len(xs) > 1:
                ax.plot(xs, means, color=colour, lw=1, alpha=0.6, zorder=1)
            key = key if isinstance(key, tuple) else (key,)
            ax.plot([], [], "o", color=colour, label=" ".join(
                f"{d.short[o]}={d.table.name(o, str(v))}" for o, v in zip(others, key, strict=True)) or d.title)
        names = [d.table.name(axis, v) for v in order]
        tick_labels(ax, names)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_xlabel(d.short[axis])
        ax.set_ylabel(f"{d.title} (%)")
        ax.grid(alpha=0.3, axis="y")
        if others and below:
            drop = 0.2 + (0.012 * max(map(len, names)) if slanted(names) else 0)  # clear of slanted tick labels
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -drop))
        elif others:
            ax.legend(fontsize=7, loc="best")
    finish(fig, out, f"{d.title} vs each axis: mean ± std over seeds (dots: the seeds; red: an outlier seed)")
