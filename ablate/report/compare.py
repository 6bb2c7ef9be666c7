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
SEQUENTIAL = "group-sequential paired t-test"


def seed_values(done: pd.DataFrame, keys: list[str], row: pd.Series, metric: str) -> dict[int, float]:
    """seed -> value of ``metric`` for the finished runs of the configuration ``row``."""
    mask = pd.Series(True, index=done.index)
    for key in keys:
        mask &= done[key] == row[key]
    picked = done.loc[mask, ["seed", metric]].dropna()
    return {int(s): float(v) for s, v in zip(picked["seed"], picked[metric], strict=True)}


def against_baseline(done: pd.DataFrame, keys: list[str], out: pd.DataFrame, base: int, metric: str,
                     design: Any = None) -> pd.DataFrame:  # fmt: skip
    """Columns for every row of ``out`` (the summary) against row ``base``: the test used, its p, Holm's p across
    the rows, the bootstrap 95% interval of Δ; and Welch's p for every row (``p_welch_*``, in the CSV: the unpaired
    test, for comparison with tables that use it).

    With adaptive seeds (``design``: an ``ablate.report.sequential.Design``) the test is the group-sequential one
    the seeds were added by: its repeated p-value, Holm's across the rows, the repeated confidence interval in place
    of the bootstrap's (valid whatever look the row stopped at), and ``decision_*`` (significant, smaller than the
    effect, undecided): a plain t-test after seeds were added where it was undecided would overstate significance."""
    if design is not None:
        return _sequential(done, keys, out, base, metric, design)
    ref = seed_values(done, keys, out.loc[base], metric)
    tests, ps, lows, highs, welch, spread = [], [], [], [], [], []
    for i, row in out.iterrows():
        values = seed_values(done, keys, row, metric)
        if i == base or not values:
            tests.append(""), ps.append(None), lows.append(None), highs.append(None), welch.append(None)
            spread.append(None)
            continue
        welch.append(stats.welch_test(list(values.values()), list(ref.values())))
        paired = stats.paired_test(values, ref)
        shared = sorted(set(values) & set(ref))
        # the noise the paired test sees: the sd of the differences seed by seed (the rows' own stds include what
        # the seed does to both rows alike)
        spread.append(float(pd.Series([values[s] - ref[s] for s in shared]).std()) if len(shared) > 1 else None)
        shared = len(shared)
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
         f"ci_low_{metric}": lows, f"ci_high_{metric}": highs, f"p_welch_{metric}": welch,
         f"sd_diff_{metric}": spread},
        index=out.index,
    )  # fmt: skip


def paired_diffs(done: pd.DataFrame, keys: list[str], out: pd.DataFrame, base: int, metric: str, design: Any,
                 first: int | None = None) -> dict[Any, list[float]]:  # fmt: skip
    """Per row of ``out`` but the baseline: its differences to the baseline over their shared seeds, in the order
    of the design's looks (``first``: only the seeds among the first ``first`` of the design, as at its first
    look)."""
    ref = seed_values(done, keys, out.loc[base], metric)
    allowed = set(design.seeds[:first]) if first is not None and design.seeds else None
    diffs = {}
    for i, row in out.iterrows():
        if i == base:
            continue
        values = seed_values(done, keys, row, metric)
        shared = [s for s in design.ordered(set(values) & set(ref)) if allowed is None or s in allowed]
        diffs[i] = [values[s] - ref[s] for s in shared]
    return diffs


def sequential_tests(
    done: pd.DataFrame, keys: list[str], out: pd.DataFrame, base: int, metric: str, design: Any,
    first: int | None = None,
) -> tuple[dict[Any, Any], dict[Any, float | None], dict[Any, str]]:
    """Per row but the baseline: its ``sequential.RowTest``, Holm's p across the rows and its decision."""
    from ablate.report import sequential

    diffs = paired_diffs(done, keys, out, base, metric, design, first)
    tests = {i: sequential.row_test(d, design) for i, d in diffs.items()}
    adjusted = stats.holm([t.p for t in tests.values()])
    _, decided = sequential.decisions(list(tests.values()), design, adjusted)
    return tests, dict(zip(tests, adjusted, strict=True)), dict(zip(tests, decided, strict=True))


def _sequential(done: pd.DataFrame, keys: list[str], out: pd.DataFrame, base: int, metric: str, design: Any
                ) -> pd.DataFrame:  # fmt: skip
    tests, adjusted, decided = sequential_tests(done, keys, out, base, metric, design)
    ref = seed_values(done, keys, out.loc[base], metric)
    columns: dict[str, list[Any]] = {f"test_{metric}": [], f"p_{metric}": [], f"p_holm_{metric}": [],
                                     f"ci_low_{metric}": [], f"ci_high_{metric}": [], f"p_welch_{metric}": [],
                                     f"decision_{metric}": []}  # fmt: skip
    for i in out.index:
        t = tests.get(i)
        values = seed_values(done, keys, out.loc[i], metric) if t is not None else {}
        welch = stats.welch_test(list(values.values()), list(ref.values())) if values else None
        cells = [SEQUENTIAL if t is not None else "", t.p if t else None, adjusted.get(i), t.low if t else None,
                 t.high if t else None, welch, decided.get(i, "")]  # fmt: skip
        for column, cell in zip(columns.values(), cells, strict=True):
            column.append(cell)
    return pd.DataFrame(columns, index=out.index)


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


def describe(metric_title: str, any_paired: bool, any_welch: bool, sequential: bool = False) -> str:
    """The footnote on Δ's marks."""
    if sequential:
        return (
            f"Δ {metric_title}: difference of the mean to the baseline row; significance from a {SEQUENTIAL} over "
            "the seeds a row shares with the baseline (the test the seeds were added by: its repeated p-value, "
            "valid at whatever look the row stopped), p adjusted across the table's rows with Holm's method: "
            "* p<0.05, ** p<0.01, *** p<0.001; no mark: not significant, or untestable. 95% CI: the repeated "
            "confidence interval of Δ (simultaneous over the looks; each row's own, not adjusted across the rows "
            "as the marks are)."
        )
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
