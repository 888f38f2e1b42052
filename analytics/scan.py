"""Prospective space-time permutation scan statistic, vectorised with NumPy.

Method: Kulldorff M, Heffernan R, Hartman J, Assunção R, Mostashari F (2005) "A space-time
permutation scan statistic for disease outbreak detection", PLoS Medicine 2(3): e59 — the
case-only statistic the NYC Department of Health and Mental Hygiene runs daily in SaTScan for
reportable diseases. Its COVID-19 system (Greene et al. 2021, Emerging Infectious Diseases
27(5)) scanned the same prospective cylinders with maximum temporal windows of 7 and 21 days
(there with tests as denominators); both window lengths are a parameter here.

Model
-----
Cases are counted by location z (e.g. an H3 cell centroid) and day d: c_zd. With C the total,
the expected count under "no space-time interaction" is

    mu_zd = (sum_d c_zd) * (sum_z c_zd) / C          (zone total x day total / grand total)

A cylinder A has a circular base (a centre location plus its nearest neighbours up to a
maximum radius and/or a maximum share of all cases) and a height of w = 1..D days. The
analysis is *prospective*: only cylinders ending on the last day ("today") are scanned,
so a cluster that has already died out is not re-signalled. With c_A and mu_A the sums over
the cylinder, the Poisson generalised likelihood ratio of the paper is

    LLR_A = c_A log(c_A / mu_A) + (C - c_A) log((C - c_A) / (C - mu_A))   if c_A > mu_A
          = 0                                                              otherwise

and the most likely cluster maximises it. Inference is by Monte Carlo: each replicate
randomly permutes the days of the cases relative to their locations, which keeps every
zone total and every day total (so mu is *unchanged*), recomputes the maximum LLR, and
p = (1 + #{replicates with max LLR >= observed}) / (R + 1).

Recurrence interval. Run once per day, a p-value is (close to) uniform on days without an
outbreak, so p <= p0 happens by chance on a share p0 of days, i.e. once every 1/p0 days on
average: the recurrence interval is 1/p days (Kulldorff et al. 2005; SaTScan). With R
replicates the smallest p is 1/(R+1), so R = 999 caps it at 1000 days.

Secondary clusters are the next cylinders by LLR that share no location with any cluster
already reported, each compared with the same null distribution of the *maximum* LLR, as
SaTScan does (which makes their p-values conservative).

Vectorisation
-------------
* Geometry once: a k-d tree gives each centre its neighbours sorted by distance as a
  (centres x K) index matrix (K = most locations within the maximum radius), padded with a
  dummy all-zero location. A column j is a valid circle if it is within the radius, its
  cumulative case total is within the maximum share, and it ends a group of equidistant
  locations (a circle cannot hold half of a tie).
* Counts per replicate: only the last D days matter for cylinders ending today, so the
  permuted data are drawn as (1) how many of each zone's cases land on the last D days — a
  multivariate hypergeometric draw over zones — and (2) a random pairing of those cases
  with the multiset of the last D days' labels (a shuffle), then one ``bincount``. This is
  an exact draw of the permutation null in O(zones + recent cases), not O(all cases).
* Cylinder counts: a cumulative sum over the last 1..D days gives (zones x D); gathering
  that through the neighbour matrix and a cumulative sum along the neighbours gives every
  cylinder's count as one (centres x K x D) array. Expected counts are the outer product
  of the circles' zone totals and the windows' day totals, computed once.
* The LLR of every valid cylinder is then element-wise arithmetic. The only Python loops
  are over Monte Carlo replicates and over the (few) reported clusters.

Tests-adjusted Poisson scan
---------------------------
A case-only scan cannot tell an outbreak from a place where more people were tested. NYC's
COVID-19 system (Greene et al. 2021) therefore ran SaTScan's prospective *Poisson* space-time
scan with the people tested as the population at risk. Here the population of cell z on day d
is n_zd = max(tested_zd, c_zd) (a case is never outside the population it came from), and the
expected count is the log-linear fit

    mu_zd = n_zd * a_z * b_d      with  sum_d mu_zd = c_z  and  sum_z mu_zd = c_d,

found by iterative proportional fitting: positivity may differ between cells (a_z, SaTScan's
nonparametric adjustment for purely spatial variation) and between days (b_d, for the citywide
epidemic curve), and what is left to find is positivity rising in one place recently. More tests
at unchanged positivity raise mu as much as the cases, so a testing surge is not a cluster.
The Monte Carlo null keeps each cell's case total (the spatial adjustment is a stratification
on location): a replicate draws how many of cell z's c_z cases fall on the last D days,
Binomial(c_z, sum_recent mu_z / c_z), and spreads them over those days multinomially in
proportion to mu. The LLR and the cylinders are the permutation scan's.

Several maximum temporal windows (NYC ran 7 and 21 days) share one set of replicates: each
replicate's LLRs by window length give, through a running maximum, the maximum over cylinders
of at most W days for every W at once, so each analysis has its own null distribution and
recurrence intervals at the cost of the longest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from geo.projection import latlngs_to_local_xy_m

# Locations closer in distance than this are one tie group: a circle includes all or none.
# One millimetre is far below any real spacing yet above float noise in metre coordinates.
DISTANCE_TIE_TOLERANCE_M = 1e-3
DEFAULT_MAX_RADIUS_M = 1000.0
# SaTScan's default upper bound on a circle: half of all cases.
DEFAULT_MAX_CASE_SHARE = 0.5
DEFAULT_MAX_WINDOW_DAYS = 7
DEFAULT_REPLICATIONS = 999  # p-values in steps of 1/1000, recurrence interval up to 1000 days
DEFAULT_MIN_CASES = 2  # a single case is never an outbreak
DEFAULT_MAX_CLUSTERS = 10
# The Monte Carlo loop scores every cylinder of the first PRUNE_WARM_UP replicates, then only those that
# can beat PRUNE_FLOOR_SHARE of the smallest maximum seen (see _PrunedMaxima: the result is unchanged).
# Setting the pruning up (least counts from the Poisson approximation, checked exactly) costs a few
# replicates' work. Five full replicates give a floor that nearly every later one beats: the permutation
# scan of the 1M-person bench city, stopped early after 87 replicates, took 10.5 s with a warm-up of
# 100 (every replicate in full), 4.4 s with 10 while the set-up still bisected; with the set-up as it is
# now, 2.5-3.0 s with 10, 1.9-2.1 s with 5 or 3 (same p-values and clusters each time).
PRUNE_WARM_UP = 5
PRUNE_FLOOR_SHARE = 0.5
# Iterative proportional fitting of the tests-adjusted expectation stops when every cell's
# expected total is within this share of its case total (the day totals are exact after each
# sweep); two-way tables with an offset converge in a few dozen sweeps.
IPF_TOLERANCE = 1e-9
IPF_MAX_SWEEPS = 500
PERMUTATION = "permutation"
TESTS_ADJUSTED = "tests_adjusted"
METHODS = (TESTS_ADJUSTED, PERMUTATION)
METHOD_LABELS = {
    TESTS_ADJUSTED: "prospective Poisson space-time scan, people tested as population at risk (Greene et al. 2021)",
    PERMUTATION: "prospective space-time permutation scan, cases only (Kulldorff et al. 2005)",
}


@dataclass(frozen=True, slots=True)
class SpaceTimeCluster:
    """One scanned cylinder: a circle of locations over the last few days."""

    centre_location_id: object
    radius_m: float  # distance from the centre to the farthest location included
    location_ids: tuple[object, ...]  # nearest first, the centre included
    start_day: int  # column index into the counts matrix (inclusive)
    end_day: int  # always the last column: prospective scan
    observed: int
    expected: float
    relative_risk: float  # (c/mu) / ((C-c)/(C-mu)): risk inside over risk outside
    llr: float
    p_value: float
    recurrence_interval_days: float  # 1/p for a once-a-day analysis


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Most likely cluster first, then non-overlapping secondary clusters by LLR."""

    clusters: tuple[SpaceTimeCluster, ...]
    total_cases: int
    replications: int
    # Monte Carlo critical values of the maximum LLR (what a cluster must beat for p <= 0.05 / 0.01).
    critical_llr_05: float
    critical_llr_01: float


