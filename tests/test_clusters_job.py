"""The cluster job on a synthetic city with a planted micro-cluster: scan, zones, history, alerts, idempotence."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from ingest.batch import BatchBuilder
from ingest.records import ValidationContext
from jobs import clusters as job
from auth.principal import system_principal
from geo.grid import spread_tests_to_grid
from services.clusters import place_history
from store import Store

ROOT = Path(__file__).resolve().parents[1]
RULEBOOK = ROOT / "rulebooks" / "zones_nys_cai_2020.yaml"

AS_OF = date(2026, 11, 10)
DAYS = 60  # of background data before and including AS_OF
CENTRE_LAT, CENTRE_LNG = 2.93, 101.69
HALF_SIDE_M = 1600.0  # the synthetic community is a 3.2 km square
POPULATION = 60_000
PLANT_LAT, PLANT_LNG = 2.9345, 101.6935  # ~600 m north-east of the centre
PLANT_RADIUS_M = 120.0
PLANT_DAYS = 16  # the cluster emerges over the last 16 days: enough for 10 days of 7-day positivity
PLANT_PER_DAY = 6
BACKGROUND_PER_DAY = 12
M_PER_DEG = 111_320.0


def _offset(lat: float, lng: float, dx_m: np.ndarray, dy_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lat + dy_m / M_PER_DEG, lng + dx_m / (M_PER_DEG * math.cos(math.radians(lat)))


def _square() -> dict:
    lat0, lng0 = _offset(CENTRE_LAT, CENTRE_LNG, np.array([-HALF_SIDE_M]), np.array([-HALF_SIDE_M]))
    lat1, lng1 = _offset(CENTRE_LAT, CENTRE_LNG, np.array([HALF_SIDE_M]), np.array([HALF_SIDE_M]))
    a, b, c, d = float(lng0[0]), float(lat0[0]), float(lng1[0]), float(lat1[0])
    return {"type": "Polygon", "coordinates": [[[a, b], [c, b], [c, d], [a, d], [a, b]]]}


PLANT_CELL = h3.latlng_to_cell(PLANT_LAT, PLANT_LNG, 9)


def build_city(store: Store, last_day: date, plant_until: date, seed: int = 5) -> None:
    """Background cases and tests per cell, plus a planted cluster over PLANT_DAYS days up to ``plant_until``."""
    rng = np.random.default_rng(seed)
    ctx = ValidationContext(now=datetime(2027, 1, 1, tzinfo=timezone.utc), check_registries=False)
    batch = BatchBuilder("synthetic", "file")
    assert batch.add("area", {"area_id": "A1", "name": "Square", "kind": "community", "population": POPULATION,
                              "geometry": _square()}, b"area", ctx)
    first = last_day - timedelta(days=DAYS + 25 - 1)
    plant_start = plant_until - timedelta(days=PLANT_DAYS - 1)
    n = 0
    cells = set()
    for offset in range((last_day - first).days + 1):
        day = first + timedelta(days=offset)
        k = rng.poisson(BACKGROUND_PER_DAY)
        lat, lng = _offset(CENTRE_LAT, CENTRE_LNG, rng.uniform(-HALF_SIDE_M * 0.95, HALF_SIDE_M * 0.95, k),
                           rng.uniform(-HALF_SIDE_M * 0.95, HALF_SIDE_M * 0.95, k))
        if plant_start <= day <= plant_until:
            r = PLANT_RADIUS_M * np.sqrt(rng.uniform(0, 1, PLANT_PER_DAY))
            t = rng.uniform(0, 2 * np.pi, PLANT_PER_DAY)
            plat, plng = _offset(PLANT_LAT, PLANT_LNG, r * np.cos(t), r * np.sin(t))
            lat, lng = np.concatenate([lat, plat]), np.concatenate([lng, plng])
        for la, ln in zip(lat, lng):
            n += 1
            rec = {"case_id": f"K{n}", "reported_date": day.isoformat(), "lat": round(float(la), 6),
                   "lng": round(float(ln), 6), "status": "confirmed"}
            assert batch.add("case", rec, repr(rec).encode(), ctx)
            cells.add(h3.latlng_to_cell(float(la), float(ln), 9))
    # Tests per cell and day: 1 % positive in the background, 12 % in the planted cells while it lasts.
    plant_cells = set(h3.grid_disk(PLANT_CELL, 1))
    for offset in range((last_day - first).days + 1):
        day = first + timedelta(days=offset)
        for cell in sorted(cells):
            hot = cell in plant_cells and plant_start - timedelta(days=3) <= day <= plant_until
            tested = 20
            positive = int(rng.binomial(tested, 0.12 if hot else 0.01))
            rec = {"test_date": day.isoformat(), "h3_cell": cell, "tested": tested, "positive": positive}
            assert batch.add("test", rec, repr(rec).encode(), ctx)
    result = store.write_batch(batch.build()).result()
    assert result.rejected == 0


@pytest.fixture
def settings(settings_factory):
    return settings_factory(clusters={"zone_rulebook": str(RULEBOOK), "study_days": 60, "replications": 199,
                                      "seed": 3})


def snapshot(store: Store) -> dict[str, list]:
    """Every row the job owns (and the alerts), ordered, for before/after comparisons."""
    out = {}
    for table, order in (("cluster_runs", "as_of"), ("detected_clusters", "run_id, rank"),
                         ("zone_events", "event_id"), ("zones", "zone_id"), ("alerts", "alert_id")):
        out[table] = [tuple(str(v) for v in row) for row in store.read_rows(f"SELECT * FROM {table} ORDER BY {order}")]
    return out


def test_planted_cluster_becomes_a_significant_cluster_and_a_zone(tmp_path, settings):
    assert RULEBOOK.exists()
    with Store(tmp_path / "c.duckdb") as store:
        build_city(store, AS_OF, AS_OF)
        summary = job.run(store, settings, AS_OF + timedelta(days=1))  # data end on AS_OF: that is the day
        assert summary["status"] == "computed" and summary["as_of"] == AS_OF.isoformat()
        assert summary["significant"] >= 1 and summary["zones_in_force"] >= 1

        run = store.read("SELECT * FROM cluster_runs")
        assert len(run) == 1 and run.at[0, "replications"] == 199 and run.at[0, "rule_id"] == "nys-cai-2020"
        top = store.read("SELECT * FROM detected_clusters ORDER BY rank").iloc[0]
        assert top["significant"] and top["p_value"] <= 0.05
        assert PLANT_CELL in set(top["cells"]) or h3.grid_distance(PLANT_CELL, top["centre_cell"]) <= 1
        # Tests are reported per cell, so the tests-adjusted scan drives the zones; the permutation scan
        # ran beside it for the page's choice.
        assert run.at[0, "method"] == "tests_adjusted" and run.at[0, "method_note"] == ""
        assert run.at[0, "methods_run"] == "tests_adjusted,permutation" and run.at[0, "windows_days"] == "7,21"
        assert top["method"] == "tests_adjusted" and top["max_window_days"] in (7, 21)
        assert top["recurrence_interval_days"] >= 100  # NYC's reporting bar
        # The planted cluster started within a few days of when it was planted, and ends on the last day of
        # the study period: the analysis day less the 3-day accrual lag.
        plant_start = AS_OF - timedelta(days=PLANT_DAYS - 1)
        assert abs((top["start_date"].date() - plant_start).days) <= 6
        assert top["end_date"].date() == AS_OF - timedelta(days=3) == run.at[0, "study_end"].date()
        assert top["observed"] > top["expected"] and top["relative_risk"] > 1
        assert top["recurrence_interval_days"] == pytest.approx(1 / top["p_value"])

        zones = store.read("SELECT * FROM zones WHERE lifted_on IS NULL")
        core = zones[zones["role"] == "core"].iloc[0]
        assert core["cluster_id"] == top["cluster_id"] and core["tier"] == "red"
        assert set(zones["tier"]) == {"red", "orange", "yellow"}  # the core and its two rings
        ring_cells = {c for cells in zones["cells"] for c in cells}
        assert len(ring_cells) == sum(len(c) for c in zones["cells"]), "zones overlap"
        assert core["entered_on"].date() == AS_OF and core["rule_version"] == "2020-10-21"

        events = store.read("SELECT * FROM zone_events ORDER BY event_id")
        assert set(events["kind"]) == {"entered"} and len(events) == len(zones)
        assert set(events["rule_id"]) == {"nys-cai-2020"} and set(events["rule_version"]) == {"2020-10-21"}

        alerts = store.read("SELECT * FROM alerts")
        assert len(alerts) == 1  # one per red/orange core; its rings are part of the same action
        assert alerts.at[0, "severity"] == "critical" and alerts.at[0, "kind"] == "cluster_zone"
        assert alerts.at[0, "dedupe_key"] == f"cluster_zone:{core['zone_id']}:red:{AS_OF.isoformat()}"
        assert alerts.at[0, "area_id"] == "A1" and alerts.at[0, "rule_version"] == "2020-10-21"


def test_rerunning_the_same_day_changes_nothing(tmp_path, settings):
    with Store(tmp_path / "c.duckdb") as store:
        build_city(store, AS_OF, AS_OF)
        job.run(store, settings, AS_OF)
        before = snapshot(store)
        cases_before = store.scalar("SELECT total_cases FROM cluster_runs")
        again = job.run(store, settings, AS_OF)
        assert again["status"] == "unchanged"
        assert snapshot(store) == before

        # A late report on the same day replaces the day's results: still one run, no second alert. (It is
        # for the study period's last day: the scan ends 3 days before the analysis day.)
        ctx = ValidationContext(now=datetime(2027, 1, 1, tzinfo=timezone.utc), check_registries=False)
        late = BatchBuilder("late", "file")
        rec = {"case_id": "LATE1", "reported_date": (AS_OF - timedelta(days=3)).isoformat(), "lat": CENTRE_LAT,
               "lng": CENTRE_LNG, "status": "confirmed"}
        assert late.add("case", rec, b"late", ctx)
        store.write_batch(late.build()).result()
        redo = job.run(store, settings, AS_OF)
        assert redo["status"] == "computed" and redo["cases"] == cases_before + 1
        after = snapshot(store)
        assert len(after["cluster_runs"]) == 1
        assert after["alerts"] == before["alerts"]
        assert [e[1:4] for e in after["zone_events"]] == [e[1:4] for e in before["zone_events"]]


def test_after_a_restart_the_grid_is_read_back_not_spread_again(tmp_path, settings, monkeypatch):
    """The areas' shares of the grid are kept with the areas' version; a new process (the in-memory grid
    gone) reads them back, gets the very same grid, and the day's results are unchanged."""
    import geo.grid as grid_module
    from store import queries as q
    from store import queries_clusters as qc

    with Store(tmp_path / "c.duckdb") as store:
        build_city(store, AS_OF, AS_OF)
        job.run(store, settings, AS_OF)
        before = snapshot(store)
        spread = grid_module._grids[next(iter(grid_module._grids))]
        version = q.areas_version(store)
        kept = qc.stored_area_cell_shares(store, version, settings.clusters.resolution)
        assert len(kept) == len(spread.shares) and set(kept["area_id"]) == {"A1"}

        grid_module._grids.clear()  # a restart
        def no_spreading(*_a, **_k):
            raise AssertionError("the areas were spread onto the grid again")
        monkeypatch.setattr(grid_module, "areas_to_cell_population", no_spreading)
        assert job.run(store, settings, AS_OF)["status"] == "unchanged"
        read_back = grid_module._grids[next(iter(grid_module._grids))]
        pd.testing.assert_series_equal(read_back.population, spread.population, check_exact=True)
        pd.testing.assert_frame_equal(read_back.shares, spread.shares, check_exact=True)
        assert snapshot(store) == before

        # A new area is a new version: spread again (and kept for that version only).
        monkeypatch.undo()
        ctx = ValidationContext(now=datetime(2027, 1, 1, tzinfo=timezone.utc), check_registries=False)
        batch = BatchBuilder("areas", "file")
        assert batch.add("area", {"area_id": "A2", "name": "Square again", "kind": "community",
                                  "population": POPULATION, "geometry": _square()}, b"area2", ctx)
        store.write_batch(batch.build()).result()
        job.run(store, settings, AS_OF)
        assert q.areas_version(store) != version
        assert qc.stored_area_cell_shares(store, version, settings.clusters.resolution).empty
        assert set(qc.stored_area_cell_shares(store, q.areas_version(store), settings.clusters.resolution)
                   ["area_id"]) == {"A1", "A2"}


