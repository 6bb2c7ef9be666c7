"""Where the pixels go: the confusion matrix (rows: ground truth, normalised to 100%; columns: prediction) of the
baseline and of the best configuration, summed over their finished seeds (``confusion`` in each run's
metrics.json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ablate.report.plots.figure import PAGE_INCHES, PlotData, Unavailable, pyplot

MAX_CLASSES = 30


def _matrix(d: PlotData, row) -> tuple[np.ndarray, list[str]] | None:
    runs = d.seeds(row)
    total, classes = None, []
    for run_id in runs.loc[runs["status"] == "done", "run_id"]:
        record = d.record(run_id)
        if "confusion" not in record:
            continue
        m = np.asarray(record["confusion"], dtype=np.float64)
        total = m if total is None else total + m
        classes = list(record.get("classes") or [str(k) for k in range(len(m))])
    return None if total is None else (total, classes)


def chosen(d: PlotData) -> list[tuple[str, object]]:
    """(title, summary row) of the baseline and of the best row by the table's metric (one panel if they are one)."""
    s = d.finished()
    ok = s[s["n"] > 0]
    best = ok[f"{d.metric}_mean"].idxmax()
    picks = []
    if ok["baseline"].any():
        base = ok.index[ok["baseline"]][0]
        picks.append(("baseline" + (", the best" if base == best else ""), s.loc[base]))
    if not picks or picks[0][1].name != best:
        picks.append(("best", s.loc[best]))
    return picks


def plot(d: PlotData, out: Path) -> None:
    panels = [(title, row, _matrix(d, row)) for title, row in chosen(d)]
    panels = [(t, r, m) for t, r, m in panels if m is not None]
    if not panels:
        raise Unavailable("no confusion matrix recorded (runs finished before it was recorded)")
    k = len(panels[0][2][1])
    if k > MAX_CLASSES:
        raise Unavailable(f"{k} classes: too many to read as a matrix; see the per-class IoU")
    plt = pyplot()
    side = min(PAGE_INCHES / len(panels), 0.36 * k + 2.2)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels), side + 0.6), squeeze=False)
    for ax, (title, row, (m, classes)) in zip(axes[0], panels, strict=True):
        share = 100 * m / np.maximum(m.sum(1, keepdims=True), 1)
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
        ax.set_xticks(range(k), classes, rotation=45, ha="right", rotation_mode="anchor", fontsize=7)
        ax.set_yticks(range(k), classes, fontsize=7)
        ax.set_xlabel("prediction")
        ax.set_ylabel("ground truth")
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if share[i, j] >= 0.5:
                        ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=6,
                                color="white" if share[i, j] > 60 else "black")  # fmt: skip
        ax.set_title(f"{title}: {d.label(row)}", fontsize=8)
    fig.colorbar(im, ax=list(axes[0]), label="% of the class's pixels", fraction=0.025)
    finish_title = "Confusion matrix (% of each ground-truth class, summed over seeds)"
    fig.suptitle(finish_title, fontsize=10)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