@dataclass(frozen=True, slots=True)
class _Circles:
    """Valid circles: centre index and neighbour count, with the padded neighbour matrix."""

    neighbour_index: NDArray[np.intp]  # (centres, K); value n means "no location" (dummy)
    neighbour_distance_m: NDArray[np.float64]  # (centres, K)
    valid: NDArray[np.bool_]  # (centres, K): column j ends an allowed circle of j+1 locations
    valid_rows: NDArray[np.intp]  # flat positions of the valid entries (row-major), for take()
    zone_case_totals: NDArray[np.int64]  # (P,) cases over all days in each valid circle
    # The same neighbours neighbour-major, (K, centres), and where each valid circle (in valid_rows'
    # order) sits in that layout: summing along the neighbours is then one vector add per column.
    neighbour_index_t: NDArray[np.intp]
    valid_rows_t: NDArray[np.intp]


def expected_counts(counts: ArrayLike) -> NDArray[np.float64]:
    """mu_zd = zone total x day total / grand total for a (locations x days) count matrix."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total == 0:
        return np.zeros_like(c)
    return np.outer(c.sum(axis=1), c.sum(axis=0)) / total


def poisson_llr(observed: ArrayLike, expected: ArrayLike, total: float) -> NDArray[np.float64]:
    """Kulldorff's Poisson log-likelihood ratio; 0 where observed <= expected (no excess)."""
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    shape = np.broadcast_shapes(obs.shape, exp.shape)
    obs, exp = np.broadcast_to(obs, shape), np.broadcast_to(exp, shape)
    llr = np.zeros(shape)
    excess = obs > exp
    llr[excess] = _excess_llr(obs[excess], exp[excess], total)
    return llr


