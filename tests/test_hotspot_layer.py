"""The Gi* hot-spot layer of /clusters: Benjamini-Hochberg by hand, the hot/cold classes, what the cluster
job stores (the same Gi* as analytics.hotspots on the same rates), and who may see it (services.privacy).
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import h3
import numpy as np
import pandas as pd
import pytest

from analytics.cells import MIN_RATE_POPULATION, rates_per_100k
from analytics.hotspots import benjamini_hochberg, getis_ord, hot_and_cold_spots
from auth.principal import principal_for, public_principal
from geo.neighbours import cells_to_neighbour_graph
from ingest.batch import BatchBuilder
from ingest.records import ValidationContext
from jobs import clusters as job
from services.clusters import cluster_view
from store import Store
from store import queries_clusters as qc
from tests.test_clusters_job import AS_OF, CENTRE_LAT, CENTRE_LNG, HALF_SIDE_M, PLANT_CELL, RULEBOOK, _offset, build_city

K = 5


# --- Benjamini-Hochberg and the classes, by hand --------------------------------------------------------
def test_benjamini_hochberg_against_a_hand_computed_case() -> None:
    # m = 6. Sorted: 0.001 0.008 0.039 0.041 0.042 0.60; times m / rank: 0.006 0.024 0.078 0.0615 0.0504 0.60;
    # running minimum from the top: 0.006 0.024 0.0504 0.0504 0.0504 0.60. At FDR 5 % only the first two pass,
    # although five raw p-values are below 0.05.
    p = [0.041, 0.001, 0.60, 0.039, 0.008, 0.042]
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q, [0.0504, 0.006, 0.60, 0.0504, 0.024, 0.0504], rtol=1e-12)
    assert list(np.flatnonzero(q <= 0.05)) == [1, 4]
    # NaN stays NaN and is not counted in m; a large p is capped at 1.
    np.testing.assert_allclose(benjamini_hochberg([np.nan, 0.02, 0.9]), [np.nan, 0.04, 0.9])
    assert benjamini_hochberg([0.7, 0.8])[0] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        benjamini_hochberg([1.5])


def test_classes_use_two_sided_p_and_the_fdr_across_units() -> None:
    # Z of 3.2 / -2.2 / 1.9 / 0.3: two-sided p 0.00137, 0.0278, 0.0574, 0.764; BH over 4 units:
    # q = 0.00549, 0.0556, 0.0766, 0.764 -> hot 99 %, cold 90 %, hot 90 %, not significant.
    z = np.array([3.2, -2.2, 1.9, 0.3])
    one_sided = np.array([0.5 * math.erfc(abs(v) / math.sqrt(2)) for v in z])
    spots = hot_and_cold_spots(pd.DataFrame({"Z": z, "p": one_sided}, index=list("abcd")))
    two_sided = 2 * one_sided
    assert spots["p"].to_numpy() == pytest.approx(two_sided)
    by_hand = np.minimum.accumulate((np.sort(two_sided) * 4 / np.arange(1, 5))[::-1])[::-1]
    assert spots["q"].to_numpy() == pytest.approx(by_hand[np.argsort(np.argsort(two_sided))])
    assert list(spots["spot"]) == ["hot 99 %", "cold 90 %", "hot 90 %", "not significant"]
    assert list(spots["confidence"].fillna(0)) == [0.99, 0.90, 0.90, 0]
    # Without the FDR step, the raw p of -2.2 would have passed at 95 %: the layer is the stricter one.
    assert two_sided[1] < 0.05 and spots.at["b", "spot"] == "cold 90 %"


# --- what the job stores ------------------------------------------------------------------------------
def _precincts(store: Store) -> None:
    """Two precincts: the west and east halves of the synthetic square."""
    ctx = ValidationContext(now=datetime(2027, 1, 1, tzinfo=timezone.utc), check_registries=False)
    batch = BatchBuilder("precincts", "file")
    (s,), (w,) = _offset(CENTRE_LAT, CENTRE_LNG, np.array([-HALF_SIDE_M * 1.2]), np.array([-HALF_SIDE_M * 1.2]))
    (n,), (e,) = _offset(CENTRE_LAT, CENTRE_LNG, np.array([HALF_SIDE_M * 1.2]), np.array([HALF_SIDE_M * 1.2]))
    for area_id, lo, hi in (("P-W", w, CENTRE_LNG), ("P-E", CENTRE_LNG, e)):
        ring = [[lo, s], [hi, s], [hi, n], [lo, n], [lo, s]]
        assert batch.add("area", {"area_id": area_id, "name": area_id, "kind": "precinct",
                                  "geometry": {"type": "Polygon", "coordinates": [ring]}}, area_id.encode(), ctx)
    store.write_batch(batch.build()).result()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    from settings import load_settings
    from tests.conftest import write_config

    folder = tmp_path_factory.mktemp("hotspots")
    settings = load_settings(write_config(folder, clusters={"zone_rulebook": str(RULEBOOK), "study_days": 60,
                                                            "replications": 99, "seed": 3}))
    store = Store(folder / "h.duckdb")
    build_city(store, AS_OF, AS_OF)
    _precincts(store)
    summary = job.run(store, settings, AS_OF)
    assert summary["status"] == "computed"
    yield store, settings, summary
    store.close()


def test_the_job_stores_gi_star_of_recent_rates_for_every_populated_cell(scanned) -> None:
    store, settings, summary = scanned
    stored = qc.hotspots_on(store, AS_OF)
    inputs = job.read_inputs(store, settings, job.load_zone_rulebook(settings), AS_OF)
    population = inputs.grid.population
    populated = sorted(population[population > MIN_RATE_POPULATION].index)
    assert sorted(stored["h3_cell"]) == populated and set(stored["window_days"]) == {job.HOTSPOT_WINDOW_DAYS}

    # The same Gi* as analytics.hotspots on the same 14-day rates: the stored figure is not a second one.
    start = AS_OF - timedelta(days=job.HOTSPOT_WINDOW_DAYS - 1)
    recent = inputs.cases[pd.to_datetime(inputs.cases["day"]) >= pd.Timestamp(start)]
    graph = cells_to_neighbour_graph(pd.Index(populated), k=1)
    counts = recent.groupby("h3_cell")["cases"].sum().reindex(graph.ids, fill_value=0)
    gi = getis_ord(rates_per_100k(counts, population, MIN_RATE_POPULATION), graph, star=True)
    by_cell = stored.set_index("h3_cell").loc[graph.ids]
    assert by_cell["cases"].to_numpy() == pytest.approx(counts.to_numpy())
    assert by_cell["z"].to_numpy() == pytest.approx(gi["Z"].to_numpy(), rel=1e-12)
    assert by_cell["q"].to_numpy() == pytest.approx(benjamini_hochberg(np.minimum(2 * gi["p"].to_numpy(), 1)))

    # The planted cluster is a hot spot at the highest confidence; the run counts the classed cells.
    assert by_cell.at[PLANT_CELL, "spot"] == "hot 99 %"
    assert summary["hotspots"] == int((stored["spot"] != "not significant").sum())
    assert store.scalar("SELECT hotspot_window_days FROM cluster_runs") == job.HOTSPOT_WINDOW_DAYS


def test_a_rerun_of_the_day_replaces_the_layer(scanned, tmp_path) -> None:
    store, settings, _ = scanned
    before = len(qc.hotspots_on(store, AS_OF))
    store.submit(lambda con: con.execute("DELETE FROM cluster_runs")).result()  # forget the fingerprint
    assert job.run(store, settings, AS_OF)["status"] == "computed"
    assert len(qc.hotspots_on(store, AS_OF)) == before


# --- who sees it ----------------------------------------------------------------------------------------
def test_cells_reach_only_roles_that_see_cells_and_police_only_their_precinct(scanned) -> None:
    store, settings, _ = scanned
    today = AS_OF + timedelta(days=1)
    stored = qc.hotspots_on(store, AS_OF)
    for principal in (public_principal(), principal_for("adm", "admin")):
        assert cluster_view(store, settings, principal, today, 14).hotspots.empty

    operator = cluster_view(store, settings, principal_for("op", "operator"), today, 14).hotspots
    assert len(operator) == len(stored)
    small = stored["cases"].between(1, settings.privacy.min_count - 1).to_numpy()
    assert small.any()
    shown = operator.set_index("h3_cell").loc[stored["h3_cell"]]
    assert shown["cases__suppressed"].to_numpy()[small].all()
    assert shown["rate_per_100k"].isna().to_numpy()[small].all()  # a rate would give the count back
    assert list(shown["spot"]) == list(stored["spot"])  # the class itself is a statement about a neighbourhood

    west = cluster_view(store, settings, principal_for("cop", "police", ("P-W",)), today, 14).hotspots
    assert 0 < len(west) < len(stored)
    assert all(h3.cell_to_latlng(c)[1] < CENTRE_LNG for c in west["h3_cell"])
