"""Benchmark the micro-cluster map: H3 aggregation + Getis-Ord Gi*, and the prospective scan.

Run from the project root: ``python bench/clusters.py``. Prints ONE JSON line.

A synthetic city is built deterministically: 1,000,000 people living at 250,000 address
points in a 10 km x 10 km square (~100 km²) around lat 2.93, lng 101.69; 60% of the
addresses sit in 40 Gaussian neighbourhoods of different sizes, the rest are spread evenly,
and each neighbourhood has its own attack rate (spatial heterogeneity). 1,000,000 cases are
drawn from those people over 365 days following a two-wave epidemic curve, plus a small
planted outbreak in the last 5 days so the scan has something to find.

(a) The last 14 days' cases are counted per H3 cell (resolution 9) with
    ``analytics.cells.aggregate_cases_to_cells``, zero-filled over the city's cells and
    given Gi* (``getis_ord(..., star=True)``) on the city's k-ring-1 ``NeighbourGraph``.
    Median of several runs, in ms; target <= 300 ms. The city grid (every cell that had a
    case during the year) is fixed between refreshes, so the dashboard builds its graph
    once (``geo.neighbours.cells_to_neighbour_graph``) and caches it: the graph is built OUTSIDE the timed
    block (JSON ``agg_gi_graph_cached``), its build time is reported on its own
    (``graph_build_ms``) and the uncached cost is reported as ``agg_gi_cold_ms``.
(b) One prospective space-time permutation scan (``analytics.scan``) over the whole year
    (the study period that fixes the expected counts) with windows of 1..21 days ending
    today, 1 km maximum radius, 999 replications. Target <= 60 s on 2 cores.

(c) The cluster job's scans as the shipped scan rulebook runs them (NYC DOHMH: windows of 7 and
    21 days sharing replicates), the tests-adjusted Poisson scan with people tested per cell and
    day (synthetic: ten tests per case plus a Poisson(3) background) and the permutation scan
    beside it (``job_scans_s``), against (b), the single 21-day permutation scan the job ran
    before (``job_scans_vs_single_scan``: the ratio, target <= 3, "the same order").

Baselines in the same run, written the straightforward way in pure Python:
* Gi*: a loop over cells with dict look-ups of the neighbours' values (same formula,
  Z only, while getis_ord also returns G, E, V and p) on the same values (as a dict) and the
  same neighbour relation (as the dict of lists ``cells_to_neighbour_lists`` returns). Its neighbour
  dict, like getis_ord's graph, is built once outside the timing, and so is the values
  dict. ``speedup_gi`` = loop time / getis_ord time on the ~98k-cell metropolis grid
  (``gi_at_scale``): the city's 881 cells take well under a millisecond either way, so
  that ratio (``speedup_gi_city``) is dominated by fixed per-call costs and is reported
  but not the headline. ``speedup_gi_dict_input`` is the same ratio when getis_ord is
  handed the dict instead of a cached graph (it then builds the graph inside every call).
  Z scores are checked to agree.
* Scan: a loop over centres x radii x windows computing each cylinder's LLR on the observed
  data (one data set, i.e. one "replication"), on ``BASELINE_CENTRES`` centres. Per unit =
  per centre per data set; the vectorised figure is scan_s / ((R + 1) x centres) and
  includes drawing the permuted data, which the baseline does not pay, so the speed-up is
  conservative. Its best LLR over all centres is checked against the scan's.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics.cells import aggregate_cases_to_cells  # noqa: E402
from analytics.scan import prospective_scans  # noqa: E402
from analytics.hotspots import getis_ord  # noqa: E402
from analytics.scan import DISTANCE_TIE_TOLERANCE_M, prospective_space_time_scan  # noqa: E402
from geo.buffers import cells_to_grid_disk  # noqa: E402
from geo.cell_ints import ints_to_cells, latlngs_to_cell_ints  # noqa: E402
from geo.cells import cells_to_latlngs, latlng_to_cell  # noqa: E402
from geo.neighbours import NeighbourGraph, cells_to_neighbour_graph, cells_to_neighbour_lists  # noqa: E402
from geo.projection import latlngs_to_local_xy_m  # noqa: E402

SEED = 20240601
CENTRE_LAT, CENTRE_LNG = 2.93, 101.69
HALF_SIDE_M = 5_000.0  # a 10 km square: 100 km²
METRES_PER_DEGREE_LAT = 111_195.0
PEOPLE = 1_000_000
ADDRESSES = 250_000  # ~4 people per address: geocoded cases share address points
CASES = 1_000_000
DAYS = 365
FIRST_DAY = pd.Timestamp("2025-01-01")
NEIGHBOURHOODS = 40
CLUSTERED_ADDRESS_SHARE = 0.6
OUTBREAK_CASES = 150
OUTBREAK_DAYS = 5
OUTBREAK_RADIUS_M = 300.0

H3_RESOLUTION = 9
GI_WINDOW_DAYS = 14
GI_REPEATS = 5
# A few hundred microseconds per call on the city grid: enough repeats for a stable median.
GI_SMALL_REPEATS = 50
GI_SCALING_REPEATS = 10
SCAN_MAX_WINDOW_DAYS = 21
SCAN_RADIUS_M = 1_000.0
SCAN_REPLICATIONS = 999
SCAN_MIN_CASES = 2
SCAN_MAX_CASE_SHARE = 0.5
BASELINE_CENTRES = 200
BASELINE_GI_REPEATS = 3
# A k-ring of radius 180 around the centre holds 3k(k+1)+1 = 97,741 res-9 cells: a metropolis,
# to see whether the vectorised Gi* overtakes the per-cell loop at scale.
GI_SCALING_RING_K = 180

TARGET_AGG_GI_MS = 300.0
TARGET_SCAN_S = 60.0
JOB_WINDOWS_DAYS = (7, 21)  # rulebooks/scan_nyc_dohmh_2020.yaml
TARGET_JOB_SCANS_RATIO = 3.0


# ------------------------------------------------------------------------ synthetic city


def _metres_to_latlng(x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = CENTRE_LAT + y_m / METRES_PER_DEGREE_LAT
    lng = CENTRE_LNG + x_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians(CENTRE_LAT)))
    return lat, lng


def synthetic_cases(rng: np.random.Generator) -> pd.DataFrame:
    """1,000,000 geocoded cases (reported_date, lat, lng), all vectorised."""
    hood_xy = rng.uniform(-0.8 * HALF_SIDE_M, 0.8 * HALF_SIDE_M, (NEIGHBOURHOODS, 2))
    hood_sd_m = rng.uniform(150.0, 700.0, NEIGHBOURHOODS)
    hood_size = rng.gamma(2.0, 1.0, NEIGHBOURHOODS)
    hood_attack = rng.lognormal(0.0, 0.5, NEIGHBOURHOODS)  # some neighbourhoods hit harder

    clustered = rng.random(ADDRESSES) < CLUSTERED_ADDRESS_SHARE
    hood_of = np.where(clustered, rng.choice(NEIGHBOURHOODS, ADDRESSES, p=hood_size / hood_size.sum()), -1)
    address_xy = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, (ADDRESSES, 2))
    in_hood = hood_of >= 0
    address_xy[in_hood] = hood_xy[hood_of[in_hood]] + rng.normal(size=(in_hood.sum(), 2)) * hood_sd_m[hood_of[in_hood], None]
    address_xy = np.clip(address_xy, -HALF_SIDE_M, HALF_SIDE_M)
    address_risk = np.where(in_hood, hood_attack[np.maximum(hood_of, 0)], 1.0)

    person_address = rng.integers(0, ADDRESSES, PEOPLE)
    person_risk = address_risk[person_address]
    background = CASES - OUTBREAK_CASES
    case_person = rng.choice(PEOPLE, background, p=person_risk / person_risk.sum())
    case_xy = address_xy[person_address[case_person]]

    day_index = np.arange(DAYS)
    curve = (0.2 + np.exp(-0.5 * ((day_index - 90) / 25.0) ** 2)
             + 0.7 * np.exp(-0.5 * ((day_index - 270) / 35.0) ** 2))
    case_day = rng.choice(DAYS, background, p=curve / curve.sum())

    # Planted outbreak: extra cases at addresses within 300 m of one point, last 5 days.
    near = np.flatnonzero(np.hypot(*(address_xy - hood_xy[0]).T) <= OUTBREAK_RADIUS_M)
    outbreak_xy = address_xy[rng.choice(near, OUTBREAK_CASES)]
    outbreak_day = rng.integers(DAYS - OUTBREAK_DAYS, DAYS, OUTBREAK_CASES)

    xy = np.vstack([case_xy, outbreak_xy])
    lat, lng = _metres_to_latlng(xy[:, 0], xy[:, 1])
    days = np.concatenate([case_day, outbreak_day])
    return pd.DataFrame({
        "reported_date": FIRST_DAY + pd.to_timedelta(days, unit="D"),
        "lat": lat,
        "lng": lng,
    })


# ------------------------------------------------------------------- (a) aggregation + Gi*


def hotspot_pipeline(cases: pd.DataFrame, graph: NeighbourGraph, start: pd.Timestamp,
                     end: pd.Timestamp) -> tuple[pd.Series, pd.DataFrame, dict[str, float]]:
    """One dashboard refresh on a cached city graph: count the window's cases, Gi*."""
    t0 = time.perf_counter()
    per_cell = aggregate_cases_to_cells(cases, start, end, resolution=H3_RESOLUTION)
    values = per_cell["cases"].reindex(graph.ids, fill_value=0).astype(np.float64)
    t1 = time.perf_counter()
    gi_star = getis_ord(values, graph, star=True)
    t2 = time.perf_counter()
    return values, gi_star, {"aggregate_ms": (t1 - t0) * 1e3, "gi_ms": (t2 - t1) * 1e3, "total_ms": (t2 - t0) * 1e3}


