"""The tests-adjusted prospective Poisson space-time scan (analytics/scan.py, NYC DOHMH's COVID-19 method).

Exact pieces first (the fitted expectation, a cylinder's expected count and LLR by hand, the null
draw), then power on a planted rise in positivity, calibration on data without one, and the case
the method exists for: testing doubles in one place with positivity unchanged. Small grids keep the
50-run checks to a few seconds.
"""
from __future__ import annotations

import numpy as np
import pytest

from analytics.scan import (
    _TestsAdjustedNull,
    poisson_llr,
    prospective_scans,
    expected_from_tests,
)

SIDE = 10
SPACING_M = 250.0
DAYS = 42
CENTRE = 4 * SIDE + 4  # away from the edges, so its rook neighbours are all inside
RADIUS_M = SPACING_M  # the centre and its four rook neighbours
TESTS_PER_CELL_DAY = 40.0
BASE_POSITIVITY = 0.04
RUNS = 50
REPLICATIONS = 99
NOMINAL = 0.05


def _grid() -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(SIDE) * SPACING_M, np.arange(SIDE) * SPACING_M)
    return np.column_stack([xs.ravel(), ys.ravel()])


XY = _grid()
IDS = [f"z{i}" for i in range(SIDE * SIDE)]
MEMBERS = np.flatnonzero(np.hypot(*(XY - XY[CENTRE]).T) <= RADIUS_M)


