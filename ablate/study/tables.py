"""Comparison tables: one row per configuration, mean ± std over seeds, delta vs the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ablate.study.grid import Run, format_value
from ablate.study.store import Store, atomic_write

METRICS = {"miou": "mIoU", "pixel_acc": "PA", "mean_acc": "mAcc", "fwiou": "FWIoU"}


def collect(runs: list[Run], store: Store) -> pd.DataFrame:
    """One row per run: axis values (as text), seed, status and the scalar metrics (in %)."""
    rows = []
    for run in runs:
        record = store.read_metrics(run) or {}
        row: dict[str, Any] = {k: format_value(v) for k, v in run.axes.items()}
        row.update(run_id=run.id, seed=run.seed, status=record.get("status", "missing"))
        metrics = record.get("metrics", {}) if row["status"] == "done" else {}
        for key in METRICS:
            value = metrics.get(key)
            row[key] = None if value is None else 100.0 * value
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(
    df: pd.DataFrame, axes: list[str], baseline: dict[str, Any] | None = None, metric: str = "miou"
) -> pd.DataFrame:
    """Mean and std over seeds per configuration (axis values), with n and Δ of ``metric`` vs the baseline."""
    keys = axes or ["_all"]
    if not axes:
        df = df.assign(_all="all")
    done = df[df["status"] == "done"]
    out = df[keys].drop_duplicates().reset_index(drop=True)
    stats = done.groupby(keys, sort=False)[list(METRICS)].agg(["mean", "std"])
    counts = done.groupby(keys, sort=False).size().rename("n")
    failed = df[df["status"] == "failed"].groupby(keys, sort=False).size().rename("failed")
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    out = out.merge(stats.reset_index(), on=keys, how="left")
    out = out.merge(counts.reset_index(), on=keys, how="left").merge(failed.reset_index(), on=keys, how="left")
    out["n"] = out["n"].fillna(0).astype(int)
    out["failed"] = out["failed"].fillna(0).astype(int)
    if baseline:
        mask = pd.Series(True, index=out.index)
        for key, value in baseline.items():
            mask &= out[key] == format_value(value)
        if mask.any():
            ref = out.loc[mask, f"{metric}_mean"].iloc[0]
            out[f"delta_{metric}"] = out[f"{metric}_mean"] - ref
    return out.drop(columns=["_all"], errors="ignore")


def _pm(mean: float, std: float, n: int) -> str:
    if pd.isna(mean):
        return "—"
    if n < 2 or pd.isna(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"


def short_names(axes: list[str]) -> dict[str, str]:
    """Last part of each dotted axis key, or the whole key where two axes share a last part."""
    last = [a.split(".")[-1] for a in axes]
    return {a: (n if last.count(n) == 1 else a) for a, n in zip(axes, last, strict=True)}


def display(summary: pd.DataFrame, axes: list[str], metric: str = "miou") -> pd.DataFrame:
    """The human table: axis columns (short names), one 'mean ± std' text column per metric, n, Δ."""
    shown = pd.DataFrame({short: summary[axis] for axis, short in short_names(axes).items()})
    for key, title in METRICS.items():
        shown[title] = [
            _pm(m, s, n) for m, s, n in zip(summary[f"{key}_mean"], summary[f"{key}_std"], summary["n"], strict=True)
        ]
    shown["n"] = summary["n"]
    if summary["failed"].any():
        shown["failed"] = summary["failed"]
    delta = f"delta_{metric}"
    if delta in summary:
        shown[f"Δ {METRICS[metric]}"] = ["—" if pd.isna(d) else f"{d:+.2f}" for d in summary[delta]]
    return shown


def to_markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def save(shown: pd.DataFrame, summary: pd.DataFrame, root: Path, title: str, note: str = "") -> None:
    md = f"# {title}\n\n{to_markdown(shown)}"
    if note:
        md += f"\n{note}\n"
    atomic_write(root / "table.md", md)
    atomic_write(root / "table.csv", summary.to_csv(index=False))