def _excess_llr(observed: NDArray[np.float64], expected: NDArray[np.float64],
                total: float) -> NDArray[np.float64]:
    """The LLR where observed > expected (hence observed >= 1 and expected < total)."""
    outside = total - observed
    # The outside ratio (C-c)/(C-mu) is usually within 1e-4 of 1: log1p of the small
    # difference keeps the precision that log of the ratio would lose.
    with np.errstate(divide="ignore", invalid="ignore"):
        outside_term = np.where(outside > 0,
                                outside * np.log1p((expected - observed) / (total - expected)), 0.0)
    return observed * np.log(observed / expected) + outside_term


def prospective_space_time_scan(
    location_ids: Sequence[object] | ArrayLike,
    counts: ArrayLike,
    *,
    xy_m: ArrayLike | None = None,
    lat_lng_deg: ArrayLike | None = None,
    max_radius_m: float | None = DEFAULT_MAX_RADIUS_M,
    max_case_share: float = DEFAULT_MAX_CASE_SHARE,
    max_window_days: int = DEFAULT_MAX_WINDOW_DAYS,
    replications: int = DEFAULT_REPLICATIONS,
    min_cases: int = DEFAULT_MIN_CASES,
    max_clusters: int = DEFAULT_MAX_CLUSTERS,
    seed: int | np.random.Generator | None = None,
) -> ScanResult:
    """Scan cylinders ending on the last day of ``counts`` (locations x days) for clusters.

    Give coordinates either as ``xy_m`` (n x 2, metres on a plane) or ``lat_lng_deg``
    (n x 2, degrees; projected with geo.projection.latlngs_to_local_xy_m). The whole
    matrix is the study period that fixes the expected counts; windows are the last
    1..``max_window_days`` days. ``max_radius_m=None`` leaves only the case-share limit on
    circle size (then each replicate costs about centres x locations/2 x days: fine for
    hundreds of locations, slow for thousands).
    """
    return prospective_scans(
        location_ids, counts, xy_m=xy_m, lat_lng_deg=lat_lng_deg, max_radius_m=max_radius_m,
        max_case_share=max_case_share, windows=(max_window_days,), replications=replications,
        min_cases=min_cases, max_clusters=max_clusters, seed=seed)[max_window_days]