def _city(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tests, positivity) with uneven cells, a weekly testing rhythm and an epidemic wave; no cluster."""
    n = SIDE * SIDE
    testing = rng.gamma(4.0, 0.25, n)[:, None] * (1 - 0.3 * (np.arange(DAYS) % 7 >= 5))[None, :]
    tests = rng.poisson(TESTS_PER_CELL_DAY * testing).astype(float)
    positivity = (BASE_POSITIVITY * rng.gamma(6.0, 1 / 6.0, n)[:, None]
                  * (1 + 0.4 * np.sin(np.arange(DAYS) / 8.0))[None, :])
    return tests, np.clip(positivity, 0, 1), testing


def _cases(rng: np.random.Generator, tests: np.ndarray, positivity: np.ndarray) -> np.ndarray:
    return rng.binomial(tests.astype(np.int64), positivity)


def _significant(results: dict, window: int) -> bool:
    found = results[window].clusters
    return bool(found) and found[0].p_value < NOMINAL


# --- exact pieces -------------------------------------------------------------------------------------
def test_expectation_matches_cell_and_day_totals_and_is_exact_when_positivity_is_separable() -> None:
    rng = np.random.default_rng(0)
    tests = rng.integers(5, 60, (6, 9)).astype(float)
    cases = rng.binomial(tests.astype(int), 0.1)
    mu = expected_from_tests(cases, tests)
    np.testing.assert_allclose(mu.sum(axis=1), cases.sum(axis=1), rtol=1e-8)
    np.testing.assert_allclose(mu.sum(axis=0), cases.sum(axis=0), rtol=1e-8)
    # Cases that are exactly tests x cell effect x day effect are their own expectation.
    separable = tests * np.linspace(0.02, 0.2, 6)[:, None] * np.linspace(0.5, 1.5, 9)[None, :]
    np.testing.assert_allclose(expected_from_tests(separable, tests), separable, rtol=1e-7)


def test_expectation_by_hand_on_a_two_by_two_table() -> None:
    tests = np.array([[10.0, 10.0], [10.0, 30.0]])
    cases = np.array([[1, 1], [1, 5]])
    # mu_zd = n_zd a_z b_d with b_0 = 1. Cell totals: 10 a0 (1 + b) = 2 and 10 a1 (1 + 3b) = 6; day 0's
    # total: 10 a0 + 10 a1 = 2. So 2/(1 + b) + 6/(1 + 3b) = 2, i.e. 3b^2 - 2b - 3 = 0.
    b = (2 + np.sqrt(4 + 36)) / 6
    a0, a1 = 0.2 / (1 + b), 0.6 / (1 + 3 * b)
    by_hand = np.array([[10 * a0, 10 * a0 * b], [10 * a1, 30 * a1 * b]])
    np.testing.assert_allclose(expected_from_tests(cases, tests), by_hand, rtol=1e-7)


def test_a_case_without_a_reported_test_counts_as_tested() -> None:
    cases = np.array([[2, 0], [0, 1]])
    tests = np.array([[0.0, 5.0], [5.0, 5.0]])  # two cases on a day without reported tests
    mu = expected_from_tests(cases, tests)
    assert np.all(np.isfinite(mu)) and mu[0, 0] > 0


def test_top_cylinder_expected_and_llr_are_the_sums_of_the_fitted_expectation() -> None:
    rng = np.random.default_rng(3)
    tests, positivity, _ = _city(rng)
    positivity[np.ix_(MEMBERS, np.arange(DAYS - 3, DAYS))] *= 5
    cases = _cases(rng, tests, positivity)
    result = prospective_scans(IDS, cases, tests=tests, xy_m=XY, max_radius_m=600.0, windows=(7,),
                               replications=19, seed=1)[7]
    top = result.clusters[0]
    mu = expected_from_tests(cases, tests)
    members = [IDS.index(z) for z in top.location_ids]
    days = np.arange(top.start_day, top.end_day + 1)
    assert top.observed == cases[np.ix_(members, days)].sum()
    assert top.expected == pytest.approx(mu[np.ix_(members, days)].sum(), rel=1e-9)
    assert top.llr == pytest.approx(float(poisson_llr(top.observed, top.expected, cases.sum())), rel=1e-9)


def test_null_draw_keeps_each_cells_total_in_expectation_and_follows_mu() -> None:
    rng = np.random.default_rng(4)
    tests, positivity, _ = _city(rng)
    cases = _cases(rng, tests, positivity)
    mu_recent = expected_from_tests(cases, tests)[:, ::-1][:, :7]
    draw = _TestsAdjustedNull(cases.sum(axis=1), np.ascontiguousarray(mu_recent))
    mean = np.mean([draw(rng) for _ in range(400)], axis=0)
    assert mean.sum() == pytest.approx(mu_recent.sum(), rel=0.02)
    expected = mu_recent.sum(axis=1)
    # Each cell's recent count is about Poisson: five standard errors of a 400-draw mean.
    assert np.all(np.abs(mean.sum(axis=1) - expected) <= 5 * np.sqrt(expected / 400) + 1e-9)


def test_windows_share_replicates_so_the_longer_window_never_has_lower_critical_values() -> None:
    rng = np.random.default_rng(5)
    tests, positivity, _ = _city(rng)
    cases = _cases(rng, tests, positivity)
    results = prospective_scans(IDS, cases, tests=tests, xy_m=XY, max_radius_m=600.0, windows=(21, 7),
                                replications=49, seed=2)
    assert sorted(results) == [7, 21]
    assert results[21].critical_llr_05 >= results[7].critical_llr_05
    assert all(c.end_day - c.start_day + 1 <= 7 for c in results[7].clusters)


def test_bad_tests_are_rejected() -> None:
    cases = np.ones((9, 10), dtype=int)
    xy = XY[:9]
    with pytest.raises(ValueError, match="shape"):
        prospective_scans(IDS[:9], cases, tests=np.ones((9, 9)), xy_m=xy, replications=9)
    with pytest.raises(ValueError, match="non-negative"):
        prospective_scans(IDS[:9], cases, tests=-np.ones((9, 10)), xy_m=xy, replications=9)


# --- power, calibration, the testing surge ------------------------------------------------------------
def test_planted_rise_in_positivity_is_found_at_its_place() -> None:
    hits = 0
    runs = 20
    for seed in range(runs):
        rng = np.random.default_rng(100 + seed)
        tests, positivity, _ = _city(rng)
        positivity[np.ix_(MEMBERS, np.arange(DAYS - 3, DAYS))] *= 4  # tests unchanged: more of them positive
        cases = _cases(rng, tests, positivity)
        top = prospective_scans(IDS, cases, tests=tests, xy_m=XY, max_radius_m=600.0, windows=(7, 21),
                                replications=REPLICATIONS, seed=seed)[7].clusters[0]
        hits += top.p_value < NOMINAL and IDS.index(top.centre_location_id) in set(MEMBERS)
    assert hits >= 0.9 * runs


def test_without_a_cluster_false_alarms_stay_near_the_nominal_rate() -> None:
    alarms = {7: 0, 21: 0}
    for seed in range(RUNS):
        rng = np.random.default_rng(200 + seed)
        tests, positivity, _ = _city(rng)
        results = prospective_scans(IDS, _cases(rng, tests, positivity), tests=tests, xy_m=XY, max_radius_m=600.0,
                                    windows=(7, 21), replications=REPLICATIONS, seed=seed)
        for window in alarms:
            alarms[window] += _significant(results, window)
    # Nominal 5 %; over 50 runs the binomial s.d. is about 3 points, so up to 10 % is within noise.
    assert all(count <= 0.10 * RUNS for count in alarms.values()), alarms


def test_testing_surge_without_more_positivity_is_not_a_cluster_but_fools_the_case_only_scan() -> None:
    tests_adjusted, case_only = 0, 0
    surge_days = np.arange(DAYS - 5, DAYS)
    for seed in range(RUNS):
        rng = np.random.default_rng(300 + seed)
        tests, positivity, _ = _city(rng)
        tests[np.ix_(MEMBERS, surge_days)] *= 2  # a testing drive: twice the tests, the same share positive
        cases = _cases(rng, tests, positivity)
        tests_adjusted += _significant(prospective_scans(
            IDS, cases, tests=tests, xy_m=XY, max_radius_m=600.0, windows=(7,), replications=REPLICATIONS,
            seed=seed), 7)
        case_only += _significant(prospective_scans(
            IDS, cases, xy_m=XY, max_radius_m=600.0, windows=(7,), replications=REPLICATIONS, seed=seed), 7)
    assert tests_adjusted <= 0.10 * RUNS, tests_adjusted  # at most the nominal rate, within binomial noise
    assert case_only >= 0.5 * RUNS, case_only  # the permutation scan takes the surge for an outbreak
