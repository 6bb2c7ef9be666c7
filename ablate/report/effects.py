"""Which axis matters: the factor effects of a study (``factorial.factor_effects``: a linear model over the per-run
results, main effects and pairwise interactions with 95% CIs), as the table, the terminal and the report show them,
ranked by size."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ablate.core.text import format_value, short_names
from ablate.report import factorial


def study_effects(study: Any, runs: pd.DataFrame) -> factorial.Effects | None:
    """The effects of the study's axes on its table's metric; None with no axis or no finished run."""
    axes, metric = list(study.axes), study.table.metric
    done = runs[runs["status"] == "done"]
    if not axes or done.empty or metric not in done:
        return None
    baseline = {k: format_value(v) for k, v in (study.baseline or {}).items()}
    return factorial.factor_effects(done[[*axes, "seed", metric]], axes, metric, baseline)


def _signed(v: Any) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:+.2f}"


def effects_frame(effects: factorial.Effects, names: Any, short: dict[str, str]) -> pd.DataFrame:
    """One line per effect: what changes (axis=level, from its reference level), the estimate, its 95% CI, p; the
    interactions after the main effects, each kind ranked by size."""
    rows = []
    for r in effects.table.itertuples():
        if r.kind == "main":
            ref = names(r.axis, effects.reference[r.axis])
            what = f"{short.get(r.axis, r.axis)}: {names(r.axis, r.level)} vs {ref}"
        else:
            a, b = str(r.axis).split(" x ")
            la, lb = str(r.level).split(" x ")
            what = f"{short.get(a, a)}={names(a, la)} x {short.get(b, b)}={names(b, lb)}"
        p = "—" if pd.isna(r.p) else (f"{r.p:.2g}" if r.p >= 1e-4 else "<1e-4")
        rows.append({"effect": what, "kind": r.kind, "estimate": _signed(r.estimate),
                     "95% CI": f"[{_signed(r.ci_low)}, {_signed(r.ci_high)}]", "p": p})  # fmt: skip
    return pd.DataFrame(rows, columns=["effect", "kind", "estimate", "95% CI", "p"])


def effects_notes(effects: factorial.Effects, short: dict[str, str]) -> list[str]:
    how = (
        "Effects: coefficients of a linear model over the runs (main effects additive, "
        + ("seeds as blocks, " if effects.blocked else "")
        + "each from its axis's reference level, the baseline's); in a balanced full factorial a main effect is the "
        "difference of marginal means."
    )
    pairs = [f"{' x '.join(short.get(a, a) for a in pair.split(' x '))}: F-test p {p:.2g}"
             for pair, p in effects.pair_p.items()]  # fmt: skip
    return [how + (" Interactions: " + "; ".join(pairs) + "." if pairs else ""), *effects.notes]


def effects_view(t: Any) -> tuple[pd.DataFrame, list[str]] | None:
    """The effects of a comparison table's study as shown (frame, notes); None when there are none."""
    if t.effects is None or t.effects.table.empty:
        return None
    short = short_names(list(t.names))
    return effects_frame(t.effects, t.name, short), effects_notes(t.effects, short)
