"""Seeds added where a comparison is undecided: a group-sequential paired t-test with a known error rate.

A study with adaptive seeds runs every configuration on its first ``n0`` seeds, then adds seeds (paired: to the
baseline too) only to the rows whose comparison with the baseline is still undecided, one look after each added
seed, up to ``nmax``. Testing each look with a plain t-test at 0.05 would give a row up to ``nmax - n0 + 1`` chances
to look significant by luck (a false-positive rate of about 0.1-0.2 instead of 0.05). Here every look is tested
against a boundary that spends α over all the looks the design allows:

- At look n (n paired differences, n0 <= n <= nmax) the paired t statistic's two-sided p-value is mapped to the
  normal scale, z_n, and scaled by the information fraction: ``s_n = z_n * (n / nmax) ** (1/2 - shape)``. A row
  crosses the boundary at level a when ``s_n >= C(a)``, the same C at every look: the Wang-Tsiatis family of
  boundaries (``shape`` 0: O'Brien-Fleming, strict early and close to the fixed test at the end; 0.5: Pocock, the
  same nominal level at every look; default 0.25, between them).
- C(a) is the (1 - a) quantile of ``max_n s_n`` over all the design's looks under the null hypothesis. For normal
  paired differences the joint null distribution of the t statistics does not depend on their unknown sd, so it is
  simulated once (``SIMS`` paths, a fixed seed: the same boundary in every process) and is exact up to Monte-Carlo
  error (about 0.0005 at a = 0.05), small t's degrees of freedom included; no normal approximation.
- A row's **repeated p-value** is the smallest a at which it crossed at one of its looks so far: the null
  probability that ``max_n s_n`` over all the design's looks reaches the row's largest s so far. Stopping earlier,
  for any reason (decided, the budget, another row's result), never raises it, so P(p <= a) <= a under the null
  whatever the stopping rule (Jennison & Turnbull, *Group Sequential Methods*, ch. 9).
- **Across rows: Holm's method on the repeated p-values** (closed testing with Bonferroni tests of the
  intersections; valid for any dependence, such as the rows' shared baseline): a row is significant when its
  Holm-adjusted p is below α. Seeds only lower a row's repeated p, and Holm's adjustment is monotone, so a row once
  significant stays significant while the others take more seeds. The family-wise error rate is at most α.
- A row is also decided, without significance, when its **repeated confidence interval** (RCI: the values of Δ its
  test at level α does not reject at this look, simultaneous over all looks) lies inside (-effect, +effect): an
  effect of the size of interest is then ruled out at level α for that row (this decision only stops its seeds; it
  never marks a row). Stopping for it is non-binding: the boundaries above do not count on it, so it only makes
  the test more conservative.

``simulate`` checks all of this on synthetic per-run results (``python -m ablate.report.sequential --simulate``).
Torch-free: numpy and scipy, imported where used.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SIMS = 200_000  # null paths behind a boundary: Monte-Carlo error of the level about 0.0005 at 0.05
SHAPES = {"obrien-fleming": 0.0, "pocock": 0.5}
DEFAULT_SHAPE = 0.25
SIGNIFICANT, SMALLER, UNDECIDED = "significant", "smaller than the effect", "undecided"


@dataclass(frozen=True)
class Design:
    """Looks at n0, n0 + 1, ..., nmax paired seeds; ``alpha`` the family-wise level across the table's rows;
    ``effect`` (metric points) the Δ of interest that the RCI decides against; ``shape`` the boundary's (0:
    O'Brien-Fleming ... 0.5: Pocock); ``seeds`` the order in which seeds are added, the initial ones first (empty:
    ascending), which is the order of the looks."""

    n0: int
    nmax: int
    alpha: float = 0.05
    effect: float = 1.0
    shape: float = DEFAULT_SHAPE
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 2 <= self.n0 < self.nmax:
            raise ValueError(f"looks from {self.n0} to {self.nmax} seeds: need 2 <= initial < max")
        if not 0 <= self.shape <= 0.5 or not 0 < self.alpha < 1 or not self.effect > 0:
            raise ValueError("shape in [0, 0.5], alpha in (0, 1), effect > 0")
        if self.seeds and len(self.seeds) != self.nmax:
            raise ValueError(f"{len(self.seeds)} seeds for a design of up to {self.nmax}")

    def ordered(self, seeds: Iterable[int]) -> list[int]:
        """``seeds`` in the order of the looks (seeds outside the design last, ascending)."""
        rank = {s: i for i, s in enumerate(self.seeds)}
        return sorted(seeds, key=lambda s: (rank.get(s, len(rank)), s))

    @property
    def looks(self) -> np.ndarray:
        return np.arange(self.n0, self.nmax + 1)


# ------------------------------------------------------------------------------------------------ the statistic
def _t_stats(d: np.ndarray, n0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sd and t of the first n values along the last axis, for n = n0 .. d.shape[-1] (NaN t where the
    values do not vary)."""
    n = np.arange(1, d.shape[-1] + 1, dtype=float)
    mean = np.cumsum(d, -1) / n
    # the sd from running sums of deviations from the first value (numerically safe for values like 70.1, 70.3)
    shifted = d - d[..., :1]
    m2 = np.cumsum(shifted * shifted, -1) - n * (mean - d[..., :1]) ** 2
    sd = np.sqrt(np.maximum(m2, 0.0) / np.maximum(n - 1, 1))
    mean, sd, n = mean[..., n0 - 1 :], sd[..., n0 - 1 :], n[n0 - 1 :]
    scale = np.maximum(1.0, np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sd > 1e-9 * scale, mean / (sd / np.sqrt(n)), np.nan)
    return mean, sd, t


