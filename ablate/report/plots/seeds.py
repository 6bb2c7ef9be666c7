"""Every seed of every configuration: one row per configuration, a dot per seed (numbered; red: an outlier against
its row), the mean as a bar with its ± std, and the baseline's mean as a dashed line to read Δ against."""

from __future__ import annotations

import math
from pathlib import Path

from ablate.report.plots.figure import OUTLIER, PAGE_INCHES, PlotData, finish, pyplot


def plot(d: PlotData, out: Path) -> None:
    s = d.finished()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(PAGE_INCHES, 9.0), 0.36 * len(s) + 1.5))
    labels = []
    marks: list[tuple[float, int, int, bool]] = []  # (value, row, seed, outlier): numbered once the x range is known
    for i, (_, row) in enumerate(s.iterrows()):
        y = len(s) - 1 - i  # the table's first row on top
        labels.append(d.label(row) + (" (baseline)" if row.get("baseline") else ""))
        seeds = d.seeds(row)
        done = seeds[seeds["status"] == "done"]
        flagged = d.outliers(row)
        colour = d.colour(i)
        for seed, v in zip(done["seed"], done[d.metric], strict=True):
            red = int(seed) in flagged
            ax.scatter(v, y, s=30 if red else 18, color=OUTLIER if red else colour, alpha=0.95 if red else 0.6,
                       lw=0, zorder=3)  # fmt: skip
            marks.append((v, y, int(seed), red))
        if row["n"] == 0:
            ax.annotate("no finished run", (0.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7,
                        color=OUTLIER)  # fmt: skip
            continue
        mean, std = row[f"{d.metric}_mean"], row[f"{d.metric}_std"]
        ax.plot([mean, mean], [y - 0.3, y + 0.3], color="black", lw=1.6, zorder=4)
        if not math.isnan(std):
            ax.plot([mean - std, mean + std], [y, y], color="black", lw=0.8, alpha=0.6, zorder=2)
        if row.get("baseline"):
            ax.axvline(mean, color="#444", ls="--", lw=0.8, zorder=1)
    ax.set_yticks(range(len(s)), list(reversed(labels)), fontsize=7)
    ax.set_ylim(-0.7, len(s) - 0.3)
    _number_seeds(ax, marks, fig.dpi)
    ax.set_xlabel(f"{d.title} (%)")
    ax.grid(alpha=0.3, axis="x")
    finish(fig, out, f"{d.title} of every seed (numbered; red: outlier; bar: mean ± std; dashed: the baseline)")


def _number_seeds(ax, marks: list[tuple[float, int, int, bool]], dpi: float) -> None:
    """Each dot's seed number above it, or below where the label above would touch its neighbour's (seeds a few
    hundredths of a point apart have their dots on top of each other)."""
    gap = 9 * dpi / 72  # about two digits of the 6-pt font, in display pixels
    ax.get_xlim()  # settles the autoscaled x range, which transData reads
    for y in {m[1] for m in marks}:
        last = {5: -math.inf, -4: -math.inf}  # label offset (points) -> x of the last label placed there
        for v, _, seed, red in sorted(m for m in marks if m[1] == y):
            x = ax.transData.transform((v, y))[0]
            dy = 5 if x - last[5] >= gap or x - last[-4] < gap and last[5] <= last[-4] else -4
            last[dy] = x
            ax.annotate(str(seed), (v, y), xytext=(0, dy), textcoords="offset points", ha="center", fontsize=6,
                        va="bottom" if dy > 0 else "top", color=OUTLIER if red else "#555")  # fmt: skip