def prospective_scans(
    location_ids: Sequence[object] | ArrayLike,
    counts: ArrayLike,
    *,
    tests: ArrayLike | None = None,
    xy_m: ArrayLike | None = None,
    lat_lng_deg: ArrayLike | None = None,
    max_radius_m: float | None = DEFAULT_MAX_RADIUS_M,
    max_case_share: float = DEFAULT_MAX_CASE_SHARE,
    windows: Sequence[int] = (DEFAULT_MAX_WINDOW_DAYS,),
    replications: int = DEFAULT_REPLICATIONS,
    min_cases: int = DEFAULT_MIN_CASES,
    max_clusters: int = DEFAULT_MAX_CLUSTERS,
    seed: int | np.random.Generator | None = None,
    stop_after_exceedances: int | None = None,
) -> dict[int, ScanResult]:
    """One prospective analysis per maximum temporal window in ``windows`` -> {window: ScanResult}.

    Without ``tests`` this is the space-time permutation scan; with ``tests`` (people tested, the
    same locations x days shape as ``counts``) it is the tests-adjusted Poisson scan (module
    docstring). The analyses share their Monte Carlo replicates.

    ``stop_after_exceedances`` = h ends the Monte Carlo early once, in every window, h replicates have
    reached the most likely cluster's LLR (sequential Monte Carlo, Besag & Clifford 1991, Biometrika
    78(2):301-4; SaTScan's early termination for large p-values). Its p-value is then at least
    (1 + h) / (R + 1) whatever the remaining replicates would have drawn, so every cluster whose full
    p-value is below that gets exactly the same p-value (the replicates are drawn in the same order);
    only p-values above it, and the critical values, come from fewer replicates
    (``ScanResult.replications`` says how many). On a day without an outbreak most replicates beat the
    observed maximum and the scan ends after about h / p of them.
    """
    ids = np.asarray(location_ids, dtype=object)
    case_counts = np.asarray(counts)
    xy = _coordinates_m(xy_m, lat_lng_deg)
    window_list = sorted({int(w) for w in windows})
    if not window_list:
        raise ValueError("windows must name at least one maximum temporal window")
    longest = window_list[-1]
    if window_list[0] < 1:
        raise ValueError(f"max_window_days must be within 1..{case_counts.shape[-1]}, got {window_list[0]}")
    _check_inputs(ids, case_counts, xy, max_radius_m, max_case_share, longest, replications, min_cases)
    case_counts = case_counts.astype(np.int64)
    population = None if tests is None else _checked_tests(tests, case_counts.shape)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    zone_totals = case_counts.sum(axis=1)
    day_totals = case_counts.sum(axis=0)
    total = int(zone_totals.sum())
    if total == 0:
        return {w: ScanResult((), 0, replications, float("nan"), float("nan")) for w in window_list}

    circles = _valid_circles(xy, zone_totals, max_radius_m, max_case_share * total)
    if population is None:
        # Window w (0-based) covers the last w+1 days; its day total is a reversed cumulative sum.
        window_day_totals = np.cumsum(day_totals[::-1][:longest])
        expected = np.outer(circles.zone_case_totals, window_day_totals) / total  # (P, D)
        recent_day_totals = day_totals[::-1][:longest]

        def draw(generator: np.random.Generator) -> NDArray[np.int64]:
            return permuted_recent_counts(zone_totals, recent_day_totals, generator)
    else:
        mu_recent = np.ascontiguousarray(expected_from_tests(case_counts, population)[:, ::-1][:, :longest])
        expected = _cylinder_counts(mu_recent, circles)
        draw = _TestsAdjustedNull(zone_totals, mu_recent)

    observed_recent = np.ascontiguousarray(case_counts[:, ::-1][:, :longest])
    observed_cyl = _cylinder_counts(observed_recent, circles)
    observed_llr = _masked_llr(observed_cyl, expected, total, min_cases)

    null_max = np.empty((replications, len(window_list)), dtype=np.float64)
    observed_best = np.array([observed_llr[:, :w].max(initial=0.0) for w in window_list])
    exceedances = np.zeros(len(window_list), dtype=np.int64)
    pruned = None
    for r in range(replications):
        recent = draw(rng)
        if pruned is None:
            null_max[r] = _max_llr_by_window(_cylinder_counts(recent, circles), expected, total, min_cases,
                                             window_list)
            if r + 1 == PRUNE_WARM_UP:
                pruned = _PrunedMaxima(circles, expected, total, min_cases, window_list,
                                       PRUNE_FLOOR_SHARE * float(null_max[: r + 1, 0].min()))
        else:
            null_max[r] = pruned(_circle_prefixes(recent, circles))
        exceedances += null_max[r] >= observed_best
        if stop_after_exceedances is not None and np.all(exceedances >= stop_after_exceedances):
            null_max = null_max[: r + 1]
            break
    ran = null_max.shape[0]

    results: dict[int, ScanResult] = {}
    for i, window in enumerate(window_list):
        null = null_max[:, i]
        clusters = _report_clusters(ids, circles, observed_cyl[:, :window], expected[:, :window],
                                    observed_llr[:, :window], total, null, case_counts.shape[1], max_clusters)
        critical_05, critical_01 = (np.quantile(null, [0.95, 0.99]) if ran else (np.nan, np.nan))
        results[window] = ScanResult(clusters, total, ran, float(critical_05), float(critical_01))
    return results


def expected_from_tests(cases: ArrayLike, tested: ArrayLike) -> NDArray[np.float64]:
    """mu_zd = n_zd a_z b_d matching every cell's and every day's case total (n = max(tested, cases)).

    Iterative proportional fitting of the Poisson log-linear model with log(people tested) as
    offset and a cell and a day effect. A cell or day without cases gets mu = 0 throughout.
    """
    c = np.asarray(cases, dtype=np.float64)
    population = np.maximum(np.asarray(tested, dtype=np.float64), c)
    zone_totals, day_totals = c.sum(axis=1), c.sum(axis=0)
    day_effect = np.ones(c.shape[1])
    zone_effect = np.zeros(c.shape[0])
    for _ in range(IPF_MAX_SWEEPS):
        at_risk = population @ day_effect
        zone_effect = np.divide(zone_totals, at_risk, out=np.zeros_like(zone_totals), where=at_risk > 0)
        by_day = zone_effect @ population
        day_effect = np.divide(day_totals, by_day, out=np.zeros_like(day_totals), where=by_day > 0)
        fitted_zone_totals = zone_effect * (population @ day_effect)
        if np.all(np.abs(fitted_zone_totals - zone_totals) <= IPF_TOLERANCE * np.maximum(zone_totals, 1.0)):
            break
    return zone_effect[:, None] * population * day_effect[None, :]