def test_zone_history_is_kept_and_lifted_at_the_review(tmp_path, settings):
    with Store(tmp_path / "c.duckdb") as store:
        build_city(store, AS_OF + timedelta(days=20), plant_until=AS_OF)
        first = job.run(store, settings, AS_OF)
        core_id = store.scalar("SELECT zone_id FROM zones WHERE role = 'core'")
        assert first["events"] >= 1 and core_id

        # Next day the zone is held (no new event; the cluster keeps its id if the scan still sees it).
        second = job.run(store, settings, AS_OF + timedelta(days=1))
        assert second["status"] == "computed"
        assert store.scalar("SELECT count(*) FROM zone_events WHERE as_of = ? AND zone_id = ?",
                            [AS_OF + timedelta(days=1), core_id]) == 0
        again = store.read("SELECT cluster_id FROM detected_clusters WHERE as_of = ? AND significant",
                           [AS_OF + timedelta(days=1)])["cluster_id"].tolist()
        assert not again or again[0] == core_id.split(":")[0]

        # Fourteen days after entry the cluster has died out: the review lifts every zone, by the same rule.
        review_day = AS_OF + timedelta(days=14)
        third = job.run(store, settings, review_day)
        assert third["status"] == "computed" and third["zones_in_force"] == 0
        lifted = store.read("SELECT * FROM zone_events WHERE as_of = ? ORDER BY event_id", [review_day])
        assert set(lifted["kind"]) == {"lifted"} and core_id in set(lifted["zone_id"])
        assert set(lifted["rule_id"]) == {"nys-cai-2020"} and set(lifted["rule_version"]) == {"2020-10-21"}
        assert lifted["tier"].isna().all() and set(lifted["previous_tier"]) == {"red", "orange", "yellow"}
        core = store.read("SELECT * FROM zones WHERE zone_id = ?", [core_id]).iloc[0]
        assert core["lifted_on"].date() == review_day and core["entered_on"].date() == AS_OF

        # The history of the core zone reads back in order: entered, then lifted.
        history = place_history(store, settings, system_principal(), "zone", core_id, review_day, 14)
        assert list(history.events["kind"]) == ["entered", "lifted"]
        assert history.daily["cases"].fillna(0).sum() > 0 and not history.tests_estimated

        # An earlier day cannot be decided again once a later one has been.
        assert job.run(store, settings, AS_OF)["status"] == "skipped"


