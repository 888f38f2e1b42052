"""H3 aggregation of cases/tests, areal population spreading and parent/child roll-ups."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon, box, shape

from analytics.cells import (
    aggregate_cases_to_cells,
    aggregate_tests_to_cells,
    rates_per_100k,
    rollup_to_parent,
    split_to_children,
)
from geo.cell_ints import cells_to_ints, latlngs_to_cell_ints, parent_cell_ints
from geo.cells import validate_resolution
from geo.population import areas_to_cell_population
from geo.projection import AUTHALIC_EARTH_RADIUS_M

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NYC = SHARED / "nychealth-coronavirus-data"
MODZCTA_GEOJSON = NYC / "Geography-resources" / "MODZCTA_2010_WGS1984.geo.json"
MODZCTA_TOTALS = NYC / "totals" / "data-by-modzcta.csv"

# Three res-9 cells in lower Manhattan, picked by their centres so membership is certain.
CELL_A = h3.latlng_to_cell(40.7128, -74.0060, 9)
CELL_B = h3.latlng_to_cell(40.7306, -73.9866, 9)
CELL_C = h3.latlng_to_cell(40.7484, -73.9857, 9)


def _centre(cell: str) -> tuple[float, float]:
    return h3.cell_to_latlng(cell)


def _cases(rows: list[tuple[str, str]]) -> pd.DataFrame:
    """(cell, reported timestamp) -> a cases frame with the cell centre as lat/lng."""
    lat_lng = [_centre(cell) for cell, _ in rows]
    return pd.DataFrame(
        {
            "lat": [lat for lat, _ in lat_lng],
            "lng": [lng for _, lng in lat_lng],
            "reported_date": pd.to_datetime([when for _, when in rows], format="ISO8601"),
        }
    )


# ----------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("resolution", [7, 8, 9, 10])
def test_supported_resolutions_pass(resolution: int) -> None:
    assert validate_resolution(resolution) == resolution


@pytest.mark.parametrize("resolution", [6, 11, 0, -1, 9.0, True, "9"])
def test_unsupported_resolutions_are_rejected(resolution: object) -> None:
    with pytest.raises(ValueError, match="resolution"):
        validate_resolution(resolution)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution"):
        aggregate_cases_to_cells(_cases([(CELL_A, "2020-10-01")]), "2020-10-01", "2020-10-01", resolution)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution"):
        rollup_to_parent(pd.Series([1], index=[CELL_A]), resolution)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- aggregation


def test_cases_are_counted_per_cell_within_the_inclusive_day_window() -> None:
    cases = _cases(
        [
            (CELL_A, "2020-09-30 23:59"),  # the day before: out
            (CELL_A, "2020-10-01 00:00"),  # first day: in
            (CELL_A, "2020-10-03 12:00"),
            (CELL_A, "2020-10-07 23:59"),  # last day, late: in
            (CELL_B, "2020-10-05"),
            (CELL_B, "2020-10-05"),
            (CELL_C, "2020-10-08 00:00"),  # the day after: out
        ]
    )

    result = aggregate_cases_to_cells(cases, "2020-10-01", "2020-10-07", resolution=9)

    assert result.index.name == "h3_cell"
    assert list(result.columns) == ["cases"]
    assert result["cases"].to_dict() == {CELL_A: 3, CELL_B: 2}
    assert list(result.index) == sorted(result.index)


def test_counts_at_a_coarser_resolution_are_the_sum_over_children() -> None:
    cases = _cases([(CELL_A, "2020-10-01"), (CELL_B, "2020-10-01"), (CELL_C, "2020-10-02")] * 3)

    at_7 = aggregate_cases_to_cells(cases, "2020-10-01", "2020-10-02", resolution=7)

    expected = pd.Series([h3.cell_to_parent(c, 7) for c in (CELL_A, CELL_B, CELL_C)] * 3).value_counts()
    assert at_7["cases"].to_dict() == expected.to_dict()
    assert at_7["cases"].sum() == 9


def test_given_cells_are_used_and_lat_lng_fills_the_rest() -> None:
    fine_child = h3.cell_to_children(CELL_B, 10)[3]
    cases = _cases([(CELL_A, "2020-10-01"), (CELL_A, "2020-10-01"), (CELL_C, "2020-10-01")])
    # Row 0 keeps only lat/lng; row 1 says it is in CELL_B's child (it wins over lat/lng).
    cases["h3_cell"] = [None, fine_child, CELL_C]

    result = aggregate_cases_to_cells(cases, "2020-10-01", "2020-10-01", resolution=9)

    assert result["cases"].to_dict() == {CELL_A: 1, CELL_B: 1, CELL_C: 1}


def test_date_objects_strings_and_timezones_are_accepted() -> None:
    cases = _cases([(CELL_A, "2020-10-01"), (CELL_A, "2020-10-02")])

    assert aggregate_cases_to_cells(cases, dt.date(2020, 10, 2), dt.date(2020, 10, 2))["cases"].sum() == 1
    as_dates = cases.assign(reported_date=[dt.date(2020, 10, 1), dt.date(2020, 10, 2)])
    assert aggregate_cases_to_cells(as_dates, "2020-10-01", "2020-10-01")["cases"].sum() == 1
    as_text = cases.assign(reported_date=["2020-10-01", "2020-10-02T08:30:00"])
    assert aggregate_cases_to_cells(as_text, "2020-10-02", "2020-10-02")["cases"].sum() == 1
    aware = cases.assign(reported_date=cases["reported_date"].dt.tz_localize("America/New_York"))
    assert aggregate_cases_to_cells(aware, "2020-10-01", "2020-10-01")["cases"].sum() == 1


def test_an_empty_window_gives_an_empty_frame() -> None:
    result = aggregate_cases_to_cells(_cases([(CELL_A, "2020-10-01")]), "2021-01-01", "2021-01-31")
    assert result.empty and list(result.columns) == ["cases"]


def test_unplaceable_rows_raise_instead_of_being_dropped() -> None:
    cases = _cases([(CELL_A, "2020-10-01"), (CELL_B, "2020-10-01")])
    broken = cases.copy()
    broken.loc[1, "lat"] = np.nan
    with pytest.raises(ValueError, match="1 row"):
        aggregate_cases_to_cells(broken, "2020-10-01", "2020-10-01")
    out_of_range = cases.copy()
    out_of_range.loc[0, "lat"] = 91.0
    with pytest.raises(ValueError, match="out-of-range"):
        aggregate_cases_to_cells(out_of_range, "2020-10-01", "2020-10-01")
    # A bad row outside the window is not in the count, so it does not matter.
    assert aggregate_cases_to_cells(broken, "2020-09-01", "2020-09-30").empty
    coarse = cases.assign(h3_cell=h3.cell_to_parent(CELL_A, 8))
    with pytest.raises(ValueError, match="coarser"):
        aggregate_cases_to_cells(coarse, "2020-10-01", "2020-10-01", resolution=9)
    with pytest.raises(ValueError, match="valid H3"):
        aggregate_cases_to_cells(cases.assign(h3_cell="nonsense"), "2020-10-01", "2020-10-01")
    with pytest.raises(ValueError, match="before start"):
        aggregate_cases_to_cells(cases, "2020-10-02", "2020-10-01")
    with pytest.raises(ValueError, match="reported_date"):
        aggregate_cases_to_cells(cases.drop(columns="reported_date"), "2020-10-01", "2020-10-01")
    with pytest.raises(ValueError, match="lat/lng"):
        aggregate_cases_to_cells(cases.drop(columns=["lat", "lng"]), "2020-10-01", "2020-10-01")


def test_tests_and_positivity_per_cell() -> None:
    rows = [(CELL_A, "2020-10-01"), (CELL_A, "2020-10-02"), (CELL_A, "2020-10-02"), (CELL_A, "2020-10-03"),
            (CELL_B, "2020-10-02"), (CELL_B, "2020-10-09")]
    tests = _cases(rows).rename(columns={"reported_date": "test_date"})
    tests["positive"] = [True, False, True, False, False, True]

    result = aggregate_tests_to_cells(tests, "2020-10-01", "2020-10-07", resolution=9)

    assert result.loc[CELL_A].to_dict() == {"tests": 4, "positives": 2, "positivity": 0.5}
    assert result.loc[CELL_B].to_dict() == {"tests": 1, "positives": 0, "positivity": 0.0}
    with pytest.raises(ValueError, match="positive"):
        aggregate_tests_to_cells(tests.assign(positive=None), "2020-10-01", "2020-10-07")


def test_a_large_batch_is_counted_exactly() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    lat = rng.uniform(40.5, 40.9, n).round(4)  # rounding makes repeated addresses, as geocoding does
    lng = rng.uniform(-74.2, -73.7, n).round(4)
    days = pd.Timestamp("2020-10-01") + pd.to_timedelta(rng.integers(0, 14, n), unit="D")
    cases = pd.DataFrame({"lat": lat, "lng": lng, "reported_date": days})

    result = aggregate_cases_to_cells(cases, "2020-10-01", "2020-10-07", resolution=8)

    in_window = days < pd.Timestamp("2020-10-08")
    sample = np.flatnonzero(in_window)[:500]
    reference = pd.Series([h3.latlng_to_cell(lat[i], lng[i], 8) for i in sample])
    assert result["cases"].sum() == int(in_window.sum())
    assert set(reference) <= set(result.index)


# ------------------------------------------------------------------------------ cell ids


def test_vectorised_parent_matches_h3() -> None:
    rng = np.random.default_rng(5)
    lat, lng = rng.uniform(-80, 80, 300), rng.uniform(-180, 180, 300)
    for start_res in (10, 15):
        cells = [h3.latlng_to_cell(a, b, start_res) for a, b in zip(lat, lng)]
        ints = cells_to_ints(cells)
        for res in range(0, start_res + 1):
            expected = [h3.str_to_int(h3.cell_to_parent(c, res)) for c in cells]
            np.testing.assert_array_equal(parent_cell_ints(ints, res), np.array(expected, dtype=np.uint64))
    with pytest.raises(ValueError, match="coarser"):
        parent_cell_ints(cells_to_ints([CELL_A]), 10)


def test_points_to_cells_matches_h3_including_repeated_points() -> None:
    rng = np.random.default_rng(6)
    lat = np.repeat(rng.uniform(40.5, 40.9, 50), 3)
    lng = np.repeat(rng.uniform(-74.2, -73.7, 50), 3)
    ints = latlngs_to_cell_ints(lat, lng, 10)
    assert [h3.int_to_str(int(c)) for c in ints] == [h3.latlng_to_cell(a, b, 10) for a, b in zip(lat, lng)]


# ----------------------------------------------------------------------------- population


def _spherical_area_of_lnglat_box_m2(west: float, south: float, east: float, north: float) -> float:
    """Exact area on the authalic sphere of a box bounded by meridians and parallels."""
    return AUTHALIC_EARTH_RADIUS_M**2 * math.radians(east - west) * (math.sin(math.radians(north)) - math.sin(math.radians(south)))


def test_population_follows_area_share_and_is_conserved() -> None:
    area = box(-74.02, 40.70, -73.97, 40.74)  # (lng, lat): about 4.2 km x 4.4 km
    population = 120_000.0

    result = areas_to_cell_population([(area, population)], resolution=9)

    assert result.name == "population" and result.index.name == "h3_cell"
    assert result.sum() == pytest.approx(population, rel=1e-9)
    assert (result > 0).all()
    # A cell wholly inside the box gets population x its share of the box's area.
    inside = h3.latlng_to_cell(40.72, -73.995, 9)
    expected = population * h3.cell_area(inside, unit="m^2") / _spherical_area_of_lnglat_box_m2(-74.02, 40.70, -73.97, 40.74)
    assert result[inside] == pytest.approx(expected, rel=1e-6)
    # A cell on the edge gets less than a whole cell's share.
    edge = h3.latlng_to_cell(40.70, -73.995, 9)
    assert 0 < result[edge] < expected


def test_a_small_area_inside_one_cell_puts_everyone_in_that_cell() -> None:
    lat, lng = h3.cell_to_latlng(CELL_A)
    tiny = box(lng - 0.0003, lat - 0.0002, lng + 0.0003, lat + 0.0002)
    result = areas_to_cell_population([(tiny, 500.0)], resolution=9)
    assert result.to_dict() == {CELL_A: pytest.approx(500.0, rel=1e-12)}


def test_overlapping_areas_add_up_in_shared_cells() -> None:
    lat, lng = h3.cell_to_latlng(CELL_A)
    left = box(lng - 0.0004, lat - 0.0002, lng, lat + 0.0002)
    right = box(lng, lat - 0.0002, lng + 0.0004, lat + 0.0002)
    result = areas_to_cell_population([(left, 100.0), (right, 40.0)], resolution=9)
    assert result[CELL_A] == pytest.approx(140.0, rel=1e-12)


def test_an_area_given_as_a_single_h3_cell_stays_in_that_cell() -> None:
    cell = h3.cell_to_parent(CELL_A, 8)
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    result = areas_to_cell_population([(Polygon(ring), 1000.0)], resolution=8)
    assert result.sum() == pytest.approx(1000.0, rel=1e-12)
    assert result[cell] == pytest.approx(1000.0, rel=1e-6)  # neighbours get at most rounding slivers


def test_population_input_is_validated() -> None:
    area = box(-74.02, 40.70, -73.97, 40.74)
    with pytest.raises(ValueError, match="population"):
        areas_to_cell_population([(area, -1.0)], 9)
    with pytest.raises(ValueError, match="population"):
        areas_to_cell_population([(area, float("nan"))], 9)
    with pytest.raises(ValueError, match="empty"):
        areas_to_cell_population([(Polygon(), 10.0)], 9)
    with pytest.raises(ValueError, match="Polygon"):
        areas_to_cell_population([(area.exterior, 10.0)], 9)
    with pytest.raises(ValueError, match="resolution"):
        areas_to_cell_population([(area, 10.0)], 11)
    assert areas_to_cell_population([], 9).empty


def _modzcta_areas() -> list[tuple[object, float]]:
    assert MODZCTA_GEOJSON.exists(), f"reference data missing: {MODZCTA_GEOJSON}"
    assert MODZCTA_TOTALS.exists(), f"reference data missing: {MODZCTA_TOTALS}"
    features = json.loads(MODZCTA_GEOJSON.read_text())["features"]
    population = pd.read_csv(MODZCTA_TOTALS).set_index("MODIFIED_ZCTA")["POP_DENOMINATOR"]
    # 99999 is a non-residential area with no data (see the data README).
    return [
        (shape(f["geometry"]), float(population.loc[int(f["properties"]["MODZCTA"])]))
        for f in features
        if f["properties"]["MODZCTA"] != "99999"
    ]


@pytest.mark.parametrize("resolution", [7, 9])
def test_nyc_modzcta_population_is_conserved(resolution: int) -> None:
    areas = _modzcta_areas()
    assert len(areas) == 177
    total = sum(population for _, population in areas)

    result = areas_to_cell_population(areas, resolution)

    assert result.sum() == pytest.approx(total, rel=1e-6)
    assert (result >= 0).all()
    # NYC's 8.3 million people on a grid of ~5 km² (res 7) or ~0.1 km² (res 9) cells.
    assert total == pytest.approx(8_332_458.14, rel=1e-9)
    assert len(result) == {7: 217, 9: 7938}[resolution]


# ------------------------------------------------------------------------------- rates


def test_rates_per_100k_only_where_population_is_known() -> None:
    counts = pd.Series([5, 2, 3, 4], index=["a", "b", "c", "d"])
    population = pd.Series({"a": 1000.0, "b": 0.0, "d": 50.0})

    rates = rates_per_100k(counts, population)

    assert rates["a"] == pytest.approx(500.0)
    assert np.isnan(rates["b"]) and np.isnan(rates["c"])
    assert rates["d"] == pytest.approx(8000.0)
    assert np.isnan(rates_per_100k(counts, population, min_population=100.0)["d"])


# ---------------------------------------------------------------------------- hierarchy


def test_rollup_to_parent_sums_children_of_mixed_resolutions() -> None:
    parent = h3.cell_to_parent(CELL_A, 8)
    children = h3.cell_to_children(parent, 9)
    grandchild = h3.cell_to_children(children[0], 10)[0]
    other = h3.cell_to_parent(CELL_C, 8)
    counts = pd.Series([1, 2, 3, 4, 10], index=[children[0], children[1], children[2], grandchild, CELL_C], name="cases")

    rolled = rollup_to_parent(counts, 8)

    assert rolled.to_dict() == {parent: 10, other: 10}
    assert rolled.name == "cases"
    with pytest.raises(ValueError, match="coarser"):
        rollup_to_parent(pd.Series([1], index=[h3.cell_to_parent(CELL_A, 7)]), 8)


def test_split_to_children_equal_and_weighted() -> None:
    parent = h3.cell_to_parent(CELL_A, 8)
    other = h3.cell_to_parent(CELL_C, 8)
    children = h3.cell_to_children(parent, 9)
    values = pd.Series([70.0, 14.0], index=[parent, other], name="population")

    equal = split_to_children(values, 9)
    assert len(equal) == 14
    assert equal[children].tolist() == pytest.approx([10.0] * 7)
    assert equal.sum() == pytest.approx(84.0)

    # Weights on two of parent's children; none on other's children -> equal split there.
    weights = pd.Series({children[0]: 3.0, children[1]: 1.0})
    weighted = split_to_children(values, 9, weights)
    assert weighted[children[0]] == pytest.approx(52.5)
    assert weighted[children[1]] == pytest.approx(17.5)
    assert weighted[children[2:]].tolist() == pytest.approx([0.0] * 5)
    assert weighted[h3.cell_to_children(other, 9)].tolist() == pytest.approx([2.0] * 7)
    # Round trip: splitting then rolling up gives the parents back.
    assert rollup_to_parent(weighted, 8).to_dict() == pytest.approx(values.to_dict())

    two_levels = split_to_children(values, 10)
    assert len(two_levels) == 98 and two_levels.sum() == pytest.approx(84.0)
    with pytest.raises(ValueError, match="coarser"):
        split_to_children(values, 8)
    with pytest.raises(ValueError, match=">= 0"):
        split_to_children(values, 9, pd.Series({children[0]: -1.0}))