def cold_hotspot_pipeline_ms(cases: pd.DataFrame, city_cells: pd.Index, start: pd.Timestamp,
                             end: pd.Timestamp) -> float:
    """The same refresh without a cache: the city graph is built inside the timing."""
    t0 = time.perf_counter()
    graph = cells_to_neighbour_graph(city_cells, k=1)
    hotspot_pipeline(cases, graph, start, end)
    return (time.perf_counter() - t0) * 1e3


def median_ms(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls, in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        function()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def gi_star_pure_python(values: dict[str, float], neighbours: dict[str, list[str]]) -> dict[str, float]:
    """Baseline: Gi* Z per cell, one cell at a time (binary weights, self included)."""
    n = len(values)
    total = sum(values.values())
    mean = total / n
    variance = sum(v * v for v in values.values()) / n - mean * mean
    z_scores = {}
    for cell, own in values.items():
        neighbour_sum = own
        weight = 1.0
        for other in neighbours[cell]:
            neighbour_sum += values[other]
            weight += 1.0
        g = neighbour_sum / total
        expected = weight / n
        var_g = weight * (n - weight) / (n - 1) / (n * n) * variance / (mean * mean)
        z_scores[cell] = (g - expected) / math.sqrt(var_g)
    return z_scores


def compare_gi(values: pd.Series, repeats: int, baseline_repeats: int) -> dict[str, float | int | bool]:
    """getis_ord (cached graph, and dict input) vs the per-cell loop on the same cells."""
    cells = values.index
    graph_build_ms = median_ms(lambda: cells_to_neighbour_graph(cells, k=1), baseline_repeats)
    graph = cells_to_neighbour_graph(cells, k=1)
    neighbours = cells_to_neighbour_lists(cells, k=1)
    value_dict = values.to_dict()

    vector_ms = median_ms(lambda: getis_ord(values, graph, star=True), repeats)
    dict_input_ms = median_ms(lambda: getis_ord(values, neighbours, star=True), baseline_repeats)
    loop_ms = median_ms(lambda: gi_star_pure_python(value_dict, neighbours), baseline_repeats)

    vector_z = getis_ord(values, graph, star=True)["Z"].to_numpy()
    dict_z = getis_ord(values, neighbours, star=True)["Z"].to_numpy()
    loop_z = gi_star_pure_python(value_dict, neighbours)
    return {
        "cells": len(cells),
        "getis_ord_ms": round(vector_ms, 3),
        "getis_ord_dict_input_ms": round(dict_input_ms, 2),
        "baseline_ms": round(loop_ms, 2),
        "graph_build_ms": round(graph_build_ms, 2),
        "speedup": round(loop_ms / vector_ms, 1),
        "speedup_dict_input": round(loop_ms / dict_input_ms, 2),
        "max_abs_z_diff": float(np.max(np.abs(vector_z - np.array([loop_z[cell] for cell in cells])))),
        "dict_and_graph_identical": bool(np.array_equal(vector_z, dict_z, equal_nan=True)),
    }


def gi_at_scale(rng: np.random.Generator) -> dict[str, float | int | bool]:
    """compare_gi on ~100k cells (a metropolis-sized k-ring) with random counts."""
    centre = latlng_to_cell(CENTRE_LAT, CENTRE_LNG, H3_RESOLUTION)
    cells = pd.Index(sorted(cells_to_grid_disk([centre], GI_SCALING_RING_K)), name="h3_cell")
    values = pd.Series(rng.poisson(5.0, len(cells)).astype(np.float64), index=cells)
    return compare_gi(values, GI_SCALING_REPEATS, BASELINE_GI_REPEATS)


# ------------------------------------------------------------------------------ (b) scan


def cases_to_cell_day_counts(cases: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(cell ids, centroids lat/lng (n x 2), counts (n x DAYS)) over the whole year."""
    cell_ints = latlngs_to_cell_ints(cases["lat"].to_numpy(), cases["lng"].to_numpy(), H3_RESOLUTION)
    unique_cells, codes = np.unique(cell_ints, return_inverse=True)
    days = (cases["reported_date"] - FIRST_DAY).dt.days.to_numpy()
    counts = np.bincount(codes * DAYS + days, minlength=unique_cells.size * DAYS).reshape(-1, DAYS)
    ids = ints_to_cells(unique_cells)
    centroids = cells_to_latlngs(ids)
    return ids, centroids, counts


def scan_pure_python(xy: np.ndarray, counts: np.ndarray, centres: range) -> float:
    """Baseline: best LLR over centres x radii x windows, plain loops, observed data only."""
    n, n_days = counts.shape
    total = int(counts.sum())
    zone_total = counts.sum(axis=1).tolist()
    day_total = counts.sum(axis=0).tolist()
    window_day_total = []
    running = 0
    for w in range(SCAN_MAX_WINDOW_DAYS):
        running += day_total[n_days - 1 - w]
        window_day_total.append(running)
    recent = counts[:, n_days - SCAN_MAX_WINDOW_DAYS:].tolist()
    points = xy.tolist()
    best = 0.0
    for centre in centres:
        cx, cy = points[centre]
        by_distance = sorted((math.hypot(px - cx, py - cy), j) for j, (px, py) in enumerate(points))
        circle_cases = [0] * SCAN_MAX_WINDOW_DAYS
        circle_total = 0
        for position, (distance, j) in enumerate(by_distance):
            if distance > SCAN_RADIUS_M:
                break
            circle_total += zone_total[j]
            row = recent[j]
            running = 0
            for w in range(SCAN_MAX_WINDOW_DAYS):
                running += row[SCAN_MAX_WINDOW_DAYS - 1 - w]
                circle_cases[w] += running
            last_of_tie = (position + 1 == n
                           or by_distance[position + 1][0] > distance + DISTANCE_TIE_TOLERANCE_M)
            if not last_of_tie:
                continue
            if circle_total > SCAN_MAX_CASE_SHARE * total:
                break
            for w in range(SCAN_MAX_WINDOW_DAYS):
                observed = circle_cases[w]
                expected = circle_total * window_day_total[w] / total
                if observed <= expected or observed < SCAN_MIN_CASES:
                    continue
                llr = (observed * math.log(observed / expected)
                       + (total - observed) * math.log((total - observed) / (total - expected)))
                best = max(best, llr)
    return best


# ---------------------------------------------------------------------------------- main


def main() -> None:
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    cases = synthetic_cases(rng)
    generate_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    cell_ids, centroids, counts = cases_to_cell_day_counts(cases)
    cell_day_counts_s = time.perf_counter() - t0
    city_cells = pd.Index(cell_ids, name="h3_cell")

    # (a) aggregation + Gi* for the last 14 days, median of a few runs on the cached graph
    end = FIRST_DAY + pd.Timedelta(days=DAYS - 1)
    start = end - pd.Timedelta(days=GI_WINDOW_DAYS - 1)
    graph_build_ms = median_ms(lambda: cells_to_neighbour_graph(city_cells, k=1), GI_REPEATS)
    city_graph = cells_to_neighbour_graph(city_cells, k=1)
    runs = [hotspot_pipeline(cases, city_graph, start, end) for _ in range(GI_REPEATS)]
    values, gi_star, _ = runs[-1]
    agg_gi_ms = statistics.median(r[2]["total_ms"] for r in runs)
    aggregate_ms = statistics.median(r[2]["aggregate_ms"] for r in runs)
    agg_gi_cold_ms = statistics.median(
        cold_hotspot_pipeline_ms(cases, city_cells, start, end) for _ in range(GI_REPEATS))
    gi_city = compare_gi(values, GI_SMALL_REPEATS, GI_SMALL_REPEATS)
    gi_scaling = gi_at_scale(np.random.default_rng(SEED + 1))
    # The refresh's own Gi* must agree with the loop on the city's values too.
    baseline_z = gi_star_pure_python(values.to_dict(), cells_to_neighbour_lists(city_cells, k=1))
    gi_max_abs_z_diff = float(np.max(np.abs(gi_star["Z"].to_numpy() - np.array([baseline_z[c] for c in city_cells]))))

    # (b) prospective scan with 999 replications
    t0 = time.perf_counter()
    result = prospective_space_time_scan(
        cell_ids, counts, lat_lng_deg=centroids, max_radius_m=SCAN_RADIUS_M,
        max_case_share=SCAN_MAX_CASE_SHARE, max_window_days=SCAN_MAX_WINDOW_DAYS,
        replications=SCAN_REPLICATIONS, min_cases=SCAN_MIN_CASES, seed=SEED)
    scan_s = time.perf_counter() - t0

    # (c) the job's analyses: tests-adjusted and permutation, windows 7 and 21 sharing replicates
    tests = counts * 10 + np.random.default_rng(SEED + 2).poisson(3.0, counts.shape)
    t0 = time.perf_counter()
    for tested in (tests, None):
        prospective_scans(cell_ids, counts, tests=tested, lat_lng_deg=centroids, max_radius_m=SCAN_RADIUS_M,
                          max_case_share=SCAN_MAX_CASE_SHARE, windows=JOB_WINDOWS_DAYS,
                          replications=SCAN_REPLICATIONS, min_cases=SCAN_MIN_CASES, seed=SEED)
    job_scans_s = time.perf_counter() - t0

    xy = latlngs_to_local_xy_m(centroids[:, 0], centroids[:, 1])
    n_centres = min(BASELINE_CENTRES, len(cell_ids))
    t0 = time.perf_counter()
    scan_pure_python(xy, counts, range(n_centres))
    baseline_scan_s = time.perf_counter() - t0
    baseline_per_centre_ms = baseline_scan_s / n_centres * 1e3
    vector_per_centre_ms = scan_s / ((SCAN_REPLICATIONS + 1) * len(cell_ids)) * 1e3
    # Correctness check on all centres (one data set, so affordable even in pure Python).
    baseline_best_llr = scan_pure_python(xy, counts, range(len(cell_ids)))
    top = result.clusters[0] if result.clusters else None

    print(json.dumps({
        "cases": int(len(cases)),
        "cells": int(len(cell_ids)),
        "agg_gi_ms": round(agg_gi_ms, 1),
        "scan_s": round(scan_s, 2),
        "speedup_gi": gi_scaling["speedup"],
        "speedup_gi_cells": gi_scaling["cells"],
        "speedup_gi_city": gi_city["speedup"],
        "speedup_gi_dict_input": gi_scaling["speedup_dict_input"],
        "speedup_scan": round(baseline_per_centre_ms / vector_per_centre_ms, 1),
        "agg_gi_target_ms": TARGET_AGG_GI_MS,
        "agg_gi_target_met": agg_gi_ms <= TARGET_AGG_GI_MS,
        "scan_target_s": TARGET_SCAN_S,
        "scan_target_met": scan_s <= TARGET_SCAN_S,
        "job_scans_s": round(job_scans_s, 2),
        "job_scans_windows_days": list(JOB_WINDOWS_DAYS),
        "job_scans_vs_single_scan": round(job_scans_s / scan_s, 2),
        "job_scans_target_met": job_scans_s <= TARGET_JOB_SCANS_RATIO * scan_s,
        "agg_gi_graph_cached": True,
        "graph_build_ms": round(graph_build_ms, 2),
        "agg_gi_cold_ms": round(agg_gi_cold_ms, 1),
        "aggregate_ms": round(aggregate_ms, 1),
        "gi_ms": gi_city["getis_ord_ms"],
        "baseline_gi_ms": gi_city["baseline_ms"],
        "gi_max_abs_z_diff": gi_max_abs_z_diff,
        "gi_city": gi_city,
        "gi_at_scale": gi_scaling,
        "window_cases_gi": int(values.sum()),
        "scan_replications": SCAN_REPLICATIONS,
        "scan_per_centre_per_dataset_us": round(vector_per_centre_ms * 1e3, 2),
        "baseline_scan_per_centre_per_dataset_us": round(baseline_per_centre_ms * 1e3, 1),
        "baseline_scan_centres": n_centres,
        "scan_llr_matches_baseline": bool(top is not None and math.isclose(top.llr, baseline_best_llr, rel_tol=1e-9)),
        "top_cluster": None if top is None else {
            "radius_m": round(top.radius_m, 1), "locations": len(top.location_ids),
            "start_day": top.start_day, "observed": top.observed, "expected": round(top.expected, 1),
            "llr": round(top.llr, 2), "p": top.p_value,
            "recurrence_interval_days": round(top.recurrence_interval_days, 1)},
        "clusters_p_lt_005": sum(c.p_value < 0.05 for c in result.clusters),
        "generate_s": round(generate_s, 2),
        "cell_day_counts_s": round(cell_day_counts_s, 2),
    }))


if __name__ == "__main__":
    main()
