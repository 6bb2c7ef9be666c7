"""The statistics of the comparison tables, as small pure functions (torch-free).

A study runs configurations x seeds, and the run of seed s in one configuration shares its initialisation and data
order with the run of seed s in any other, so comparisons against the baseline are paired over the shared seeds
(``paired_test``, ``bootstrap_ci(paired=True)``); ``welch_test`` is the fallback where seeds are not shared.
``holm`` adjusts a table's p-values for its rows (``ablate.report.factorial`` reads per-axis effects off a linear
model), ``seeds_needed`` sizes a study from the observed seed spread and ``outliers`` flags collapsed seeds.

scipy and statsmodels are imported inside the functions, as in ``ablate.report.table``: statsmodels' formula API
alone takes about a second to import, which a report that does not ask for these figures should not pay.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Below this spread (relative to the values' size) differences are float rounding of equal values, and scipy's
# moment computation warns of "precision loss" rather than giving a meaningful t statistic.
_REL_TOL = 1e-9


def _constant(values: Sequence[float] | np.ndarray) -> bool:
    x = np.asarray(values, dtype=float)
    return bool(np.ptp(x) <= _REL_TOL * max(1.0, float(np.abs(x).max())))


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# ------------------------------------------------------------------------------------------------------ two groups
@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of configuration a against b over their shared seeds."""

    mean_diff: float  # mean of a - b over the shared seeds
    t: float
    p: float  # two-sided
    n: int  # shared seeds (pairs)
    diffs: dict[int, float]  # seed -> a - b


def paired_test(a: Mapping[int, float], b: Mapping[int, float]) -> PairedResult | None:
    """Paired t-test of a - b over the seeds both have (seed -> value). None with fewer than 2 shared seeds or when
    the differences do not vary (the t statistic is then undefined)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    diffs = {s: float(a[s]) - float(b[s]) for s in seeds}
    if _constant(list(diffs.values())):
        return None
    from scipy import stats

    with warnings.catch_warnings():  # near-constant differences: the guard above is the answer, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
    t, p = _finite_or_none(res.statistic), _finite_or_none(res.pvalue)
    if t is None or p is None:
        return None
    return PairedResult(mean_diff=float(np.mean(list(diffs.values()))), t=t, p=p, n=len(seeds), diffs=diffs)


def welch_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances): the fallback where the seeds are not shared. None
    with fewer than 2 values on a side or no variance on both sides."""
    if len(a) < 2 or len(b) < 2 or (_constant(a) and _constant(b)):
        return None
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return _finite_or_none(p)


