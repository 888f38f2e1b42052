"""Tests of the prospective space-time permutation scan (analytics/scan.py).

Exact checks on tiny inputs (expected counts, the LLR formula by hand, a brute-force search
over every cylinder), then power on a planted cluster and calibration on data without one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.scan import (
    SpaceTimeCluster,
    expected_counts,
    permuted_recent_counts,
    poisson_llr,
    prospective_space_time_scan,
)
from geo.projection import latlngs_to_local_xy_m

GRID_SIDE = 15
GRID_SPACING_M = 250.0
STUDY_DAYS = 60
PLANTED_CENTRE = 7 * GRID_SIDE + 7  # middle of the grid, so the whole circle is inside
PLANTED_RADIUS_M = GRID_SPACING_M  # centre + its 4 rook neighbours
PLANTED_DAYS = 3


def _grid_xy(side: int = GRID_SIDE, spacing_m: float = GRID_SPACING_M) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(side) * spacing_m, np.arange(side) * spacing_m)
    return np.column_stack([xs.ravel(), ys.ravel()])


def _null_counts(rng: np.random.Generator, n_locations: int, n_days: int,
                 mean_per_cell_day: float = 1.0) -> np.ndarray:
    """Separable intensity (zone x day): purely spatial and purely temporal variation, no interaction."""
    zone_weight = rng.gamma(shape=4.0, scale=0.25, size=n_locations)  # mean 1, uneven cells
    day_weight = 1.0 + 0.5 * np.sin(np.arange(n_days) / 9.0)  # an epidemic-like wave
    return rng.poisson(mean_per_cell_day * np.outer(zone_weight, day_weight))


def _planted_counts(rng: np.random.Generator, xy: np.ndarray, extra_per_cell_day: float) -> np.ndarray:
    counts = _null_counts(rng, xy.shape[0], STUDY_DAYS)
    distance = np.hypot(*(xy - xy[PLANTED_CENTRE]).T)
    members = np.flatnonzero(distance <= PLANTED_RADIUS_M)
    recent = np.arange(STUDY_DAYS - PLANTED_DAYS, STUDY_DAYS)
    counts[np.ix_(members, recent)] += rng.poisson(extra_per_cell_day, (members.size, PLANTED_DAYS))
    return counts


def _ids(n: int) -> list[str]:
    return [f"loc{i}" for i in range(n)]


# --- exact pieces -------------------------------------------------------------------------

def test_expected_counts_keep_total_and_margins() -> None:
    counts = np.random.default_rng(0).poisson(3.0, (8, 12))
    mu = expected_counts(counts)
    assert mu.sum() == pytest.approx(counts.sum())
    np.testing.assert_allclose(mu.sum(axis=1), counts.sum(axis=1))
    np.testing.assert_allclose(mu.sum(axis=0), counts.sum(axis=0))
    # Hand check: zone total 1+3 = 4, day total 1+2 = 3, grand total 10 -> 4*3/10.
    assert expected_counts([[1, 3], [2, 4]])[0, 0] == pytest.approx(1.2)


def test_poisson_llr_hand_checked() -> None:
    # c = 6, mu = 2, C = 20: 6 ln(6/2) + 14 ln(14/18) = 6.591674 - 3.518402
    assert poisson_llr(6, 2.0, 20)[()] == pytest.approx(3.0732720, abs=1e-6)
    # No excess, no signal: observed <= expected scores 0 (the statistic is one-sided).
    np.testing.assert_array_equal(poisson_llr([2, 1, 0], [2.0, 3.0, 0.5], 20), [0.0, 0.0, 0.0])
    # All cases inside the cylinder: the outside term vanishes (0 log 0 = 0).
    assert poisson_llr(5, 1.0, 5)[()] == pytest.approx(5 * math.log(5))


def test_permuted_counts_keep_margins() -> None:
    rng = np.random.default_rng(1)
    zone_totals = np.array([5, 0, 12, 7, 1])
    recent_day_totals = np.array([4, 6, 3])
    for _ in range(20):
        drawn = permuted_recent_counts(zone_totals, recent_day_totals, rng)
        assert drawn.shape == (5, 3)
        np.testing.assert_array_equal(drawn.sum(axis=0), recent_day_totals)
        assert np.all(drawn.sum(axis=1) <= zone_totals)
    # Averaged over draws, each cell approaches its expected share zone x day / total.
    mean = np.mean([permuted_recent_counts(zone_totals, recent_day_totals, rng) for _ in range(4000)],
                   axis=0)
    np.testing.assert_allclose(mean, np.outer(zone_totals, recent_day_totals) / zone_totals.sum(),
                               atol=0.1)


def _brute_force_best(xy: np.ndarray, counts: np.ndarray, max_radius_m: float,
                      max_case_share: float, max_window_days: int, min_cases: int):
    """Every circle (centre x distinct radius) x every window ending today, in plain Python."""
    n, n_days = counts.shape
    total = int(counts.sum())
    zone = counts.sum(axis=1).tolist()
    day = counts.sum(axis=0).tolist()
    best = (0.0, None, None)
    for centre in range(n):
        distances = [math.dist(xy[centre], xy[j]) for j in range(n)]
        for radius in sorted(set(distances)):
            if radius > max_radius_m:
                continue
            members = [j for j in range(n) if distances[j] <= radius]
            if sum(zone[j] for j in members) > max_case_share * total:
                continue
            for window in range(1, max_window_days + 1):
                days = range(n_days - window, n_days)
                observed = sum(int(counts[j, d]) for j in members for d in days)
                expected = sum(zone[j] for j in members) * sum(day[d] for d in days) / total
                if observed <= expected or observed < min_cases:
                    continue
                llr = (observed * math.log(observed / expected)
                       + (total - observed) * math.log((total - observed) / (total - expected)))
                if llr > best[0]:
                    best = (llr, frozenset(members), window)
    return best


@pytest.mark.parametrize("layout", ["random", "grid_with_ties"])
def test_scan_matches_brute_force(layout: str) -> None:
    rng = np.random.default_rng(7)
    if layout == "random":
        xy = rng.uniform(0, 2000, (14, 2))
    else:
        xy = _grid_xy(side=4, spacing_m=400.0)  # many equidistant neighbours
    counts = rng.poisson(1.5, (xy.shape[0], 10))
    counts[0, -2:] += 4
    kwargs = dict(max_radius_m=900.0, max_case_share=0.5, max_window_days=4, min_cases=2)
    llr, members, window = _brute_force_best(xy, counts, **kwargs)
    result = prospective_space_time_scan(_ids(xy.shape[0]), counts, xy_m=xy, replications=9,
                                         seed=0, **kwargs)
    top = result.clusters[0]
    assert top.llr == pytest.approx(llr, rel=1e-12)
    assert frozenset(int(i.removeprefix("loc")) for i in top.location_ids) == members
    assert top.end_day - top.start_day + 1 == window
    assert top.end_day == counts.shape[1] - 1
    assert top.expected == pytest.approx(
        expected_counts(counts)[sorted(members)][:, -window:].sum())


def test_secondary_clusters_do_not_overlap_and_are_ranked() -> None:
    rng = np.random.default_rng(3)
    xy = _grid_xy()
    counts = _null_counts(rng, xy.shape[0], 30)
    counts[[16, 200], -2:] += 6  # two separate hot cells
    result = prospective_space_time_scan(_ids(xy.shape[0]), counts, xy_m=xy, max_radius_m=600.0,
                                         max_window_days=7, replications=49, max_clusters=8, seed=1)
    clusters = result.clusters
    assert len(clusters) >= 3
    seen: set[str] = set()
    for cluster in clusters:
        assert seen.isdisjoint(cluster.location_ids)
        seen.update(cluster.location_ids)
        assert cluster.centre_location_id == cluster.location_ids[0]
        assert cluster.recurrence_interval_days == pytest.approx(1.0 / cluster.p_value)
    llrs = [c.llr for c in clusters]
    assert llrs == sorted(llrs, reverse=True)
    p_values = [c.p_value for c in clusters]
    assert p_values == sorted(p_values)  # same null of the maximum: lower LLR, higher p
    # p-values live on the Monte Carlo grid (1 + k) / (R + 1).
    assert all(float(p * 50).is_integer() for p in p_values)


def test_seed_makes_the_scan_deterministic() -> None:
    rng = np.random.default_rng(11)
    xy = _grid_xy(side=8)
    counts = _null_counts(rng, xy.shape[0], 20)
    run = lambda seed: prospective_space_time_scan(  # noqa: E731
        _ids(xy.shape[0]), counts, xy_m=xy, replications=99, seed=seed)
    assert run(5) == run(5)
    assert run(np.random.default_rng(5)) == run(5)


def test_lat_lng_input_gives_the_same_clusters_as_metres() -> None:
    rng = np.random.default_rng(2)
    lat = 2.93 + rng.uniform(-0.02, 0.02, 30)
    lng = 101.69 + rng.uniform(-0.02, 0.02, 30)
    counts = rng.poisson(1.0, (30, 14))
    counts[4, -3:] += 5
    by_degrees = prospective_space_time_scan(_ids(30), counts, lat_lng_deg=np.column_stack([lat, lng]),
                                             replications=19, seed=0)
    by_metres = prospective_space_time_scan(_ids(30), counts, xy_m=latlngs_to_local_xy_m(lat, lng),
                                            replications=19, seed=0)
    assert by_degrees == by_metres
    # 0.01 degree of latitude is about 1.11 km anywhere.
    xy = latlngs_to_local_xy_m([2.93, 2.94], [101.69, 101.69])
    assert math.dist(xy[0], xy[1]) == pytest.approx(1111.95, rel=1e-3)


def test_min_cases_and_empty_data() -> None:
    xy = _grid_xy(side=3)
    counts = np.zeros((9, 10), dtype=int)
    empty = prospective_space_time_scan(_ids(9), counts, xy_m=xy, replications=9, seed=0)
    assert empty.clusters == () and empty.total_cases == 0
    counts[0, -1] = 1  # one lone case today, plenty of older ones elsewhere
    counts[5, :5] = 3
    alone = prospective_space_time_scan(_ids(9), counts, xy_m=xy, replications=9, seed=0,
                                        min_cases=2)
    assert alone.clusters == ()
    allowed = prospective_space_time_scan(_ids(9), counts, xy_m=xy, replications=9, seed=0,
                                          min_cases=1)
    assert allowed.clusters[0].observed == 1


@pytest.mark.parametrize("bad", [
    dict(max_window_days=0),
    dict(max_window_days=11),
    dict(max_case_share=0.0),
    dict(max_radius_m=-1.0),
    dict(xy_m=None),
])
def test_invalid_parameters_are_rejected(bad: dict) -> None:
    kwargs = dict(xy_m=_grid_xy(side=3), replications=9) | bad
    with pytest.raises(ValueError):
        prospective_space_time_scan(_ids(9), np.ones((9, 10), dtype=int), **kwargs)


# --- power and calibration ----------------------------------------------------------------

@pytest.mark.slow
def test_planted_cluster_is_found_with_its_centre_radius_and_start() -> None:
    xy = _grid_xy()
    runs = 20
    hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(1000 + seed)
        # +3 cases per cell-day on a baseline of ~1: a 4-fold rise over 3 days in 5 cells,
        # about 45 extra cases on 15 expected. Weaker signals are still detected but Poisson
        # noise then often blurs the start day by one.
        counts = _planted_counts(rng, xy, extra_per_cell_day=3.0)
        result = prospective_space_time_scan(_ids(xy.shape[0]), counts, xy_m=xy, max_radius_m=1000.0,
                                             max_window_days=7, replications=199, seed=seed)
        top: SpaceTimeCluster = result.clusters[0]
        hits += (top.centre_location_id == f"loc{PLANTED_CENTRE}"
                 and top.radius_m == pytest.approx(PLANTED_RADIUS_M)
                 and top.start_day == STUDY_DAYS - PLANTED_DAYS
                 and top.p_value < 0.05)
    assert hits >= 0.9 * runs


@pytest.mark.slow
def test_without_a_cluster_p_below_005_is_rare() -> None:
    xy = _grid_xy()
    runs = 50
    significant = 0
    for seed in range(runs):
        counts = _null_counts(np.random.default_rng(2000 + seed), xy.shape[0], STUDY_DAYS)
        result = prospective_space_time_scan(_ids(xy.shape[0]), counts, xy_m=xy, max_radius_m=1000.0,
                                             max_window_days=7, replications=99, seed=seed)
        significant += bool(result.clusters) and result.clusters[0].p_value < 0.05
    # Nominal 5%; with 50 runs the binomial s.d. is ~3 points, so allow up to 10%.
    assert significant <= 0.10 * runs


def test_pruned_replicates_give_the_full_computation_exactly(monkeypatch) -> None:
    """After the warm-up only cylinders that can beat the floor are scored: the maxima, p-values and
    critical values are those of scoring every cylinder of every replicate."""
    import analytics.scan as scan

    xy = _grid_xy()
    counts = _planted_counts(np.random.default_rng(7), xy, extra_per_cell_day=1.5)
    tests = counts * 8 + np.random.default_rng(8).poisson(4, counts.shape)
    for extra in ({}, {"tests": tests}):
        kwargs = dict(xy_m=xy, max_radius_m=1000.0, windows=(7, 21), replications=scan.PRUNE_WARM_UP + 60,
                      seed=3, **extra)
        pruned = scan.prospective_scans(_ids(xy.shape[0]), counts, **kwargs)
        monkeypatch.setattr(scan, "PRUNE_WARM_UP", 10**9)
        full = scan.prospective_scans(_ids(xy.shape[0]), counts, **kwargs)
        monkeypatch.undo()
        for window in (7, 21):
            assert pruned[window].clusters == full[window].clusters
            assert pruned[window].critical_llr_05 == full[window].critical_llr_05
            assert pruned[window].critical_llr_01 == full[window].critical_llr_01


def test_stopping_early_keeps_every_small_p_value_and_ends_quiet_days_soon() -> None:
    """Sequential Monte Carlo (Besag & Clifford 1991): a cluster whose p-value is below (1 + h) / (R + 1)
    gets exactly the p-value of the full run; a day without an outbreak ends after few replicates."""
    from analytics.scan import prospective_scans

    xy = _grid_xy()
    h, replications = 20, 399
    planted = _planted_counts(np.random.default_rng(11), xy, extra_per_cell_day=3.0)
    quiet = _null_counts(np.random.default_rng(12), xy.shape[0], STUDY_DAYS)
    kwargs = dict(xy_m=xy, max_radius_m=1000.0, windows=(7, 21), replications=replications, seed=5)
    bar = (1 + h) / (replications + 1)
    early = {}
    for name, counts in (("planted", planted), ("quiet", quiet)):
        full = prospective_scans(_ids(xy.shape[0]), counts, **kwargs)
        early[name] = prospective_scans(_ids(xy.shape[0]), counts, stop_after_exceedances=h, **kwargs)
        for window in (7, 21):
            kept = [c for c in full[window].clusters if c.p_value < bar]
            assert [c for c in early[name][window].clusters if c.p_value < bar] == kept
            if kept:  # the top cluster is near significance: every replicate was drawn
                assert early[name][window].replications == replications
    assert early["planted"][7].clusters[0].p_value < 0.01  # the planted day is significant ...
    assert early["quiet"][21].replications < replications / 2  # ... the quiet one ends early
    assert all(c.p_value >= bar for c in early["quiet"][21].clusters)


def test_each_cylinders_least_count_above_the_floor_is_exact() -> None:
    """The set-up of pruning (_least_counts_above) against counting up one by one: the least whole count
    whose LLR beats the floor, for small and city-sized totals, tiny and large expected counts."""
    from analytics.scan import _excess_llr, _least_counts_above

    rng = np.random.default_rng(21)
    for total, floor in ((400, 2.5), (400, 9.0), (1_000_000, 4.0), (1_000_000, 12.0)):
        expected = np.concatenate([rng.uniform(0.0005, 3, 300), rng.uniform(3, 150, 300), [0.0, total * 0.99]])
        least = _least_counts_above(expected.reshape(2, -1), total, 2, floor).ravel()
        for mu, found in zip(expected, least):
            c = max(int(np.floor(mu)) + 1, 2)
            while c <= total and not (_excess_llr(np.array([float(c)]), np.array([mu]), total)[0] > floor):
                c += 1
            assert found == c, (total, floor, mu, found, c)