def _scaled(t: np.ndarray, n0: int, nmax: int, shape: float) -> np.ndarray:
    """s_n = z_n (n / nmax)^(1/2 - shape), z_n the normal quantile of the two-sided p of t with n - 1 df."""
    from scipy import special

    n = np.arange(n0, n0 + t.shape[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -special.ndtri(special.stdtr(n - 1, -np.abs(t)))  # inf where the p underflows
    return z * (n / nmax) ** (0.5 - shape)


@functools.lru_cache(maxsize=16)
def null_max(n0: int, nmax: int, shape: float, sims: int = SIMS, seed: int = 0) -> np.ndarray:
    """Sorted null draws of max_n s_n over the looks n0..nmax (standard normal paired differences; the joint law
    of the t statistics is the same for any sd)."""
    rng = np.random.default_rng(seed)
    out = np.empty(sims)
    chunk = 50_000  # bounded memory for long designs
    for start in range(0, sims, chunk):
        d = rng.standard_normal((min(chunk, sims - start), nmax))
        s = _scaled(_t_stats(d, n0)[2], n0, nmax, shape)
        out[start : start + len(d)] = s.max(-1)
    out.sort()
    return out


def _null(design: Design) -> np.ndarray:
    return null_max(design.n0, design.nmax, design.shape)


def critical(design: Design, level: float) -> float:
    """C(level): a row crosses at level ``level`` when s_n >= C at one of its looks."""
    return float(np.quantile(_null(design), 1 - level, method="higher"))


def repeated_p(stat_max: np.ndarray | float, design: Design) -> np.ndarray:
    """The repeated p-value of rows whose largest s so far is ``stat_max`` (NaN: no look yet -> NaN)."""
    null = _null(design)
    x = np.asarray(stat_max, dtype=float)
    above = len(null) - np.searchsorted(null, np.nan_to_num(x, nan=np.inf), side="left")
    return np.where(np.isnan(x), np.nan, (above + 1) / (len(null) + 1))


def half_width(design: Design, n: np.ndarray | int, sd: np.ndarray | float, level: float) -> np.ndarray:
    """Half width of the repeated confidence interval at look n (simultaneous over the looks at ``level``)."""
    from scipy import special

    n = np.asarray(n, dtype=float)
    z = critical(design, level) * (n / design.nmax) ** (design.shape - 0.5)
    t_crit = special.stdtrit(n - 1, special.ndtr(z))  # the t quantile of the same one-sided tail as z
    return t_crit * np.asarray(sd) / np.sqrt(n)


@dataclass(frozen=True)
class RowTest:
    """One row against the baseline at its last look: n pairs, mean Δ, the repeated p-value (None: no look yet, or
    differences that never vary) and the repeated confidence interval of Δ at the design's α."""

    n: int
    mean: float
    p: float | None
    low: float | None
    high: float | None


def row_test(diffs: Sequence[float], design: Design) -> RowTest:
    """The group-sequential test of one row from its paired differences (row - baseline) in seed order; looks at
    n0..min(len, nmax) pairs (more than nmax pairs: the first nmax)."""
    d = np.asarray(list(diffs)[: design.nmax], dtype=float)
    n = len(d)
    if n < design.n0:
        return RowTest(n, float(d.mean()) if n else math.nan, None, None, None)
    mean, sd, t = _t_stats(d, design.n0)
    s = _scaled(t, design.n0, design.nmax, design.shape)
    p = None if np.isnan(s).all() else float(repeated_p(np.nanmax(s), design))
    if sd[-1] > 0 and np.isfinite(t[-1]):
        h = float(half_width(design, n, sd[-1], design.alpha))
        low, high = float(mean[-1]) - h, float(mean[-1]) + h
    else:
        low = high = None
    return RowTest(n, float(mean[-1]), p, low, high)


# ------------------------------------------------------------------------------------------------ decisions
def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (NaN: not counted, stays NaN); vectorised over studies."""
    p = np.asarray(p, dtype=float)
    valid = ~np.isnan(p)
    k = valid.sum(-1, keepdims=True)
    order = np.argsort(np.where(valid, p, np.inf), axis=-1, kind="stable")
    sorted_p = np.take_along_axis(np.where(valid, p, np.inf), order, -1)
    rank = np.arange(p.shape[-1])
    multiplier = np.maximum(k - rank, 1)  # past the k valid values: inf times 1 (their sorted p is inf)
    adjusted = np.minimum(1.0, np.maximum.accumulate(multiplier * sorted_p, axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, -1)
    return np.where(valid, out, np.nan)


def decisions(tests: Sequence[RowTest], design: Design, adjusted: Sequence[float | None] | None = None
              ) -> tuple[list[float | None], list[str]]:  # fmt: skip
    """Holm-adjusted repeated p-values across the rows (or ``adjusted``, computed already) and each row's decision:
    significant (Holm p < α), smaller than the effect (its RCI inside ±effect) or undecided."""
    if adjusted is None:
        p = np.array([t.p if t.p is not None else np.nan for t in tests], dtype=float)
        adjusted = holm_adjust(p) if len(p) else p
    adjusted = np.array([np.nan if q is None else q for q in adjusted], dtype=float)
    out = []
    for t, q in zip(tests, adjusted, strict=True):
        if not np.isnan(q) and q < design.alpha:
            out.append(SIGNIFICANT)
        elif t.low is not None and t.high is not None and -design.effect < t.low and t.high < design.effect:
            out.append(SMALLER)
        else:
            out.append(UNDECIDED)
    return [None if np.isnan(q) else float(q) for q in adjusted], out


# ------------------------------------------------------------------------------------------------ simulation
@dataclass(frozen=True)
class Simulated:
    studies: int
    rows: int
    effects: tuple[float, ...]  # Δ / sd of the paired differences, per row
    rejected: np.ndarray  # per row: the share of studies in which it was declared significant
    any_false: float  # the share of studies with at least one significant row whose true Δ is 0 (FWER)
    mean_runs: float  # runs per study (each row's seeds plus the baseline's)
    mean_seeds: np.ndarray  # per row: its mean number of seeds


def simulate(design: Design, effects: Sequence[float], studies: int = 4000, seed: int = 1, futility: bool = True,
             fixed: bool = False) -> Simulated:  # fmt: skip
    """Run the adaptive rule on ``studies`` synthetic studies of ``len(effects)`` rows against one baseline: run
    values baseline + Δ_i + noise, the noise of each run independent (sd 1/√2, so the paired differences have sd 1
    and rows are correlated through their shared baseline, as in a study); ``effects`` in units of that sd,
    ``design.effect`` too. Each study follows the rule as ``ablate run`` does: looks after every added seed, a seed
    added to each undecided row (and the baseline) until every row is decided or has ``nmax``. ``fixed``: no early
    stopping at all (every row runs nmax seeds; a check that the boundary spends α exactly)."""
    rng = np.random.default_rng(seed)
    delta = np.asarray(effects, dtype=float)
    k, n0, nmax = len(delta), design.n0, design.nmax
    noise = rng.standard_normal((studies, k + 1, nmax)) / math.sqrt(2)
    d = delta[None, :, None] + noise[:, 1:, :] - noise[:, :1, :]
    mean, sd, t = _t_stats(d, n0)
    s = _scaled(t, n0, nmax, design.shape)
    p_look = repeated_p(np.fmax.accumulate(s, axis=-1), design)  # fmax: a look without variance is skipped
    half = half_width(design, design.looks, sd, design.alpha)
    smaller = (mean - half > -design.effect) & (mean + half < design.effect) & np.isfinite(half)
    looks = len(design.looks)
    at = np.zeros((studies, k), dtype=int)  # each row's current look (index into n0..nmax)
    active = np.ones((studies, k), dtype=bool)
    rows = np.arange(k)[None, :]
    studies_ix = np.arange(studies)[:, None]
    for j in range(looks):
        p_now = p_look[studies_ix, rows, at]
        significant = holm_adjust(p_now) < design.alpha
        decided = significant | (smaller[studies_ix, rows, at] if futility else False)
        if not fixed:
            active &= ~decided
        if j == looks - 1:
            break
        at = np.where(active, at + 1, at)
    p_final = p_look[studies_ix, rows, at]
    significant = holm_adjust(p_final) < design.alpha
    seeds = n0 + at
    runs = seeds.sum(-1) + seeds.max(-1)  # the rows' seeds and the baseline's (the union of theirs)
    null_rows = delta == 0
    any_false = float((significant[:, null_rows]).any(-1).mean()) if null_rows.any() else 0.0
    return Simulated(studies, k, tuple(float(x) for x in delta), significant.mean(0), any_false,
                     float(runs.mean()), seeds.mean(0))  # fmt: skip


def fixed_seeds(effect: float, power: float, alpha: float = 0.05) -> float:
    """Seeds per configuration of the fixed design (one paired two-sided t-test at ``alpha``) with ``power`` at an
    effect of ``effect`` sds of the paired differences: continuous, not rounded up (a fair comparison)."""
    import warnings

    from statsmodels.stats.power import TTestPower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = TTestPower().solve_power(effect_size=effect, alpha=alpha, power=power, alternative="two-sided")
    return float(np.asarray(n).item())


def report(studies: int = 4000, out=sys.stdout) -> dict[str, float]:
    """The figures the simulation test asserts, printed: the false-positive rates on null data and the mean runs
    against the fixed design of the same power. Returns them."""
    design = Design(n0=3, nmax=10, effect=1.5)
    figures: dict[str, float] = {}
    one = simulate(design, [0.0], studies, seed=11)
    three = simulate(design, [0.0, 0.0, 0.0], studies, seed=12)
    exact = simulate(design, [0.0], studies, seed=13, futility=False, fixed=True)
    naive = naive_false_positives(design, studies, seed=14)
    print(f"design: looks at {design.n0}..{design.nmax} seeds, α {design.alpha}, boundary shape {design.shape} "
          f"(0 O'Brien-Fleming, 0.5 Pocock), effect of interest {design.effect} sd; {studies} simulated studies "
          f"each; null boundary from {SIMS} paths", file=out)  # fmt: skip
    print(f"null, 1 row:   false-positive rate {one.rejected[0]:.4f} (nominal {design.alpha}), mean seeds "
          f"{one.mean_seeds[0]:.2f}", file=out)
    print(f"null, 3 rows:  family-wise false-positive rate {three.any_false:.4f} (Holm), per row "
          f"{', '.join(f'{r:.4f}' for r in three.rejected)}", file=out)
    print(f"null, always {design.nmax} seeds, no early stop: the boundary's level {exact.rejected[0]:.4f}",
          file=out)
    print(f"null, naive (plain paired t at 0.05 after every added seed, stop when p < 0.05): {naive:.4f}", file=out)
    figures.update(fpr_one=float(one.rejected[0]), fwer_three=three.any_false, level=float(exact.rejected[0]),
                   naive=naive)  # fmt: skip
    for effect in (1.0, 1.5, 2.0):
        res = simulate(design, [effect], studies, seed=20 + int(10 * effect))
        power = float(res.rejected[0])
        n_fixed = fixed_seeds(effect, power, design.alpha)
        print(f"Δ = {effect} sd, 1 row: power {power:.3f}; mean seeds per configuration {res.mean_seeds[0]:.2f} "
              f"(runs {res.mean_runs:.2f}) against {n_fixed:.2f} (runs {2 * n_fixed:.2f}) for a fixed design of "
              "the same power", file=out)  # fmt: skip
        figures[f"power_{effect}"], figures[f"seeds_{effect}"], figures[f"fixed_{effect}"] = (
            power, float(res.mean_seeds[0]), n_fixed)
    return figures


def naive_false_positives(design: Design, studies: int, seed: int) -> float:
    """The rule this module replaces, for comparison: a plain paired t-test at α after every added seed, stopping
    at the first p < α (one row, null data)."""
    from scipy import special

    rng = np.random.default_rng(seed)
    d = rng.standard_normal((studies, design.nmax))
    t = _t_stats(d, design.n0)[2]
    n = design.looks
    p = 2 * special.stdtr(n - 1, -np.abs(t))
    return float((p < design.alpha).any(-1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The adaptive-seeds rule's error rates, by simulation.")
    parser.add_argument("--simulate", action="store_true", help="simulate and print the figures")
    parser.add_argument("--studies", type=int, default=4000)
    args = parser.parse_args(argv)
    if not args.simulate:
        parser.print_help()
        return 2
    report(args.studies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
