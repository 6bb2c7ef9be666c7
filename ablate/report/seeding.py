"""What a comparison table says about adaptive seeds: the rule in one line, then every row that got more seeds than
the others (or that stayed undecided): where it stood at the first look (p, Holm's p, the repeated interval) and how
it ended, recomputed from the runs, so the note always matches the table. Torch-free."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from ablate.report import compare
from ablate.report.sequential import SIGNIFICANT, SMALLER, UNDECIDED

SHAPE_NAMES = {0.0: "O'Brien-Fleming", 0.5: "Pocock"}


def _fmt_p(p: float | None) -> str:
    return "—" if p is None or pd.isna(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def _state(test: Any, holm: float | None) -> str:
    interval = "" if test.low is None else f", RCI [{test.low:+.2f}, {test.high:+.2f}]"
    return f"p {_fmt_p(test.p)}, Holm {_fmt_p(holm)}{interval}"


def rule_note(design: Any, step: int, metric_title: str) -> str:
    shape = SHAPE_NAMES.get(design.shape, f"shape {design.shape:g}, between O'Brien-Fleming (0) and Pocock (0.5)")
    added = design.seeds[design.n0 :]
    which = f" (seeds {', '.join(map(str, added))}, in this order)" if added else ""
    return (
        f"Seeds: {design.n0} per configuration, then {step} at a time, paired with the baseline's, to each row whose "
        f"comparison was still undecided, up to {design.nmax}{which}. A row is decided when it is significant after "
        f"Holm across the rows at α = {design.alpha:g} ({compare.SEQUENTIAL}, boundary {shape}: its error rate "
        f"holds whatever look a row stops at), or when its {1 - design.alpha:.0%} repeated CI of Δ {metric_title} "
        f"lies within ±{design.effect:g}."
    )


def seed_notes(study: Any, summary: pd.DataFrame, df: pd.DataFrame, seeding: Any, metric_title: str,
               label: Callable[[pd.Series], str]) -> list[str]:  # fmt: skip
    """The rule, then a line per row that got extra seeds or is undecided: ``rates=(6,12,18) output_stride=16: 3 ->
    6 seeds, undecided at 3 (p 0.210, Holm 0.420, RCI [-1.20, +5.30]); significant at 6 (p 0.004, Holm
    0.012)``."""
    design, metric = seeding.design, study.table.metric
    notes = [rule_note(design, seeding.step, metric_title)]
    if not summary["baseline"].any() or f"decision_{metric}" not in summary:
        return notes
    axes = list(study.axes)
    done = df[df["status"] == "done"]
    base = summary.index[summary["baseline"]][0]
    first, first_holm, first_decided = compare.sequential_tests(done, axes, summary, base, metric, design,
                                                                first=design.n0)  # fmt: skip
    last, _, _ = compare.sequential_tests(done, axes, summary, base, metric, design)
    for i, row in summary.iterrows():
        if i == base:
            if row["n"] > design.n0:
                notes.append(f"{label(row)} (baseline): {design.n0} -> {row['n']} seeds, paired with the rows that "
                             "got them.")  # fmt: skip
            continue
        start, end = first[i], last[i]
        decision = row.get(f"decision_{metric}", "")
        holm = row.get(f"p_holm_{metric}")
        stopped = getattr(seeding, "stopped", None)
        if end.n <= start.n:  # no seed added
            if decision == UNDECIDED:
                why = "the time budget ran out" if stopped == "budget" else "not extended yet (`ablate run` adds seeds)"
                if end.n >= design.nmax:
                    why = f"the maximum of {design.nmax} seeds"
                notes.append(f"{label(row)}: undecided at {end.n} ({_state(end, holm)}): {why}.")
            continue  # decided at the first look: the table says it all
        head = f"{label(row)}: {start.n} -> {end.n} seeds, "
        if first_decided[i] == UNDECIDED:
            head += f"undecided at {start.n} ({_state(start, first_holm[i])}); "
        if decision == SIGNIFICANT:
            tail = f"significant at {end.n} (p {_fmt_p(end.p)}, Holm {_fmt_p(holm)})"
        elif decision == SMALLER:
            tail = f"|Δ| < {design.effect:g} at {end.n} (RCI [{end.low:+.2f}, {end.high:+.2f}])"
        elif end.n >= design.nmax:
            tail = f"still undecided at the maximum of {design.nmax} seeds ({_state(end, holm)})"
        elif stopped == "budget":
            tail = f"still undecided at {end.n}: the time budget ran out ({_state(end, holm)})"
        else:
            tail = f"undecided at {end.n}: not extended yet (`ablate run` adds seeds)"
        notes.append(head + tail + ".")
    return notes
