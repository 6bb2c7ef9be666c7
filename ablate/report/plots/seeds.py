"""Every seed of every configuration: one row per configuration, a dot per seed (numbered; red: an outlier against
its row), the mean as a bar with its ± std, and the baseline's mean as a dashed line to read Δ against."""

from __future__ import annotations

import math
from pathlib import Path

from ablate.report.plots.common import OUTLIER, PAGE_INCHES, PlotData, finish, pyplot


def plot(d: PlotData, out: Path) -> None:
    s = d.finished()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(PAGE_INCHES, 9.0), 0.36 * len(s) + 1.5))
    labels = []
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
            ax.annotate(str(int(seed)), (v, y), xytext=(0, 5), textcoords="offset points", ha="center", fontsize=6,
                        color=OUTLIER if red else "#555")  # fmt: skip
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
    ax.set_xlabel(f"{d.title} (%)")
    ax.grid(alpha=0.3, axis="x")
    finish(fig, out, f"{d.title} of every seed (numbered; red: outlier; bar: mean ± std; dashed: the baseline)")