class _TestsAdjustedNull:
    """Draws the last D days of a replicate under the tests-adjusted null, each cell's total kept."""

    def __init__(self, zone_totals: NDArray[np.int64], mu_recent: NDArray[np.float64]) -> None:
        self.zone_totals = zone_totals
        recent_mass = mu_recent.sum(axis=1)
        self.recent_share = np.clip(np.divide(recent_mass, zone_totals, out=np.zeros_like(recent_mass),
                                              where=zone_totals > 0), 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            probabilities = mu_recent / recent_mass[:, None]
        # A cell with no expected cases lately draws none; give it a valid (unused) distribution.
        empty = ~(recent_mass > 0)
        probabilities[empty] = 0.0
        probabilities[empty, 0] = 1.0
        # numpy requires each row to sum to at most 1: renormalise away the rounding.
        self.probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)

    def __call__(self, rng: np.random.Generator) -> NDArray[np.int64]:
        recent = rng.binomial(self.zone_totals, self.recent_share)
        return rng.multinomial(recent, self.probabilities).astype(np.int64)


def _checked_tests(tests: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.float64]:
    population = np.asarray(tests, dtype=np.float64)
    if population.shape != shape:
        raise ValueError(f"tests must have the shape of counts {shape}, got {population.shape}")
    if not np.all(np.isfinite(population)) or np.any(population < 0):
        raise ValueError("tests must be finite and non-negative")
    return population


def _coordinates_m(xy_m: ArrayLike | None, lat_lng_deg: ArrayLike | None) -> NDArray[np.float64]:
    if (xy_m is None) == (lat_lng_deg is None):
        raise ValueError("give exactly one of xy_m or lat_lng_deg")
    if xy_m is not None:
        return np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
    lat_lng = np.asarray(lat_lng_deg, dtype=np.float64).reshape(-1, 2)
    return latlngs_to_local_xy_m(lat_lng[:, 0], lat_lng[:, 1])


def _check_inputs(ids: NDArray, counts: NDArray, xy: NDArray, max_radius_m: float | None,
                  max_case_share: float, max_window_days: int, replications: int,
                  min_cases: int) -> None:
    if counts.ndim != 2:
        raise ValueError(f"counts must be a (locations x days) matrix, got shape {counts.shape}")
    n_locations, n_days = counts.shape
    if ids.shape != (n_locations,) or xy.shape[0] != n_locations:
        raise ValueError(f"need one id and one coordinate pair per row of counts ({n_locations})")
    if not np.all(np.isfinite(xy)):
        raise ValueError("coordinates must be finite")
    if np.any(counts < 0) or not np.all(np.equal(np.mod(counts, 1), 0)):
        raise ValueError("counts must be non-negative integers")
    if not 1 <= max_window_days <= n_days:
        raise ValueError(f"max_window_days must be within 1..{n_days}, got {max_window_days}")
    if max_radius_m is not None and not max_radius_m >= 0:
        raise ValueError(f"max_radius_m must be >= 0 or None, got {max_radius_m}")
    if not 0 < max_case_share <= 1:
        raise ValueError(f"max_case_share must be in (0, 1], got {max_case_share}")
    if replications < 0 or min_cases < 0:
        raise ValueError("replications and min_cases must be >= 0")


