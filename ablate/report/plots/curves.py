"""Training curves per configuration: the smoothed training loss as the mean over seeds with the band of the seeds
(min to max), the validation mIoU where the training validated (``train.val_every``) ending in the final
evaluation, and the learning rate. Configurations that share their trainings (axes over ``eval.*`` only) share one
curve. Failed runs are dashed, each seed on its own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablate.core.curve import CURVE_FILE, VAL_FILE, read_curve, read_val
from ablate.report.plots.figure import PAGE_INCHES, PlotData, Unavailable, finish, pyplot


def smooth(values: pd.Series, points: int) -> pd.Series:
    """An exponential moving average over about a twentieth of the curve (at least 1 point: none)."""
    return values.ewm(span=max(1, points // 20), adjust=True).mean()


def _groups(d: PlotData) -> list[tuple[str, list[int], pd.DataFrame]]:
    """(label, summary row positions, runs) per set of configurations with the same trainings."""
    s = d.table.summary
    trained = [a for a in d.axes if not a.startswith("eval.")]
    groups: dict[tuple, tuple[list[int], list[pd.DataFrame]]] = {}
    for i, (_, row) in enumerate(s.iterrows()):
        seeds = d.seeds(row)
        key = tuple(sorted(set(seeds["train_id"])))
        rows, frames = groups.setdefault(key, ([], []))
        rows.append(i)
        frames.append(seeds)
    out = []
    for rows, frames in groups.values():
        first = s.iloc[rows[0]]
        label = d.label(first, trained) if trained else "all configurations"
        if len(rows) > 1 and trained != d.axes:
            label += f" ({len(rows)} configurations of its trainings)"
        out.append((label, rows, pd.concat(frames).drop_duplicates("train_id")))
    return out


def _final(d: PlotData, rows: list[int]) -> str:
    s = d.table.summary.iloc[rows]
    s = s[s["n"] > 0]
    if s.empty:
        return "no finished run"
    best = s.loc[s[f"{d.metric}_mean"].idxmax()]
    std = best[f"{d.metric}_std"]
    text = f"{best[f'{d.metric}_mean']:.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}")
    return f"final {d.title} {text}" + (" (best of them)" if len(s) > 1 else "")


def plot(d: PlotData, out: Path) -> bool:
    plt = pyplot()
    groups = _groups(d)
    ncol = 2 if max((len(g[0]) for g in groups), default=0) > 45 else 3
    key_rows = math.ceil(len(groups) / ncol)
    height = 3.5 + 0.19 * key_rows
    fig, (loss_ax, val_ax, lr_ax) = plt.subplots(1, 3, figsize=(PAGE_INCHES, height),
                                                 gridspec_kw={"width_ratios": [1.5, 1.1, 0.8]})  # fmt: skip
    drawn, validated, handles, names, schedules = False, False, [], [], []
    for i, (label, rows, runs) in enumerate(groups):
        colour = d.colour(i)
        smoothed, vals, lrs, last = [], [], [], 0
        for run in runs.itertuples():
            folder = d.root / "trainings" / run.train_id
            points = read_curve(folder / CURVE_FILE)
            if not points:
                continue
            curve = pd.DataFrame(points, columns=["step", "loss", "lr"]).set_index("step")
            loss = curve["loss"].where(curve["loss"].apply(lambda v: math.isfinite(v) and v > 0))
            last = max(last, int(curve.index.max()))
            if run.status == "failed":
                loss_ax.plot(loss.index, smooth(loss, len(loss)), color=colour, lw=0.8, ls="--", alpha=0.8)
            else:
                smoothed.append(smooth(loss, len(loss)).rename(run.seed))
                lrs.append(curve["lr"])
            val = read_val(folder / VAL_FILE)
            if val and run.status != "failed":
                vals.append(pd.Series([100 * v for _, v in val], index=[s for s, _ in val], name=run.seed))
            drawn = True
        if smoothed:
            frame = pd.concat(smoothed, axis=1)
            loss_ax.fill_between(frame.index, frame.min(1), frame.max(1), color=colour, alpha=0.18, lw=0)
            loss_ax.plot(frame.index, frame.mean(1), color=colour, lw=1.3)
        first = d.seeds(d.table.summary.iloc[rows[0]])
        finals = first.loc[first["status"] == "done", "miou"].dropna()  # the group's first configuration's
        frame = pd.concat(vals, axis=1) if vals else pd.DataFrame()
        steps, mean = list(frame.index), list(frame.mean(1)) if vals else []
        low, high = (list(frame.min(1)), list(frame.max(1))) if vals else ([], [])
        if not finals.empty and last:
            steps, mean = [*steps, last], [*mean, finals.mean()]
            low, high = [*low, finals.min()], [*high, finals.max()]
            val_ax.errorbar(last, finals.mean(), yerr=finals.std() if len(finals) > 1 else 0, fmt="D", ms=4,
                            color=colour, capsize=2)  # fmt: skip
        if len(steps) > 1:
            val_ax.fill_between(steps, low, high, color=colour, alpha=0.18, lw=0)
            val_ax.plot(steps, mean, color=colour, lw=1.3, marker=".", ms=3)
        validated = validated or bool(vals)
        if lrs:
            lr = pd.concat(lrs, axis=1).mean(1)
            if not any(len(lr) == len(o) and np.allclose(lr, o) for o in schedules):
                schedules.append(lr)
                lr_ax.plot(lr.index, lr, color=colour, lw=1.2)
        handles.append(plt.Line2D([], [], color=colour, lw=2))
        names.append(f"{label}: {_final(d, rows)}")
    if not drawn:
        plt.close(fig)
        raise Unavailable("no training curve recorded")
    loss_ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    for which in (loss_ax.yaxis.set_major_formatter, loss_ax.yaxis.set_minor_formatter):
        which(ScalarFormatter())
    loss_ax.set(xlabel="step", ylabel="training loss (log; smoothed)", title="loss: mean over seeds, band: min-max")
    val_ax.set(xlabel="step", ylabel="validation mIoU (%)",
               title="validation mIoU" + ("" if validated else " (train.val_every: 0)") + "; ◆ final evaluation")
    lr_ax.set(xlabel="step", ylabel="learning rate", title="learning rate" + (" (all alike)" if len(schedules) == 1
                                                                               else ""))  # fmt: skip
    for ax in (loss_ax, val_ax, lr_ax):
        ax.title.set_fontsize(8)
        ax.grid(alpha=0.3, which="both")
    fig.legend(handles, names, loc="lower left", ncol=ncol, fontsize=7, handlelength=1.2, columnspacing=1.5)
    finish(fig, out, "Training curves (dashed: failed runs)", 10, rect=(0, 0.19 * key_rows / height + 0.02, 1, 1))
    return True
