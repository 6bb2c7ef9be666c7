"""The adaptive-seeds rule (ablate.report.sequential), verified by simulation on synthetic per-run results (no
training): its false-positive rate on null data, the level its boundary spends, and its runs against a fixed design
of the same power; then its pieces against references (statsmodels' Holm, scipy's t-test, hand cases)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ablate.report import sequential
from ablate.report.sequential import SIGNIFICANT, SMALLER, UNDECIDED, Design, RowTest, decisions, row_test

STUDIES = 4000  # simulated studies per figure
ALPHA = 0.05
TOL = 2.58 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # 99% Monte-Carlo band of a rate near α: ±0.0089


@pytest.fixture(scope="module")
def figures():
    out = io.StringIO()
    values = sequential.report(STUDIES, out=out)
    print(out.getvalue())  # the lead quotes these (pytest -s shows them)
    return values


def test_null_data_false_positives_stay_at_or_below_alpha(figures):
    """One row, and three rows against a shared baseline (Holm): at most α, up to Monte-Carlo error."""
    assert figures["fpr_one"] <= ALPHA + TOL
    assert figures["fwer_three"] <= ALPHA + TOL


def test_boundary_spends_alpha_exactly_and_the_naive_rule_does_not(figures):
    """Looking at every seed up to the maximum without stopping, the boundary is crossed with probability α (not
    more, and not needlessly less); a plain t-test at 0.05 after every added seed is 'significant' far more often."""
    assert abs(figures["level"] - ALPHA) <= TOL
    assert figures["naive"] > 2 * ALPHA


def test_real_effect_is_decided_with_fewer_runs_than_a_fixed_design_of_the_same_power(figures):
    for effect in (1.5, 2.0):  # the effect of interest and a larger one, in sds of the paired differences
        assert figures[f"power_{effect}"] >= 0.8
        assert figures[f"seeds_{effect}"] < figures[f"fixed_{effect}"] - 1, figures  # at least one seed fewer


def test_fixed_design_seeds_reach_their_power():
    n = sequential.fixed_seeds(1.5, 0.9)
    df, ncp = n - 1, 1.5 * math.sqrt(n)
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    power = stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
    assert power == pytest.approx(0.9, abs=1e-3)


# ------------------------------------------------------------------------------------------------ the pieces
def test_holm_adjust_matches_statsmodels():
    rng = np.random.default_rng(0)
    p = rng.random((50, 5)) ** 3
    p[::7, 2] = np.nan
    ours = sequential.holm_adjust(p)
    for row, got in zip(p, ours, strict=True):
        keep = ~np.isnan(row)
        ref = multipletests(row[keep], method="holm")[1]
        np.testing.assert_allclose(got[keep], ref, rtol=1e-12)
        assert np.isnan(got[~keep]).all()


def test_boundary_lies_between_bonferroni_and_the_fixed_test():
    """Each look's nominal level is below α (several looks share it) and above α / looks (Bonferroni); Pocock's
    is the same at every look, O'Brien-Fleming's rises with the look."""
    for shape in (0.0, 0.25, 0.5):
        design = Design(3, 8, shape=shape)
        c = sequential.critical(design, ALPHA)
        z = c * (design.looks / design.nmax) ** (shape - 0.5)
        nominal = 2 * stats.norm.sf(z)
        assert (nominal < ALPHA).all() and nominal[-1] > ALPHA / len(design.looks)
        if shape == 0.5:
            assert np.ptp(nominal) == 0
        else:
            assert (np.diff(nominal) > 0).all()


def test_repeated_p_against_a_brute_force_simulation():
    """The repeated p of a row: the null probability that some look of the whole design (3..8 seeds) reaches the
    largest scaled statistic the row has shown, computed here again from scratch (scipy's t distribution, other
    random numbers) and compared within Monte-Carlo error."""
    design = Design(3, 8)
    d = np.array([1.0, 1.4, 0.9, 1.3])
    got = row_test(d, design)

    def scaled(x: np.ndarray) -> np.ndarray:  # per look n: z of the two-sided t p-value, times (n / 8) ** 0.25
        out = []
        for n in range(3, x.shape[-1] + 1):
            t = stats.ttest_1samp(x[..., :n], 0, axis=-1).statistic
            z = stats.norm.isf(stats.t.sf(np.abs(t), n - 1))
            out.append(z * (n / 8) ** 0.25)
        return np.stack(out, -1)

    observed = scaled(d).max()
    null = scaled(np.random.default_rng(99).standard_normal((40_000, 8))).max(-1)
    ref = (null >= observed).mean()
    assert got.p == pytest.approx(ref, abs=3 * math.sqrt(ref * (1 - ref) / 40_000) + 1e-4)
    assert got.p > stats.ttest_1samp(d, 0).pvalue  # the looks still to come are paid for


def test_rci_excludes_zero_where_the_test_rejects():
    """The repeated interval at a row's last look excludes 0 only where its repeated p is below α; at the first
    look (a single look so far) exactly there."""
    design = Design(3, 8)
    rng = np.random.default_rng(3)
    for _ in range(60):
        d = rng.normal(rng.uniform(0, 3), 1, size=rng.integers(3, 9))
        t = row_test(d, design)
        assert t.n == len(d) and t.mean == pytest.approx(d.mean()) and 0 < t.p <= 1
        excludes = t.low > 0 or t.high < 0
        if excludes:
            assert t.p <= ALPHA + 1e-4
        if len(d) == design.n0 and abs(t.p - ALPHA) > 1e-3:
            assert excludes == (t.p < ALPHA)


def test_repeated_p_never_rises_with_more_seeds():
    design = Design(3, 10)
    rng = np.random.default_rng(5)
    d = rng.normal(0.8, 1, 10)
    ps = [row_test(d[:n], design).p for n in range(3, 11)]
    assert all(b <= a for a, b in zip(ps, ps[1:], strict=False))


def test_undefined_rows_have_no_p():
    design = Design(3, 8)
    assert row_test([1.0, 2.0], design).p is None  # fewer pairs than the first look
    flat = row_test([0.5, 0.5, 0.5], design)  # the differences do not vary: no t statistic
    assert flat.p is None and flat.low is None
    assert row_test([0.5] * 3 + [0.7], design).p is not None  # a later look that varies is tested


def test_decisions_by_hand():
    design = Design(3, 8, effect=1.0)
    tests = [RowTest(5, 3.0, 0.001, 1.0, 5.0), RowTest(5, 0.1, 0.6, -0.5, 0.7), RowTest(5, 0.5, 0.03, -1.5, 2.5),
             RowTest(2, 0.5, None, None, None)]  # fmt: skip
    adjusted, decided = decisions(tests, design)
    ref = multipletests([0.001, 0.6, 0.03], method="holm")[1]
    assert adjusted[:3] == pytest.approx(ref) and adjusted[3] is None
    assert decided == [SIGNIFICANT, SMALLER, UNDECIDED, UNDECIDED]  # 0.03 * 2 = 0.06 after Holm: undecided
    assert decisions(tests[:1] + tests[2:3], design)[1] == [SIGNIFICANT, SIGNIFICANT]  # two rows: 0.03 * 1


def test_design_checks_its_looks():
    with pytest.raises(ValueError):
        Design(3, 3)
    with pytest.raises(ValueError):
        Design(1, 5)
    with pytest.raises(ValueError):
        Design(3, 5, seeds=(0, 1, 2))
    assert Design(2, 4, seeds=(5, 6, 0, 1)).ordered([1, 0, 6, 9, 5]) == [5, 6, 0, 1, 9]