def _valid_circles(xy: NDArray[np.float64], zone_totals: NDArray[np.int64],
                   max_radius_m: float | None, max_circle_cases: float) -> _Circles:
    """Each centre's neighbours by distance and which prefixes are allowed circles."""
    n = xy.shape[0]
    tree = cKDTree(xy)
    if max_radius_m is None:
        k = n
        distance, index = tree.query(xy, k=k)
    else:
        k = int(tree.query_ball_point(xy, r=max_radius_m, return_length=True).max())
        # Slightly widen the bound so locations exactly on the circle are returned; the
        # mask below applies the exact radius.
        distance, index = tree.query(xy, k=k, distance_upper_bound=max_radius_m * (1 + 1e-9) + 1e-9)
    distance = np.asarray(distance, dtype=np.float64).reshape(n, k)
    index = np.asarray(index, dtype=np.intp).reshape(n, k)
    present = index < n  # the tree pads missing neighbours with index n and distance inf

    padded_totals = np.append(zone_totals, 0)
    circle_totals = np.cumsum(padded_totals[index], axis=1)
    within = present & (circle_totals <= max_circle_cases)
    if max_radius_m is not None:
        within &= distance <= max_radius_m
    next_distance = np.column_stack([distance[:, 1:], np.full(n, np.inf)])
    ends_tie_group = next_distance > distance + DISTANCE_TIE_TOLERANCE_M  # inf > inf is False
    valid = within & ends_tie_group

    # Drop trailing columns that no centre uses: they only cost time in every replicate.
    used_columns = np.flatnonzero(valid.any(axis=0))
    width = int(used_columns[-1]) + 1 if used_columns.size else 0
    valid = valid[:, :width]
    centre, column = np.nonzero(valid)  # row-major, as flatnonzero(valid)
    return _Circles(index[:, :width], distance[:, :width], valid, np.flatnonzero(valid),
                    circle_totals[:, :width][valid], np.ascontiguousarray(index[:, :width].T),
                    column * n + centre)


def _cylinder_counts(recent: NDArray, circles: _Circles) -> NDArray:
    """(P, D) cases in every valid circle over the last 1..D days; recent[:, 0] is today."""
    # Whole counts in 32 bits (a city's cases in a study period are far below 2**31): half the memory
    # traffic of the gather and sums below, which is most of a replicate's time.
    return _circle_prefixes(recent, circles).reshape(-1, recent.shape[1]).take(circles.valid_rows_t, axis=0)


def _circle_prefixes(recent: NDArray, circles: _Circles) -> NDArray:
    """(K, centres, D): cases in each centre's first k+1 neighbours over the last 1..D days."""
    per_zone_windows = np.cumsum(recent, axis=1, dtype=np.int32 if recent.dtype.kind in "iu" else None)
    padded = np.vstack([per_zone_windows, np.zeros((1, recent.shape[1]), dtype=per_zone_windows.dtype)])
    prefixes = padded[circles.neighbour_index_t]
    # A running sum over the outermost axis, one contiguous (centres x D) add per neighbour rank: three
    # times faster than cumsum along a middle axis.
    for k in range(1, prefixes.shape[0]):
        np.add(prefixes[k], prefixes[k - 1], out=prefixes[k])
    return prefixes


def _masked_llr(observed: NDArray[np.int64], expected: NDArray[np.float64], total: int,
                min_cases: int) -> NDArray[np.float64]:
    """LLR of every cylinder, 0 where there is no excess or fewer than min_cases cases."""
    llr = np.zeros(observed.shape)
    scored = (observed > expected) & (observed >= min_cases)
    llr[scored] = _excess_llr(observed[scored].astype(np.float64), expected[scored], total)
    return llr


def _max_llr_by_window(observed: NDArray[np.int64], expected: NDArray[np.float64], total: int,
                       min_cases: int, windows: Sequence[int]) -> NDArray[np.float64]:
    """Largest LLR over cylinders of at most w days, for each w of ``windows`` (ascending).

    Each band of window lengths (previous w, w] is scored once and the maxima run on, so the logs are
    taken once per cylinder with an excess whatever the number of analyses.
    """
    maxima = np.zeros(len(windows))
    best, previous = 0.0, 0
    for i, window in enumerate(windows):
        band_observed = observed[:, previous:window]
        band_expected = expected[:, previous:window]
        scored = (band_observed > band_expected) & (band_observed >= min_cases)
        if scored.any():
            best = max(best, float(_excess_llr(band_observed[scored].astype(np.float64), band_expected[scored],
                                               total).max()))
        maxima[i] = best
        previous = window
    return maxima


