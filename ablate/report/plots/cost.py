"""Accuracy against cost: each configuration a numbered point (mean ± std over seeds) against multiply-adds,
latency and parameters; the numbers are kept apart by adjustText and the key below says which is which."""

from __future__ import annotations

import math
from pathlib import Path

from ablate.report.plots.figure import PAGE_INCHES, PlotData, Unavailable, finish, pyplot

KEYS = [("macs", 1e9, "GMACs per image"), ("latency_ms", 1, "latency (ms)"), ("params", 1e6, "parameters (M)")]


def plot(d: PlotData, out: Path) -> None:
    s = d.finished()
    keys = [k for k in KEYS if k[0] in s and s[k[0]].notna().any()]
    if not keys:
        raise Unavailable("no cost recorded (runs finished before cost measurement existed)")
    from adjustText import adjust_text

    plt = pyplot()
    ok = [(i, row) for i, (_, row) in enumerate(s.iterrows()) if row["n"] > 0]
    ncol = 2 if max(len(d.label(r)) for _, r in ok) > 40 else 3
    key_rows = math.ceil(len(ok) / ncol)
    height = 3.4 + 0.19 * key_rows
    fig, panels = plt.subplots(1, len(keys), figsize=(PAGE_INCHES, height), squeeze=False)
    for ax, (key, scale, label) in zip(panels[0], keys, strict=False):
        texts = []
        for i, row in ok:
            x, y = row[key] / scale, row[f"{d.metric}_mean"]
            std = row[f"{d.metric}_std"]
            ax.errorbar(x, y, yerr=0 if math.isnan(std) else std, fmt="o", ms=5, capsize=3, color=d.colour(i))
            texts.append(ax.text(x, y, str(i + 1), fontsize=7, color=d.colour(i), weight="bold"))
        adjust_text(texts, ax=ax, expand=(1.4, 1.6), arrowprops={"arrowstyle": "-", "color": "#999", "lw": 0.5})
        ax.set_xlabel(label)
        ax.set_ylabel(f"{d.title} (%)")
        ax.locator_params(axis="x", nbins=4)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=d.colour(i)) for i, _ in ok]
    names = [f"{i + 1}  {d.label(row)}" + (" (baseline)" if row.get("baseline") else "") for i, row in ok]
    fig.legend(handles, names, loc="lower left", ncol=ncol, fontsize=7, handletextpad=0.3, columnspacing=1.5)
    hw = "; ".join(dict.fromkeys(h for h in s.get("hardware", []) if h))
    finish(fig, out, f"{d.title} vs cost per image (batch 1 at the eval size; {hw})", 10,
           rect=(0, 0.19 * key_rows / height + 0.02, 1, 1))  # fmt: skip
