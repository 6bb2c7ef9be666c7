"""Every configuration against the baseline, using the design: runs with the same seed share the initialisation and
the data order across configurations, so Δ is tested PAIRED over the seeds a row shares with the baseline (Welch's
test where they share fewer than 2), with a bootstrap interval for Δ and Holm's correction across the table's rows.
Also the seeds that lie far from their row, and how many seeds an effect of a given size needs. Torch-free."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablate.report import stats

PAIRED = "paired t-test over shared seeds"
WELCH = "Welch's t-test"


def seed_values(done: pd.DataFrame, keys: list[str], row: pd.Series, metric: str) -> dict[int, float]:
    """seed -> value of ``metric`` for the finished runs of the configuration ``row``."""
    mask = pd.Series(True, index=done.index)
    for key in keys:
        mask &= done[key] == row[key]
    picked = done.loc[mask, ["seed", metric]].dropna()
    return {int(s): float(v) for s, v in zip(picked["seed"], picked[metric], strict=True)}


def against_baseline(done: pd.DataFrame, keys: list[str], out: pd.DataFrame, base: int, metric: str
                     ) -> pd.DataFrame:  # fmt: skip
    """Columns for every row of ``out`` (the summary) against row ``base``: the test used, its p, Holm's p across
    the rows, the bootstrap 95% interval of Δ; and Welch's p for every row (``p_welch_*``, in the CSV: the unpaired
    test, for comparison with tables that use it)."""
    ref = seed_values(done, keys, out.loc[base], metric)
    tests, ps, lows, highs, welch = [], [], [], [], []
    for i, row in out.iterrows():
        values = seed_values(done, keys, row, metric)
        if i == base or not values:
            tests.append(""), ps.append(None), lows.append(None), highs.append(None), welch.append(None)
            continue
        welch.append(stats.welch_test(list(values.values()), list(ref.values())))
        paired = stats.paired_test(values, ref)
        shared = len(set(values) & set(ref))
        if paired is not None or shared >= 2:  # shared seeds: the paired test (None when Δ is the same each seed)
            tests.append(PAIRED)
            ps.append(paired.p if paired is not None else None)
            ci = stats.bootstrap_ci(values, ref, paired=True)
        else:
            tests.append(WELCH)
            ps.append(welch[-1])
            ci = stats.bootstrap_ci(list(values.values()), list(ref.values()), paired=False)
        lows.append(ci[0] if ci else None)
        highs.append(ci[1] if ci else None)
    return pd.DataFrame(
        {f"test_{metric}": tests, f"p_{metric}": ps, f"p_holm_{metric}": stats.holm(ps),
         f"ci_low_{metric}": lows, f"ci_high_{metric}": highs, f"p_welch_{metric}": welch},
        index=out.index,
    )  # fmt: skip


def outlier_seeds(done: pd.DataFrame, keys: list[str], out: pd.DataFrame, metric: str) -> list[list[int]]:
    """Per row of the summary, the seeds more than 3 robust SDs from the row's median (``stats.outliers``). Three to
    five seeds say little about a row's own spread, so the scale is never below the study's typical seed sd (the
    median over rows: one collapsed row does not raise it) nor below ``stats.ROBUST_FLOOR``."""
    values = [seed_values(done, keys, row, metric) for _, row in out.iterrows()]
    sds = [float(pd.Series(list(v.values())).std()) for v in values if len(v) >= 2]
    floor = max(stats.ROBUST_FLOOR, float(pd.Series(sds).median()) if sds else 0.0)
    return [stats.outliers(v, floor=floor) for v in values]


def seeds_needed_note(done: pd.DataFrame, keys: list[str], out: pd.DataFrame, base: int | None, metric: str,
                      title: str, effect: float) -> str | None:  # fmt: skip
    """"How many seeds": at the observed spread, the seeds a Δ of ``effect`` points needs for 80% power (two-sided,
    α 0.05). Paired over the baseline's seeds when rows share them (the spread of the differences), else the pooled
    seed sd with unpaired groups."""
    rows = list(out.iterrows())
    values = [seed_values(done, keys, row, metric) for _, row in rows]
    if base is not None:
        ref = values[list(out.index).index(base)]
        diffs = [[v[s] - ref[s] for s in sorted(set(v) & set(ref))] for (i, _), v in zip(rows, values, strict=True)
                 if i != base]  # fmt: skip
        sd, paired = stats.paired_sd([d for d in diffs if len(d) >= 2]), True
    else:
        sd, paired = None, False
    if sd is None or not math.isfinite(sd) or sd <= 0:
        sd, paired = stats.pooled_sd([list(v.values()) for v in values]), False
    if sd is None:
        return None
    n = stats.seeds_needed(sd, effect, paired=paired)
    spread = f"the sd of the paired differences, {sd:.2f}" if paired else f"the pooled seed sd, {sd:.2f}"
    if n is None:
        return None
    test = "paired" if paired else "unpaired"
    return (f"Seeds needed: at this study's spread ({spread} points), a Δ {title} of {effect:g} needs {n} seeds per "
            f"configuration for 80% power ({test} two-sided t-test, α = 0.05).")  # fmt: skip


def describe(metric_title: str, any_paired: bool, any_welch: bool) -> str:
    """The footnote on Δ's marks."""
    how = []
    if any_paired:
        how.append(f"a {PAIRED} (runs with one seed share initialisation and data order)")
    if any_welch:
        how.append(f"{WELCH} (unequal variances) where a row shares fewer than 2 seeds with the baseline")
    used = " and ".join(how) or "no test (fewer than 2 seeds)"
    return (
        f"Δ {metric_title}: difference of the mean to the baseline row; significance from {used}, p adjusted across "
        "the table's rows with Holm's method: * p<0.05, ** p<0.01, *** p<0.001; no mark: not significant, or "
        "untestable (fewer than 2 seeds, or no variance). 95% CI: percentile bootstrap of Δ over the seeds (crude "
        "with 2-3 seeds)."
    )


def mark_outliers(cells: list[str], flagged: list[list[int]]) -> list[str]:
    return [f"{c} !" if f else c for c, f in zip(cells, flagged, strict=True)]


def outlier_notes(out: pd.DataFrame, flagged: list[list[int]], label: Any, values: list[dict[int, float]]) -> list[str]:
    notes = []
    for (_, row), seeds, vals in zip(out.iterrows(), flagged, values, strict=True):
        if seeds:
            med = float(pd.Series(list(vals.values())).median())
            shown = ", ".join(f"seed {s} ({vals[s]:.2f})" for s in seeds)
            notes.append(f"! {label(row)}: {shown} lies more than 3 robust SDs from the row's median {med:.2f}")
    return notes