def test_without_tests_per_cell_the_permutation_scan_drives_the_zones_and_says_why(tmp_path, settings):
    with Store(tmp_path / "c.duckdb") as store:
        build_city(store, AS_OF, AS_OF)
        store.submit(lambda con: con.execute("DELETE FROM tests")).result()
        ctx = ValidationContext(now=datetime(2027, 1, 1, tzinfo=timezone.utc), check_registries=False)
        batch = BatchBuilder("area-tests", "file")
        assert batch.add("test", {"test_date": (AS_OF - timedelta(days=5)).isoformat(), "area_id": "A1",
                                  "tested": 900, "positive": 30},
                         b"t", ctx)
        store.write_batch(batch.build()).result()
        summary = job.run(store, settings, AS_OF)
        assert summary["method"] == "permutation" and summary["methods"] == ["permutation"]
        run = store.read("SELECT * FROM cluster_runs").iloc[0]
        assert run["method"] == "permutation" and run["methods_run"] == "permutation"
        assert run["method_note"].startswith("tests-adjusted scan not run (0% of the study period's tests")
        assert set(store.read("SELECT method FROM detected_clusters")["method"]) == {"permutation"}
        assert summary["significant"] >= 1  # the planted cluster is found all the same


def test_a_city_without_cases_is_not_an_error(tmp_path, settings):
    with Store(tmp_path / "c.duckdb") as store:
        assert job.run(store, settings, AS_OF) == {"status": "no cases"}
        assert store.scalar("SELECT count(*) FROM cluster_runs") == 0


