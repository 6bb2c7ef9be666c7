"""Which axis matters: every main effect and interaction of the study's linear model (``ablate.report.stats``) as
a point with its 95% CI, ranked by size, the zero line drawn; an interval clear of zero is an effect the seeds
resolve."""

from __future__ import annotations

import math
from pathlib import Path

from ablate.report.effects import effects_view
from ablate.report.plots.figure import PAGE_INCHES, PlotData, Unavailable, finish, pyplot

KINDS = {"main": ("#0072B2", "main effect"), "interaction": ("#E69F00", "interaction")}


def plot(d: PlotData, out: Path) -> None:
    view = effects_view(d.table)
    if view is None:
        raise Unavailable("no factor effects (the study needs an axis and finished runs)")
    table = d.table.effects.table.reset_index(drop=True)
    frame = view[0].reset_index(drop=True)  # the same rows, in the same order, as readable text
    order = sorted(range(len(table)), key=lambda i: -abs(table.loc[i, "estimate"])
                   if not math.isnan(table.loc[i, "estimate"]) else 0)  # fmt: skip
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(PAGE_INCHES, 9.0), 0.34 * len(order) + 1.5))
    for y, i in enumerate(reversed(order)):  # the largest on top
        r = table.loc[i]
        colour, _ = KINDS.get(r["kind"], KINDS["main"])
        if math.isnan(r["estimate"]):
            ax.annotate("not estimable", (0, y), va="center", fontsize=7, color="#777")
            continue
        low, high = r["ci_low"], r["ci_high"]
        if not (math.isnan(low) or math.isnan(high)):
            ax.plot([low, high], [y, y], color=colour, lw=2, alpha=0.6, solid_capstyle="butt")
        ax.scatter(r["estimate"], y, color=colour, s=28, zorder=3)
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_yticks(range(len(order)), [frame.loc[i, "effect"] for i in reversed(order)], fontsize=7)
    for kind, (colour, label) in KINDS.items():
        if (table["kind"] == kind).any():
            ax.scatter([], [], color=colour, s=28, label=label)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel(f"effect on {d.title} (percentage points), with its 95% CI")
    ax.grid(alpha=0.3, axis="x")
    finish(fig, out, f"Which axis matters: effects on {d.title}, ranked by size")