class _PrunedMaxima:
    """The replicates' maximum LLR per window, scoring only cylinders that can beat a floor (exactly).

    For a fixed expected count the LLR grows with the observed count, so each cylinder has a least
    count that lifts its LLR above a floor L (found once, by bisection). A replicate's maximum, when it
    exceeds L, is therefore among the cylinders at or above their least count: one comparison over
    every cylinder and the logs of a few. L is a share of the smallest maximum of the first replicates
    (each computed in full), so nearly every replicate exceeds it; one that does not is scored in full.
    The maxima are the full computation's, not an approximation; only the work changes.
    """

    def __init__(self, circles: _Circles, expected: NDArray[np.float64], total: int, min_cases: int,
                 windows: Sequence[int], floor: float) -> None:
        self.circles, self.expected, self.total, self.min_cases = circles, expected, total, min_cases
        self.windows, self.floor = list(windows), floor
        # The counts are judged against a floor a hair lower than the one the maxima are compared with, so
        # no rounding in the logs can hide a cylinder whose LLR exceeds it.
        least = _least_counts_above(expected, total, min_cases, floor - 1e-9 * max(1.0, abs(floor)))
        # Laid out as _circle_prefixes returns the counts, so a replicate is compared without gathering
        # its valid circles first; prefixes that are no circle can never be candidates.
        rows = circles.neighbour_index_t.size
        self.least = np.full((rows, expected.shape[1]), np.iinfo(np.int32).max, dtype=np.int32)
        self.least[circles.valid_rows_t] = least
        self.circle_of_row = np.full(rows, -1, dtype=np.intp)
        self.circle_of_row[circles.valid_rows_t] = np.arange(circles.valid_rows_t.size)

    def __call__(self, prefixes: NDArray) -> NDArray[np.float64]:
        counts = prefixes.reshape(self.least.shape)
        # One pass over every cylinder (contiguous), then the logs of the few candidates only.
        flat = np.flatnonzero(counts >= self.least)
        if flat.size:
            days = flat % counts.shape[1]  # the cylinder's window is days + 1
            expected = self.expected[self.circle_of_row[flat // counts.shape[1]], days]
            llr = _excess_llr(counts.ravel()[flat].astype(np.float64), expected, self.total)
            maxima = np.array([llr[days < window].max(initial=-np.inf) for window in self.windows])
            if maxima[0] > self.floor:
                return maxima
        # The shortest window's maximum did not beat the floor: score every window in full (rare).
        observed = counts.take(self.circles.valid_rows_t, axis=0)
        return _max_llr_by_window(observed, self.expected, self.total, self.min_cases, self.windows)


def _least_counts_above(expected: NDArray[np.float64], total: int, min_cases: int,
                        floor: float) -> NDArray[np.int32]:
    """Per cylinder, the least whole count c (>= min_cases, > expected) whose LLR exceeds ``floor``;
    ``total + 1`` where no count up to the total does."""
    lo = np.maximum(np.floor(expected) + 1, max(min_cases, 1))
    lo = np.minimum(lo, total + 1)  # an expected count at the total leaves no excess to find

    def exceeds(c: NDArray[np.float64], mu_c: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Whether count ``c`` beats the floor at expected ``mu_c`` (a count above the total never does)."""
        out = np.zeros(c.shape, dtype=bool)
        inside = c <= total
        with np.errstate(divide="ignore", invalid="ignore"):
            out[inside] = _excess_llr(c[inside], mu_c[inside], total) > floor
        return out

    least = np.where(exceeds(lo, expected), lo, np.nan)
    # Where lo does not beat the floor, the answer is found from the Poisson approximation's: the exact LLR
    # is the Poisson one, c log(c / mu) - (c - mu), plus the outside term's remainder (c - mu)^2 / 2(C - mu)
    # + ... >= 0, so the exact least count is at most the Poisson one, and with C in the thousands or more
    # the remainder is far below one count's step in the LLR: nearly always the two are equal. So the
    # Poisson answer is checked exactly, and so is the count below it; only where that one beats the floor
    # too (or, from rounding at the extremes, the Poisson answer does not) is the answer searched for, by
    # bisection on whole counts (beats(low) False, beats(high) True; a
    # count above the total stands for "never"). At a city of 1M people this set-up had been 3 s of a 5 s
    # scan bisecting from the total, then 1.7 s bisecting from the Poisson answer.
    todo = np.flatnonzero(np.isnan(least))
    mu = expected.ravel()[todo]
    low = lo.ravel()[todo]
    never = float(total + 1)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        high = np.minimum(np.ceil(_poisson_least_count(mu, floor)), never)
    high = np.maximum(high, low + 1)
    failed = ~exceeds(high, mu)
    high[failed] = never  # searched from "never" down, below
    below = high - 1
    lower = np.flatnonzero((below > low) & ~failed)
    lower = lower[exceeds(below[lower], mu[lower])]
    high[lower] = below[lower]
    open_ = np.union1d(lower, np.flatnonzero(failed))
    open_ = open_[high[open_] - low[open_] > 1]
    while open_.size:
        mid = np.floor((low[open_] + high[open_]) / 2)
        above = exceeds(mid, mu[open_])
        high[open_[above]] = mid[above]
        low[open_[~above]] = mid[~above]
        open_ = open_[high[open_] - low[open_] > 1]
    least = least.ravel()
    least[todo] = high
    return least.reshape(expected.shape).astype(np.int32)  # compared with the replicates' 32-bit counts


def _poisson_least_count(mu: NDArray[np.float64], floor: float, steps: int = 8) -> NDArray[np.float64]:
    """The count c > mu where the Poisson LLR c log(c / mu) - (c - mu) reaches ``floor`` (continuous).

    Newton's method on a convex, increasing function: from the first step on, every iterate lies at or
    above the root and falls towards it; eight steps are far more than the whole counts need.
    """
    mu = np.maximum(mu, 1e-300)
    c = mu + np.sqrt(2.0 * max(floor, 0.0) * mu) + 1.0
    for _ in range(steps):
        slope = np.log(c / mu)
        value = c * slope - (c - mu) - floor
        c = np.maximum(c - value / np.maximum(slope, 1e-12), mu * (1 + 1e-12))
        if not (value > 1e-9).any():  # every iterate within a billionth of the floor: whole counts are decided
            break
    return c


def permuted_recent_counts(zone_totals: ArrayLike, recent_day_totals: ArrayLike,
                           rng: np.random.Generator) -> NDArray[np.int64]:
    """One draw of the permutation null restricted to the last D days -> (zones x D).

    Permuting the days of all C cases relative to their locations is equivalent to (1)
    choosing which cases receive the m = sum(recent_day_totals) recent day labels — a
    multivariate hypergeometric draw of m from the zone totals — and (2) pairing those m
    cases with the recent labels at random. Column 0 is the last day.
    """
    zones = np.asarray(zone_totals, dtype=np.int64)
    days = np.asarray(recent_day_totals, dtype=np.int64)
    n_zones, n_windows = zones.size, days.size
    recent_per_zone = rng.multivariate_hypergeometric(zones, int(days.sum()), method="marginals")
    zone_labels = np.repeat(np.arange(n_zones), recent_per_zone)
    day_labels = rng.permutation(np.repeat(np.arange(n_windows), days))
    return np.bincount(zone_labels * n_windows + day_labels,
                       minlength=n_zones * n_windows).reshape(n_zones, n_windows)


def _report_clusters(ids: NDArray, circles: _Circles, observed: NDArray[np.int64],
                     expected: NDArray[np.float64], llr: NDArray[np.float64], total: int,
                     null_max: NDArray[np.float64], n_days: int,
                     max_clusters: int) -> tuple[SpaceTimeCluster, ...]:
    """Most likely cluster, then greedily the best circles sharing no location with those taken."""
    centre_of, size_minus_one = np.nonzero(circles.valid)  # row-major, same order as (P, D) rows
    best_window = llr.argmax(axis=1)
    rows = np.arange(llr.shape[0])
    best_llr = llr[rows, best_window]
    available = best_llr > 0
    taken_locations = np.zeros(ids.size + 1, dtype=bool)  # last slot: the dummy padding location
    clusters: list[SpaceTimeCluster] = []
    while len(clusters) < max_clusters and available.any():
        p = int(np.argmax(np.where(available, best_llr, -np.inf)))
        centre, last = int(centre_of[p]), int(size_minus_one[p])
        w = int(best_window[p])
        members = circles.neighbour_index[centre, : last + 1]
        clusters.append(_cluster_record(ids, circles, centre, last, members, int(observed[p, w]),
                                        float(expected[p, w]), float(llr[p, w]), total,
                                        null_max, n_days, w))
        taken_locations[members] = True
        taken_locations[-1] = False
        # A circle overlaps a taken one iff any of its first j+1 neighbours is taken.
        overlaps = np.logical_or.accumulate(taken_locations[circles.neighbour_index], axis=1)
        available &= ~overlaps[circles.valid]
    return tuple(clusters)


def _cluster_record(ids: NDArray, circles: _Circles, centre: int, last: int,
                    members: NDArray[np.intp], observed: int, expected: float, llr: float,
                    total: int, null_max: NDArray[np.float64], n_days: int,
                    window: int) -> SpaceTimeCluster:
    replications = null_max.size
    p_value = (1 + int(np.count_nonzero(null_max >= llr))) / (replications + 1)
    outside_expected = total - expected
    relative_risk = ((observed / expected) / ((total - observed) / outside_expected)
                     if total > observed and outside_expected > 0 else float("inf"))
    return SpaceTimeCluster(
        centre_location_id=ids[centre],
        radius_m=float(circles.neighbour_distance_m[centre, last]),
        location_ids=tuple(ids[members].tolist()),
        start_day=n_days - 1 - window,
        end_day=n_days - 1,
        observed=observed,
        expected=expected,
        relative_risk=float(relative_risk),
        llr=llr,
        p_value=p_value,
        recurrence_interval_days=1.0 / p_value,
    )
