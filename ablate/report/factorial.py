"""Which axis matters, as a linear model over a study's per-run results (statsmodels OLS, torch-free): each axis's
main effect and the pairwise interactions with 95% CIs, and each pair's F-test. statsmodels is imported inside the
fit: its formula API alone takes about a second to import."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COLUMNS = ["term", "axis", "level", "estimate", "ci_low", "ci_high", "p", "kind"]


@dataclass
class Effects:
    """Per-axis effects of a study: ``table`` has one row per coefficient (``COLUMNS``), main effects first, each
    kind sorted by |estimate|; ``pair_p`` is the F-test p-value of each pair's interaction ("a x b" -> p);
    ``notes`` say what was skipped and how to read the coefficients."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    pair_p: dict[str, float] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)  # axis -> the level its effects are measured from
    blocked: bool = False  # whether seeds entered as a blocking factor


# Formula terms are written over safe names (axes are dotted config keys, levels arbitrary strings): axis i is
# column "x{i}" with levels "L{j}", j in the axis' order, reference first, so the model's names parse back.
_TERM = re.compile(r"C\((x\d+)\)\[T\.L(\d+)\]")


def _decode(name: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in _TERM.finditer(name)]


def _estimable(exog: np.ndarray) -> np.ndarray:
    """Which coefficients the design identifies: e_j must lie in the row space of X (else pinv's value is one of
    many equally good ones, e.g. two axes whose levels always change together)."""
    projection = np.linalg.pinv(exog) @ exog
    return np.all(np.isclose(projection, np.eye(exog.shape[1]), atol=1e-8), axis=0)


def _fit(formula: str, data: pd.DataFrame):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():  # rank deficiency and df_resid = 0 are checked and noted by the callers
        warnings.simplefilter("ignore")
        return smf.ols(formula, data).fit()


def _coefficients(fit, names: list[str]) -> tuple[list[tuple[str, float, float, float, float]], list[str]]:
    """(name, estimate, ci_low, ci_high, p) of the named coefficients; NaN where the design does not identify
    them or there are no residual degrees of freedom. Returns the names it could not estimate too."""
    exog_names = list(fit.model.exog_names)
    estimable = _estimable(fit.model.exog)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = fit.conf_int(0.05) if fit.df_resid > 0 else None
        pvalues = fit.pvalues if fit.df_resid > 0 else None
    rows, unidentified = [], []
    for name in names:
        j = exog_names.index(name)
        if not estimable[j]:
            rows.append((name, math.nan, math.nan, math.nan, math.nan))
            unidentified.append(name)
            continue
        low, high = (ci.iloc[j, 0], ci.iloc[j, 1]) if ci is not None else (math.nan, math.nan)
        p = pvalues.iloc[j] if pvalues is not None else math.nan
        rows.append((name, float(fit.params.iloc[j]), float(low), float(high), float(p)))
    return rows, unidentified