def _pairs(a: Mapping[int, float] | Sequence[float], b: Mapping[int, float] | Sequence[float]) -> np.ndarray:
    """a - b pair by pair: over the shared seeds for seed -> value mappings, by position for sequences."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        seeds = sorted(set(a) & set(b))
        return np.array([float(a[s]) - float(b[s]) for s in seeds])
    if isinstance(a, Mapping) or isinstance(b, Mapping) or len(a) != len(b):
        raise ValueError("paired bootstrap: pass two seed -> value mappings or two sequences of equal length")
    return np.asarray(a, dtype=float) - np.asarray(b, dtype=float)


def _group(values: Mapping[int, float] | Sequence[float]) -> np.ndarray:
    return np.asarray(list(values.values()) if isinstance(values, Mapping) else values, dtype=float)


def bootstrap_ci(
    a: Mapping[int, float] | Sequence[float],
    b: Mapping[int, float] | Sequence[float],
    paired: bool,
    confidence: float = 0.95,
    resamples: int = 9999,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean difference a - b (scipy.stats.bootstrap).

    Paired: the seed pairs are resampled (seed -> value mappings pair over their shared seeds; sequences pair by
    position). Unpaired: each group is resampled on its own. Deterministic for a given ``seed``. None with fewer than
    2 pairs (paired) or 2 values on a side (unpaired). Values that do not vary give the zero-width interval at their
    difference: every resample is the same, and that is what the percentile bootstrap says.

    With only 2-3 seeds this is crude: a resample can only repeat the few observed values (2 pairs give at most 3
    distinct means), so the interval is about the observed range and is too narrow for the stated confidence.
    """
    from scipy import stats

    rng = np.random.default_rng(seed)
    if paired:
        diffs = _pairs(a, b)
        if len(diffs) < 2:
            return None
        if _constant(diffs):
            return float(diffs.mean()), float(diffs.mean())
        data: tuple[np.ndarray, ...] = (diffs,)

        def statistic(d: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.mean(d, axis=axis)
    else:
        x, y = _group(a), _group(b)
        if len(x) < 2 or len(y) < 2:
            return None
        if _constant(x) and _constant(y):
            return float(x.mean() - y.mean()), float(x.mean() - y.mean())
        data = (x, y)

        def statistic(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.mean(u, axis=axis) - np.mean(v, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's degenerate-data warnings: a NaN bound is answered below
        res = stats.bootstrap(
            data, statistic, n_resamples=resamples, confidence_level=confidence, method="percentile", rng=rng
        )
    low, high = _finite_or_none(res.confidence_interval.low), _finite_or_none(res.confidence_interval.high)
    return None if low is None or high is None else (low, high)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values across a table's rows; None (or NaN) entries stay None and are not counted."""
    from statsmodels.stats.multitest import multipletests

    index = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(pvalues)
    if index:
        adjusted = multipletests([pvalues[i] for i in index], method="holm")[1]
        for i, q in zip(index, adjusted, strict=True):
            out[i] = float(q)
    return out


# ------------------------------------------------------------------------------------------------- planning, spread
def pooled_sd(groups: Sequence[Sequence[float]]) -> float | None:
    """Pooled sample standard deviation over the groups with >= 2 values (each weighted by its degrees of freedom);
    None where no group has 2 values."""
    usable = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    if not usable:
        return None
    dof = sum(len(g) - 1 for g in usable)
    return float(math.sqrt(sum((len(g) - 1) * g.var(ddof=1) for g in usable) / dof))


def paired_sd(diff_groups: Sequence[Sequence[float]]) -> float | None:
    """The pooled sd of paired differences (one list of a - baseline per configuration): the spread a paired test
    sees, smaller than the per-configuration seed sd where seeds share initialisation and data order."""
    return pooled_sd(diff_groups)


def seeds_needed(
    sd: float, effect: float = 1.0, power: float = 0.8, alpha: float = 0.05, paired: bool = True
) -> int | None:
    """Seeds per configuration for a two-sided test at ``alpha`` to detect a difference of ``effect`` metric
    points with probability ``power``, given the seed spread ``sd``. Paired: ``sd`` is the sd of the paired
    differences (one-sample t-test power on effect/sd); unpaired: the per-configuration seed sd (two equal groups).
    Rounded up, at least 2; None where sd is not positive and finite, the effect is 0, or no size reaches ``power``.
    """
    if not (math.isfinite(sd) and sd > 0) or not math.isfinite(effect) or effect == 0:
        return None
    from statsmodels.stats.power import TTestIndPower, TTestPower

    analysis = TTestPower() if paired else TTestIndPower()
    size = abs(effect) / sd
    with warnings.catch_warnings():  # the solver's convergence warnings: a NaN answer is handled below
        warnings.simplefilter("ignore")
        # Large effects: 2 seeds already suffice, where the root finder would look below its bracket and fail.
        if analysis.power(size, 2, alpha, alternative="two-sided") >= power:
            return 2
        n = analysis.solve_power(effect_size=size, alpha=alpha, power=power, alternative="two-sided")
    n = float(np.asarray(n).item())
    if not math.isfinite(n):
        return None
    return max(2, math.ceil(n - 1e-9))  # 1e-9: a solver's 9.0000000001 is 9 seeds


# -------------------------------------------------------------------------------------------------------- outliers
ROBUST_FLOOR = 0.5  # metric points: below this a seed's distance from its row's median is never flagged


def outliers(values: Mapping[int, float], k: float = 3.0, floor: float = ROBUST_FLOOR) -> list[int]:
    """The seeds whose value lies more than ``k`` robust SDs from the median of their row (seed -> value), the
    robust SD being 1.4826 x MAD; at least 3 values are needed, else none are flagged.

    The robust SD is never taken below ``floor`` metric points: with the 3-5 seeds of a study the MAD is often 0
    or tiny (two equal values of three; 55.1 and 55.15 next to 56.0), which would flag ordinary seed noise. Seed
    spread in segmentation is typically 0.1-0.5 mIoU points, so with k = 3 a seed must be at least 1.5 points off
    the median to be flagged; a collapsed or diverged seed is off by many points and still is.
    """
    if len(values) < 3:
        return []
    from scipy import stats

    x = np.array(list(values.values()), dtype=float)
    median = float(np.median(x))
    scale = max(float(stats.median_abs_deviation(x, scale="normal")), floor)
    return [s for s, v in values.items() if abs(float(v) - median) > k * scale]