def test_carry_over_ids_prefers_the_largest_overlap_and_uses_each_id_once():
    known = (("A", frozenset({"x", "y"})), ("B", frozenset({"y", "z", "w"})))
    ids = job.carry_over_ids([frozenset({"y", "z"}), frozenset({"x"}), frozenset({"q"})], known,
                             iter(["N1", "N2", "N3"]))
    assert ids == ["B", "A", "N1"]


def test_area_level_tests_are_spread_by_population_share(tmp_path, settings):
    """Tests reported per area reach the cells as estimates that sum back to the area's totals."""
    from services.clusters import grid_of
    from store import queries_clusters as qc
    ctx = ValidationContext(now=datetime(2027, 1, 1, tzinfo=timezone.utc), check_registries=False)
    with Store(tmp_path / "c.duckdb") as store:
        batch = BatchBuilder("t", "file")
        assert batch.add("area", {"area_id": "A1", "name": "Square", "kind": "community", "population": POPULATION,
                                  "geometry": _square()}, b"a", ctx)
        assert batch.add("test", {"test_date": AS_OF.isoformat(), "area_id": "A1", "tested": 400, "positive": 12},
                         b"t", ctx)
        store.write_batch(batch.build()).result()
        grid = grid_of(store, 9)
        assert grid.population.sum() == pytest.approx(POPULATION)
        tests, estimated = spread_tests_to_grid(qc.test_counts_by_unit_day(store, AS_OF, AS_OF), grid)
        assert estimated and tests["tested"].sum() == pytest.approx(400)
        assert tests["positive"].sum() == pytest.approx(12)
        assert isinstance(tests, pd.DataFrame) and len(tests) == len(grid.population)
