"""The indicators and early-warning jobs and the rulebook switch on a small synthetic city in a real DuckDB store.

The city has two square community areas, one hospital, steady Poisson case counts with tests and
admissions, fever kiosks and a wastewater site. A spike of cases is planted on the last day in one area:
the jobs must level every area, raise EARS alarms there and one alert (a rerun changes nothing), and
switching the rulebook must re-level the same data and store the change with the rulebook's id and version.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pytest

from auth.principal import PERMISSIONS, NotPermitted, Principal
from ingest.batch import BatchBuilder
from ingest.context import ContextProvider
from ingest.records import ValidationContext
from jobs import early_warning as job
from jobs import indicators as indicators_job
from services import early_warning as ew
from services.rulebooks import UnknownRulebook, current_rulebook, set_active_rulebook
from store import Store
from store import queries_indicators as qi
from store import queries_warning as qw
from tests.conftest import ROOT

AS_OF = date(2025, 6, 30)
DAYS = 70
# Two areas side by side near Putrajaya (lng, lat); each 0.02 degrees (~2.2 km) square.
AREAS = {"A1": ("Taman Barat", 101.66, 50_000), "A2": ("Taman Timur", 101.68, 60_000)}
SOUTH_LAT = 2.92
SPIKE_AREA, SPIKE_CASES = "A1", 90
OPERATOR = Principal("operator", "operator", frozenset(PERMISSIONS))
VIEWER = Principal("viewer", "viewer", frozenset(PERMISSIONS) - {"set_rulebook"})
CTX = ValidationContext(now=datetime(2025, 7, 1, tzinfo=timezone.utc), check_registries=False)


def square(west: float) -> dict:
    east, north = west + 0.02, SOUTH_LAT + 0.02
    return {"type": "Polygon", "coordinates": [[[west, SOUTH_LAT], [east, SOUTH_LAT], [east, north],
                                                 [west, north], [west, SOUTH_LAT]]]}


def add_all(store: Store, kind: str, records: list[dict], ctx: ValidationContext) -> None:
    builder = BatchBuilder(f"synthetic-{kind}", "file")
    for record in records:
        assert builder.add(kind, record, repr(record).encode(), ctx), record
    result = store.write_batch(builder.build()).result()
    assert result.rejected == 0


def build_city(store: Store, settings, spike: bool = True) -> None:
    """Registries, then 70 days of cases, tests, admissions, capacity and sensor readings ending AS_OF."""
    rng = np.random.default_rng(5)
    add_all(store, "area", [{"area_id": a, "name": n, "kind": "community", "population": pop, "geometry": square(w)}
                            for a, (n, w, pop) in AREAS.items()], CTX)
    add_all(store, "facility", [{"facility_id": "H1", "name": "Hospital", "kind": "hospital", "lat": 2.93,
                                 "lng": 101.675, "beds": 300, "icu_beds": 30}], CTX)
    sensors = [{"sensor_id": f"FK-{a}", "kind": "fever_kiosk", "lat": 2.93, "lng": w + 0.01}
               for a, (_, w, _) in AREAS.items()]
    sensors.append({"sensor_id": "WW-1", "kind": "wastewater", "lat": 2.925, "lng": 101.67})
    add_all(store, "sensor", sensors, CTX)
    ctx = ContextProvider(store, settings).get()  # now with the areas' point locator

    cases, tests, admissions, capacity, readings = [], [], [], [], []
    tz = timezone(timedelta(hours=8))
    for offset in range(DAYS):
        day = AS_OF - timedelta(days=DAYS - 1 - offset)
        for area_id, (_, west, _) in AREAS.items():
            n = int(rng.poisson(12 if area_id == "A1" else 9))
            if spike and area_id == SPIKE_AREA and day == AS_OF:
                n = SPIKE_CASES
            for i in range(n):
                cases.append({"case_id": f"{area_id}-{day:%m%d}-{i}", "reported_date": day.isoformat(),
                              "lat": SOUTH_LAT + 0.002 + 0.016 * rng.random(), "lng": west + 0.002 + 0.016 * rng.random(),
                              "status": "confirmed"})
            tested = int(rng.poisson(200))
            tests.append({"test_date": day.isoformat(), "area_id": area_id, "tested": tested,
                          "positive": min(tested, n + int(rng.poisson(2)))})
        for j in range(int(rng.poisson(2))):
            admissions.append({"admission_id": f"ADM-{day:%m%d}-{j}", "facility_id": "H1",
                               "admitted_on": day.isoformat(), "icu": j == 0 and offset % 3 == 0})
        capacity.append({"facility_id": "H1", "reported_at": datetime.combine(day, time(8), tz).isoformat(),
                         "beds_total": 300, "beds_occupied": 200 + offset % 7, "icu_total": 30,
                         "icu_occupied": 18, "covid_patients": 20})
        for k, area_id in enumerate(AREAS):
            readings.append({"sensor_id": f"FK-{area_id}", "seq": offset, "metric": "fever_alerts",
                             "ts": datetime.combine(day, time(12), tz).isoformat(), "value": float(rng.poisson(4))})
        readings.append({"sensor_id": "WW-1", "seq": offset, "metric": "sars_cov_2_rna",
                         "ts": datetime.combine(day, time(6), tz).isoformat(),
                         "value": float(np.round(2.0e5 * rng.lognormal(0, 0.1)))})
    for kind, records in (("case", cases), ("test", tests), ("admission", admissions), ("capacity", capacity),
                          ("reading", readings)):
        add_all(store, kind, records, ctx)


@pytest.fixture
def city(settings_factory, tmp_path):
    settings = settings_factory(early_warning={
        "rulebooks": [str(ROOT / "rulebooks" / f"{r}.yaml")
                      for r in ("harvard_ghi", "covid_act_now", "cdc_community_levels_2022", "custom")],
        "active_rulebook": "harvard_ghi"})
    store = Store(tmp_path / "ew.duckdb")
    build_city(store, settings)
    yield store, settings
    store.close()


def counts(store: Store) -> dict[str, int]:
    return {t: int(store.scalar(f"SELECT count(*) FROM {t}")) for t in (
        "alerts", "ew_alarms", "ew_level_changes", "ew_area_levels", "indicator_values", "rt_estimates",
        "ew_forecast_runs", "ew_forecast_bands", "capacity_outlook", "capacity_bands", "ew_rulebook_choices")}


def run_jobs(store: Store, settings, day: date, force: bool = False) -> tuple[dict, dict]:
    """The indicators job, then the early-warning job, as the scheduler runs them; ``force`` reruns on
    unchanged inputs (it forgets the previous runs' fingerprints)."""
    if force:
        store.write("DELETE FROM job_runs")
    return indicators_job.run(store, settings, day), job.run(store, settings, day)


def test_job_raises_an_ears_alarm_on_the_planted_spike_and_one_alert(city):
    store, settings = city
    levelled, summary = run_jobs(store, settings, AS_OF)
    assert summary["as_of"] == AS_OF.isoformat() and levelled["as_of"] == AS_OF.isoformat()
    assert summary["areas"] == 3 and levelled["areas"] == 3  # two areas and the city

    alarms = qw.active_alarms(store)
    spike = alarms[(alarms["series"] == "cases") & (alarms["area_id"] == SPIKE_AREA)]
    assert {"C1", "C2"} <= set(spike["method"])
    assert (spike["started_on"].dt.date == AS_OF).all()
    assert (spike["observed"] == SPIKE_CASES).all() and (spike["upperbound"] < SPIKE_CASES).all()
    assert not ((alarms["series"] == "cases") & (alarms["area_id"] == "A2")).any()

    alerts = qw.alerts_of_kind(store, job.ALERT_KIND_ABERRATION)
    mine = alerts[alerts["dedupe_key"] == f"ew:aberration:cases:{SPIKE_AREA}:{AS_OF.isoformat()}"]
    assert len(mine) == 1
    assert mine.iloc[0]["status"] == "active" and mine.iloc[0]["area_id"] == SPIKE_AREA
    assert "C1" in mine.iloc[0]["detail"] and mine.iloc[0]["rule_id"] == job.ABERRATION_RULE_ID

    # Levels for every area under the default rulebook, recorded once as the initial level.
    levels = qw.area_levels(store).set_index("area_id")
    assert set(levels.index) == {"A1", "A2", "citywide"}
    assert (levels["rulebook_id"] == "harvard_ghi").all() and (levels["rulebook_version"] == "2020-07-01").all()
    changes = qw.level_changes(store)
    assert set(changes["direction"]) == {"initial"} and len(changes) == 3

    # Rerunning the same day on the same inputs does not even run; forced, it changes nothing.
    before = counts(store)
    indicators_before = qi.indicator_values(store, AS_OF)
    assert [r["status"] for r in run_jobs(store, settings, AS_OF)] == ["unchanged", "unchanged"]
    levelled, again = run_jobs(store, settings, AS_OF, force=True)
    assert again["alerts_raised"] == 0 and levelled["level_changes"] == 0
    assert counts(store) == before
    assert qi.indicator_values(store, AS_OF).equals(indicators_before)
    assert qw.alerts_of_kind(store, job.ALERT_KIND_ABERRATION)["status"].tolist() == alerts["status"].tolist()


def test_indicators_and_forecast_are_stored(city):
    store, settings = city
    run_jobs(store, settings, AS_OF)
    values = qi.indicator_table(store, AS_OF)
    a2 = values["A2"]
    # A2 has about 9 cases a day among 60,000 people: ~15 per 100k per day.
    assert 10 < a2["cases_per_100k_7d_avg"] < 20
    assert 0.02 < a2["test_positivity_7d"] < 0.1
    assert a2["bed_occupancy"] == pytest.approx((200 + (DAYS - 1) % 7) / 300)
    assert 0.6 < values["citywide"]["rt"] < 2.0
    assert values["A1"]["sensor_week_ratio"] == pytest.approx(values["A1"]["sensor_week_ratio"])  # finite
    run = qw.latest_forecast_run(store, "citywide")
    assert run["horizon_days"] == settings.early_warning.forecast_days and run["r_mean"] > 0
    # The forecast starts from the R(t) every screen shows: the stored estimate of the as-of day.
    assert run["r_mean"] == pytest.approx(values["citywide"]["rt"])
    outlook = qi.capacity_outlook(store, AS_OF, scope="city").set_index("resource")
    assert outlook.at["beds", "capacity"] == 300 and bool(outlook.at["beds", "projected"])
    assert set(qi.capacity_outlook(store, AS_OF, scope="facility")["scope_id"]) == {"H1"}
    bands = qw.forecast_bands(store, run["as_of"], "citywide")
    assert set(bands["series"]) == {"cases", "admissions"}
    beds = qi.capacity_bands(store, AS_OF, "city", "citywide", "beds")
    for band in (bands, beds):
        assert (band["q05"] <= band["median"]).all() and (band["median"] <= band["q95"]).all()
        assert band["day"].min().date() == AS_OF + timedelta(days=1)
    # One hospital: it takes the whole city's change, so its projection is the city's.
    hospital = qi.capacity_bands(store, AS_OF, "facility", "H1", "beds")
    assert hospital["median"].to_numpy() == pytest.approx(beds["median"].to_numpy())


def test_alarm_and_alert_resolve_when_the_spike_is_over(city):
    store, settings = city
    run_jobs(store, settings, AS_OF)
    # Ordinary days follow. surveillance's C3 alarms on the two days after a spike (its bound uses the two
    # previous C2 statistics), so the episode ends QUIET_DAYS_TO_RESOLVE days after those.
    ctx = ContextProvider(store, settings).get()
    later = []
    quiet_from = 2 + job.QUIET_DAYS_TO_RESOLVE
    for k in range(1, quiet_from + 1):
        day = AS_OF + timedelta(days=k)
        later += [{"case_id": f"L-{k}-{i}", "reported_date": day.isoformat(), "lat": 2.93, "lng": 101.67,
                   "status": "confirmed"} for i in range(12)]
    add_all(store, "case", later, ctx)
    run_jobs(store, settings, AS_OF + timedelta(days=quiet_from - 1))
    assert qw.alerts_of_kind(store, job.ALERT_KIND_ABERRATION).query("area_id == @SPIKE_AREA")["status"].eq(
        "active").any()  # one day short of the quiet days: still open
    run_jobs(store, settings, AS_OF + timedelta(days=quiet_from))
    alerts = qw.alerts_of_kind(store, job.ALERT_KIND_ABERRATION)
    mine = alerts[alerts["dedupe_key"] == f"ew:aberration:cases:{SPIKE_AREA}:{AS_OF.isoformat()}"]
    assert mine.iloc[0]["status"] == "resolved"
    resolved = store.read("SELECT * FROM ew_alarms WHERE series = 'cases' AND area_id = ?", [SPIKE_AREA])
    assert (resolved["status"] == "resolved").all()


def test_switching_the_rulebook_relevels_the_same_data_and_records_it(city):
    store, settings = city
    run_jobs(store, settings, AS_OF)
    harvard = qw.area_levels(store).set_index("area_id")
    assert harvard.at["A2", "level"] == "orange"  # 10-24 daily cases per 100k

    switch = set_active_rulebook(store, settings, "custom", OPERATOR)
    assert switch.changed and (switch.previous_id, switch.rulebook_id) == ("harvard_ghi", "custom")
    assert switch.level_changes == 3
    custom = qw.area_levels(store).set_index("area_id")
    assert (custom["rulebook_id"] == "custom").all() and (custom["rulebook_version"] == "0.1").all()
    assert custom.at["A2", "level"] == "warning"  # same data, custom thresholds 5/15/30 per 100k per day
    assert current_rulebook(store, settings).id == "custom"

    changes = qw.level_changes(store)
    switched = changes[changes["cause"] == "rulebook_switch"].set_index("area_id")
    assert len(switched) == 3 and (switched["direction"] == "switch").all()
    assert switched.at["A2", "from_level"] == "orange" and switched.at["A2", "from_rulebook_id"] == "harvard_ghi"
    assert switched.at["A2", "to_level"] == "warning"
    assert (switched["rulebook_id"] == "custom").all() and (switched["rulebook_version"] == "0.1").all()
    assert (switched["choice_id"] == switch.choice_id).all()
    choice = qw.latest_rulebook_choice(store)
    assert (choice["rulebook_id"], choice["rulebook_version"], choice["chosen_by"]) == ("custom", "0.1", "operator")

    # The jobs keep the operator's choice (persisted; the config default is only the default) and record
    # nothing new on the same data; choosing the active rulebook again stores nothing.
    before = counts(store)
    levelled, _ = run_jobs(store, settings, AS_OF)
    assert levelled["status"] == "computed" and levelled["level_changes"] == 0  # the rulebook is an input
    assert qw.area_levels(store).set_index("area_id").at["A2", "level"] == "warning"
    assert set_active_rulebook(store, settings, "custom", OPERATOR).changed is False
    assert counts(store) == before


def test_switching_needs_the_set_rulebook_permission(city):
    store, settings = city
    run_jobs(store, settings, AS_OF)
    with pytest.raises(NotPermitted):
        set_active_rulebook(store, settings, "covid_act_now", VIEWER)
    assert qw.latest_rulebook_choice(store) is None
    assert current_rulebook(store, settings).id == "harvard_ghi"
    with pytest.raises(UnknownRulebook):
        set_active_rulebook(store, settings, "zones_nys_cai_2020", OPERATOR)


def test_every_shipped_rulebook_levels_the_city(city):
    store, settings = city
    run_jobs(store, settings, AS_OF)
    seen = {}
    for rulebook_id in ("covid_act_now", "cdc_community_levels_2022", "custom", "harvard_ghi"):
        set_active_rulebook(store, settings, rulebook_id, OPERATOR)
        levels = qw.area_levels(store).set_index("area_id")
        seen[rulebook_id] = levels.at["citywide", "level"]
        assert levels.at["citywide", "rulebook_id"] == rulebook_id
    assert all(seen.values()), seen  # every rulebook could assess the city from the stored indicators
    assert int(store.scalar("SELECT count(*) FROM ew_rulebook_choices")) == 4


def test_jobs_on_an_empty_store_do_nothing(settings_factory, tmp_path):
    settings = settings_factory()
    with Store(tmp_path / "empty.duckdb") as store:
        levelled, warned = run_jobs(store, settings, AS_OF)
        assert levelled["status"] == "no data" and warned["status"] == "skipped"
        assert int(store.scalar("SELECT count(*) FROM indicator_values")) == 0


def test_open_episode_joins_alarms_with_short_gaps():
    flags = np.array([0, 1, 0, 0, 0, 1, 0, 1, 1, 0], dtype=bool)
    assert job.open_episode(flags, quiet_days=3) == (5, 8)
    assert job.open_episode(np.array([1, 0, 0, 0], dtype=bool), quiet_days=3) is None
    assert job.open_episode(np.zeros(5, dtype=bool)) is None


def test_page_view_before_and_after_the_jobs(city, settings_factory, tmp_path):
    from components.gauges import aligned_view_figure, capacity_tile, gauge_cards, rt_figure

    store, settings = city
    before = ew.page_view(store, settings, "A1", OPERATOR)
    # Nothing stored yet: no gauges, no capacity outlook, no errors.
    assert before.as_of is None and before.gauges == () and before.capacity is None
    gauge_cards(before.gauges)
    capacity_tile(before.capacity, 21)

    run_jobs(store, settings, AS_OF)
    view = ew.page_view(store, settings, "A1", OPERATOR)
    assert view.area_name == "Taman Barat" and view.as_of == AS_OF
    stored = qw.area_levels(store).set_index("area_id")
    assert view.level["level"] == stored.at["A1", "level"]
    first = view.gauges[0]
    assert first.indicator == "cases_per_100k_7d_avg" and first.in_rulebook
    assert [m.value for m in first.thresholds] == [1.0, 10.0, 25.0] and first.colour == stored.at["A1", "colour"]
    assert first.value == pytest.approx(qi.indicator_table(store, AS_OF)["A1"]["cases_per_100k_7d_avg"])
    assert {"cases", "admissions", "beds_occupied"} <= set(view.bands["series"])
    rt = view.rt.dropna(subset=["mean"])  # NaN before the data start (and for windows with too few cases)
    assert len(rt) and (rt["q025"] <= rt["mean"]).all() and (rt["mean"] <= rt["q975"]).all()
    assert view.alarms["area_id"].eq(SPIKE_AREA).any()
    fig = aligned_view_figure(view.timeline, view.bands, view.min_count, 0.9, view.as_of)
    assert len(fig["data"]) > 8
    rt_figure(view.rt)
    tile = str(capacity_tile(view.capacity, 21))
    assert "days until 90%" in tile and "data-indicator" in tile and "days_to_bed_threshold" in tile
    # An unknown area falls back to the city; an empty store gives the empty state.
    assert ew.page_view(store, settings, "nowhere", OPERATOR).area_id == "citywide"
    with Store(tmp_path / "empty.duckdb") as empty:
        assert ew.page_view(empty, settings, "citywide", OPERATOR).as_of is None


def _stored_results(store) -> dict:
    """Everything the early-warning job stored per area (computed_at aside: it is the run's time)."""
    return {
        "runs": store.read("SELECT * EXCLUDE (computed_at) FROM ew_forecast_runs ORDER BY as_of, area_id"),
        "bands": store.read("SELECT * FROM ew_forecast_bands ORDER BY area_id, series, day"),
        "skill": store.read("SELECT * FROM ew_forecast_skill ORDER BY area_id, method, horizon"),
        "alarms": store.read("SELECT * EXCLUDE (alarm_id, updated_at) FROM ew_alarms "
                             "ORDER BY series, area_id, method, started_on"),
        "series": store.read("SELECT * FROM ew_series_alarms ORDER BY series, area_id"),
        "alerts": store.read("SELECT dedupe_key, title, detail, status FROM alerts WHERE kind = 'aberration' "
                             "ORDER BY dedupe_key"),
        "outlook": store.read("SELECT * FROM capacity_outlook ORDER BY as_of, scope, scope_id, resource"),
    }


def test_a_new_case_in_one_area_recomputes_that_area_and_the_city_only(city, monkeypatch):
    """Per-area forecasts and detectors are remembered by a digest of their inputs (jobs.memo), and stored
    with it (jobs.ew_reuse): after one area's new case the rerun computes that area and the city again;
    after a restart (memory forgotten, same database) only the city; and what is stored equals what
    computing every area afresh gives."""
    from bounded_cache import BoundedCache
    from jobs import memo

    store, settings = city
    run_jobs(store, settings, AS_OF)
    ctx = ContextProvider(store, settings).get()
    west = AREAS["A2"][1]
    add_all(store, "case", [{"case_id": "A2-late", "reported_date": AS_OF.isoformat(), "status": "confirmed",
                             "lat": SOUTH_LAT + 0.01, "lng": west + 0.01}], ctx)
    computed: list[str] = []
    detected: list[str] = []
    original, original_detectors = job.forecast_area, job.detector_results

    def counting(data, area_id, *args, **kwargs):
        computed.append(area_id)
        return original(data, area_id, *args, **kwargs)

    def counting_detectors(series, min_sigma):
        detected.append(str(series.name))
        return original_detectors(series, min_sigma)
    monkeypatch.setattr(job, "forecast_area", counting)
    monkeypatch.setattr(job, "detector_results", counting_detectors)
    _, summary = run_jobs(store, settings, AS_OF)
    assert summary["status"] == "computed" and sorted(computed) == ["A2", "citywide"]
    # A2's cases changed (and so the city's); the other series' detectors answered from memory.
    assert sorted(detected) == ["cases", "cases"]
    remembered = _stored_results(store)
    assert remembered["runs"]["input_digest"].notna().all() and len(remembered["series"])

    # A restart: a new process remembers nothing, the database holds the results with their digests.
    monkeypatch.setattr(memo, "_results", BoundedCache(memo.MAX_ENTRIES))
    computed.clear()
    detected.clear()
    _, summary = run_jobs(store, settings, AS_OF, force=True)
    assert summary["status"] == "computed" and computed == ["citywide"] and detected == []
    restarted = _stored_results(store)
    for table, frame in remembered.items():
        assert frame.equals(restarted[table]), table

    # Forget the stored digests too: every area and series computed afresh gives the same results.
    monkeypatch.setattr(memo, "_results", BoundedCache(memo.MAX_ENTRIES))
    store.write("UPDATE ew_forecast_runs SET input_digest = NULL")
    store.write("DELETE FROM ew_series_alarms")
    computed.clear()
    detected.clear()
    run_jobs(store, settings, AS_OF, force=True)
    assert sorted(computed) == sorted(["citywide", *AREAS]) and len(detected) == len(remembered["series"])
    fresh = _stored_results(store)
    for table, frame in remembered.items():
        assert frame.equals(fresh[table]), table
