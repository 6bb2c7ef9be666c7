"""Per-class IoU: configurations x classes, each cell the mean over seeds and its ± std. With many classes
(ADE20K's 150) the classes whose IoU differs most between configurations are shown, and the title says so."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ablate.report.plots.figure import PAGE_INCHES, PlotData, Unavailable, finish, pyplot

MAX_CLASSES = 30


def plot(d: PlotData, out: Path) -> None:
    s = d.finished()
    cols = [c for c in s.columns if str(c).startswith("iou:")]
    if not cols:
        raise Unavailable("no per-class IoU recorded")
    means = s[cols].astype(float).to_numpy()
    stds = np.full_like(means, np.nan)
    for i, (_, row) in enumerate(s.iterrows()):
        runs = d.seeds(row)
        done = runs[runs["status"] == "done"]
        if len(done) > 1:
            stds[i] = done[cols].astype(float).std().to_numpy()
    shown = list(range(len(cols)))
    if len(cols) > MAX_CLASSES:
        spread = np.nan_to_num(np.nanmax(means, 0) - np.nanmin(means, 0), nan=-1)
        shown = sorted(np.argsort(-spread)[:MAX_CLASSES].tolist())
    labels = [d.label(r) for _, r in s.iterrows()]
    plt = pyplot()
    width = min(PAGE_INCHES, 0.62 * len(shown) + 0.06 * max(map(len, labels)) + 2.2)
    fig, ax = plt.subplots(figsize=(width, 0.42 * len(labels) + 1.8))
    data = means[:, shown]
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    names = [cols[j].split(":", 1)[1] for j in shown]
    ax.set_xticks(range(len(shown)), names, rotation=45 if len(shown) > 6 else 0, ha="right" if len(shown) > 6
                  else "center", rotation_mode="anchor", fontsize=7)  # fmt: skip
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    small = 6 if len(shown) > 12 else 7
    for i in range(data.shape[0]):
        for k, j in enumerate(shown):
            v, sd = means[i, j], stds[i, j]
            if s.iloc[i]["n"] == 0:
                text = "failed" if s.iloc[i]["failed"] else "—"
            else:
                text = "—" if math.isnan(v) else f"{v:.1f}" + ("" if math.isnan(sd) else f"\n±{sd:.1f}")
            dark = math.isnan(v) or v > 60  # NaN cells are blank (white): dark text
            ax.text(k, i, text, ha="center", va="center", fontsize=small, linespacing=0.95,
                    color="#b00020" if text == "failed" else ("black" if dark else "white"))  # fmt: skip
    fig.colorbar(im, ax=ax, label="IoU (%)", fraction=0.03)
    which = f" ({len(shown)} of {len(cols)} classes: those that differ most)" if len(shown) < len(cols) else ""
    finish(fig, out, f"Per-class IoU, mean ± std over seeds{which}")