def factor_effects(runs: pd.DataFrame, axes: list[str], metric: str, baseline: dict[str, str] | None) -> Effects:
    """Per-axis effects of a (factorial) study from a linear model over the per-run results (statsmodels OLS).

    ``runs``: one row per finished run, a column per axis (values as strings), ``seed`` (int) and ``metric``.
    Main effects are the coefficients of the additive model ``metric ~ axes [+ C(seed)]``, measured from each axis'
    reference level (the baseline's level, else the first level in order of appearance); in a balanced full
    factorial each is the difference of marginal means. Seeds enter as a blocking factor when every configuration
    has more than one seed (a seed fixes initialisation and data order across configurations). For each pair of
    axes whose level combinations all have >= 2 runs, the model with that pair's interaction added gives the
    interaction coefficients and the pair's F-test p (``anova_lm`` of the additive against it). Degenerate designs
    give NaN figures and notes, never an exception.
    """
    notes: list[str] = []
    baseline = {k: str(v) for k, v in (baseline or {}).items()}
    data = runs.dropna(subset=[metric]) if metric in runs else runs.iloc[0:0]
    if len(data) < len(runs):
        notes.append(f"{len(runs) - len(data)} run(s) without a {metric} value left out.")
    empty = Effects(pd.DataFrame(columns=COLUMNS), notes)
    if data.empty:
        notes.append("No runs with a value: no effects.")
        return empty

    frame = pd.DataFrame({"y": data[metric].astype(float).to_numpy()})
    varying: list[str] = []  # the axes with more than one level, in the study's order
    codes: dict[str, str] = {}  # axis -> its safe column name
    levels: dict[str, list[str]] = {}  # axis -> levels, reference first
    reference: dict[str, str] = {}
    for i, axis in enumerate(axes):
        values = data[axis].astype(str).to_numpy()
        order = list(pd.unique(values))
        ref = order[0]
        if axis in baseline:
            if baseline[axis] in order:
                ref = baseline[axis]
            else:
                notes.append(f"{axis}: the baseline's level {baseline[axis]!r} has no runs; effects are from {ref!r}.")
        reference[axis] = ref
        if len(order) == 1:
            notes.append(f"{axis}: a single level ({ref!r}); no effect to estimate.")
            continue
        levels[axis] = [ref, *(v for v in order if v != ref)]
        codes[axis] = f"x{i}"
        varying.append(axis)
        index = {v: j for j, v in enumerate(levels[axis])}
        frame[codes[axis]] = pd.Categorical([f"L{index[v]}" for v in values], [f"L{j}" for j in index.values()])
    empty.reference = reference
    if not varying:
        notes.append("No axis with more than one level: no effects.")
        return empty

    # Seed blocks only where every configuration has several seeds: with one seed a configuration's run cannot be
    # told apart from its seed's block.
    seeds = data["seed"].astype(int).to_numpy()
    frame["s"] = pd.Categorical(seeds)
    per_config = pd.DataFrame({"c": frame[[codes[a] for a in varying]].astype(str).agg("|".join, axis=1), "s": seeds})
    blocked = bool(per_config.groupby("c")["s"].nunique().min() > 1)
    if not blocked:
        notes.append("Seeds are not a blocking factor: some configuration has a single seed.")

    observed = per_config["c"].nunique()
    combinations = math.prod(len(levels[a]) for a in varying)
    counts = per_config.groupby("c").size()
    if observed < combinations:
        notes.append(
            f"Not a full factorial ({observed} of {combinations} combinations of {', '.join(varying)} have runs): "
            "the coefficients are conditional on the model, not differences of marginal means."
        )
    elif counts.nunique() > 1 or (blocked and per_config.groupby("s")["c"].nunique().min() < observed):
        notes.append(
            "Unbalanced design (unequal runs per configuration, or seeds not shared by all): the coefficients are "
            "least-squares estimates, not exactly differences of marginal means."
        )

    main_terms = [f"C({codes[a]})" for a in varying] + (["C(s)"] if blocked else [])
    additive = _fit("y ~ " + " + ".join(main_terms), frame)
    if additive.df_resid <= 0:
        notes.append(
            f"No residual degrees of freedom ({len(frame)} runs, {int(additive.df_model) + 1} parameters): "
            "no confidence intervals or p-values."
        )
    axis_of = {codes[a]: a for a in varying}
    names = [n for n in additive.model.exog_names if len(_decode(n)) == 1]
    coefficients, unidentified = _coefficients(additive, names)
    rows = []
    for name, est, low, high, p in coefficients:
        ((code, j),) = _decode(name)
        axis = axis_of[code]
        level = levels[axis][j]
        rows.append((f"{axis}={level}", axis, level, est, low, high, p, "main"))
    if unidentified:
        terms = ", ".join(r[0] for r in rows if math.isnan(r[3]))
        notes.append(f"Not identified by this design (confounded with other terms): {terms}.")

    pair_p: dict[str, float] = {}
    if len(varying) < 2:
        notes.append("One axis varies: no interactions.")
    for a, b in itertools.combinations(varying, 2):
        pair = f"{a} x {b}"
        cells = frame.groupby([codes[a], codes[b]], observed=False).size()
        if (cells == 0).any():
            notes.append(f"{pair}: interaction skipped, some combinations of their levels have no runs.")
            continue
        if (cells < 2).any():
            notes.append(f"{pair}: interaction skipped, some combinations of their levels have a single run.")
            continue
        interaction = _fit("y ~ " + " + ".join([*main_terms, f"C({codes[a]}):C({codes[b]})"]), frame)
        names = [n for n in interaction.model.exog_names if len(_decode(n)) == 2]
        coefficients, unidentified = _coefficients(interaction, names)
        if interaction.df_resid <= 0:
            notes.append(f"{pair}: no residual degrees of freedom with the interaction: no CIs or p-values.")
        elif unidentified:
            notes.append(f"{pair}: {len(unidentified)} interaction coefficient(s) not identified by this design.")
        else:
            from statsmodels.stats.anova import anova_lm

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pair_p[pair] = float(anova_lm(additive, interaction)["Pr(>F)"].iloc[1])
        for name, est, low, high, p in coefficients:
            (_, ja), (_, jb) = _decode(name)
            la, lb = levels[a][ja], levels[b][jb]
            rows.append((f"{a}={la} x {b}={lb}", pair, f"{la} x {lb}", est, low, high, p, "interaction"))

    table = pd.DataFrame(rows, columns=COLUMNS)
    table["_kind"] = table["kind"].map({"main": 0, "interaction": 1})
    table["_size"] = table["estimate"].abs()
    table = table.sort_values(["_kind", "_size"], ascending=[True, False], na_position="last", kind="stable")
    table = table.drop(columns=["_kind", "_size"]).reset_index(drop=True)
    return Effects(table, notes, pair_p, reference, blocked)


