"""Capacity reports by CSV, MQTT and FHIR SANER land in the same table; validation quarantines with
reason codes; supplies on hand, stale reports, potential sites and the bed projection, as the jobs store
them and the read model shows them."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from ingest.batch import BatchBuilder
from ingest.context import ContextProvider
from ingest.files import FileIngestor
from ingest.mqtt import MessageBatch
from ingest.topics import TopicLayout
from analytics.capacity import days_on_hand
from auth.principal import principal_for
from jobs import early_warning, indicators
from services.capacity import area_demand, capacity_view, facility_trend, potential_site_rows, sort_facilities
from services.supplies import supply_rows
from settings import ConfigError, Settings, parse_settings
from store import Store
from store import queries_indicators as qi
from tests.conftest import shared_data
from tests.mqtt_helpers import *  # noqa: F401,F403  (fixtures: mosquitto, city_store, settings)
from tests.mqtt_helpers import LAYOUT, capacity, encode, publisher, start_ingestor, wait_for

# Late on yesterday's date, not the wall clock: the reports below are a few hours old and must fall on
# NOW's day whatever time the suite runs (at 01:00 UTC "2 hours ago" is the day before), and NOW must
# not be in the future for the ingest's clock-skew check.
NOW = datetime.combine(datetime.now(timezone.utc).date() - timedelta(days=1), time(22, 0), tzinfo=timezone.utc)
PREFIX = "pheoc/capacity-test"
# The data manager sees counts at case level: these tests are about the arithmetic, not suppression.
MANAGER = principal_for("dm", "data_manager")
CITYWIDE = "citywide"


def ts(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def cap_settings(**capacity) -> Settings:
    """A test city without a boundary file; ``capacity`` overrides CapacityConfig fields.

    R is held fixed in the projection (no relaxation towards 1) so that steady growth reliably fills
    the beds within the horizon: these tests are about the capacity arithmetic, not the R model.
    """
    return Settings.model_validate({"city": {"name": "Capville", "slug": "capville", "timezone": "UTC"},
                                    "mqtt": {"topic_prefix": PREFIX}, "capacity": capacity,
                                    "early_warning": {"forecast_r_relax_days": None}})


def compute(store: Store, settings: Settings) -> None:
    """The indicators and early-warning jobs, as the scheduler runs them, for today."""
    store.write("DELETE FROM job_runs")  # a changed setting (not a new record) must still recompute
    assert indicators.run(store, settings, NOW.date(), now=NOW)["status"] == "computed"
    early_warning.run(store, settings, NOW.date(), now=NOW)




SQUARE = {"type": "Polygon", "coordinates": [[[101.6, 2.8], [101.8, 2.8], [101.8, 3.0], [101.6, 3.0], [101.6, 2.8]]]}
FACILITIES_CSV = """facility_id,name,kind,owner,lat,lng,beds,icu_beds
H1,General Hospital,hospital,MOH,2.90,101.65,400,30
H2,East Medical,hospital,MOH,2.92,101.75,250,20
Q1,Quarantine Centre,quarantine_centre,MOH,2.85,101.70,300,
S1,City Stadium,potential_site,City,2.95,101.70,800,
"""


@pytest.fixture
def capville(tmp_path):
    settings = cap_settings()
    store = Store(tmp_path / "pheoc.duckdb")
    contexts = ContextProvider(store, settings)
    files = FileIngestor(store, contexts)
    (tmp_path / "boundary.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"area_id": "city", "name": "Capville"}, "geometry": SQUARE}]}))
    assert files.ingest_file(tmp_path / "boundary.geojson").error is None
    (tmp_path / "facilities.csv").write_text(FACILITIES_CSV)
    assert files.ingest_file(tmp_path / "facilities.csv").result.accepted == 4
    yield settings, store, contexts, files, tmp_path
    store.close()


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(text)
    return path


# ---- one table, three doors -----------------------------------------------------------------------
def test_csv_mqtt_and_saner_reports_land_in_capacity_reports(capville):
    settings, store, contexts, files, folder = capville
    csv = ("facility_id,reported_at,beds_total,beds_occupied,icu_total,icu_occupied,ventilators_total,"
           "ventilators_in_use,staff_on_duty,covid_patients\n"
           f"H1,{ts(3)},400,310,30,22,20,11,180,64\n")
    assert files.ingest_file(write(folder, "capacity-today.csv", csv)).result.accepted == 1

    batch = MessageBatch("mqtt:test", TopicLayout(PREFIX), contexts.get(), settings.ingest.max_payload_bytes)
    batch.add_message(f"{PREFIX}/capacity/H2", json.dumps(
        {"reported_at": ts(2), "beds_total": 250, "beds_occupied": 200, "covid_patients": 40}).encode())
    batch.add_message(f"{PREFIX}/capacity/H2", json.dumps(  # a payload naming another facility: refused
        {"facility_id": "H1", "reported_at": ts(1), "beds_total": 250, "beds_occupied": 200}).encode())
    result = store.write_batch(batch.build()).result()
    assert (result.accepted, result.rejected) == (1, 1)

    # SANER: a Location registered as facility Q-SANER with its report, in one Bundle.
    location = json.loads(shared_data("hl7-fhir-saner", "examples", "Location-Loc-X410011.json").read_text())
    location.update(id="Q-SANER", position={"latitude": 2.88, "longitude": 101.62})
    report = json.loads(shared_data("hl7-fhir-saner", "examples", "MeasureReport-FHIR-102.json").read_text())
    report["subject"]["reference"] = "Location/Q-SANER"
    report["date"] = ts(1)
    fhir = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": location}, {"resource": report}]}
    assert files.ingest_file(write(folder, "saner.json", json.dumps(fhir))).result.accepted == 2

    rows = store.read("SELECT facility_id, source, beds_total, beds_occupied, covid_patients FROM capacity_reports "
                      "ORDER BY facility_id")
    assert list(rows["facility_id"]) == ["H1", "H2", "Q-SANER"]
    assert list(rows["beds_occupied"]) == [310, 200, 10]
    assert [s.split(":")[0] for s in rows["source"]] == ["file", "mqtt", "file"]
    assert store.scalar("SELECT reason_code FROM quarantine") == "topic_mismatch"
    # ... and all three show on the page's read model, once the indicators job has counted them
    compute(store, settings)
    view = capacity_view(store, settings, MANAGER, NOW)
    assert set(view.facilities.dropna(subset=["beds_total"])["facility_id"]) == {"H1", "H2", "Q-SANER"}


@pytest.mark.mqtt
@pytest.mark.slow
def test_capacity_over_a_real_broker_lands_in_the_same_table(mosquitto, city_store, settings):
    store, contexts = city_store
    ingestor = start_ingestor(store, contexts, settings, mosquitto)
    try:
        with publisher(mosquitto, client_id="capacity-test-pub") as pub:
            pub.publish(LAYOUT.capacity("hosp-1"), encode(capacity(None, 5, total=400, occupied=300)))
            pub.publish(LAYOUT.capacity("hosp-2"), encode(capacity(None, 5, total=100, occupied=150)))
        wait_for(lambda: store.scalar("SELECT count(*) FROM capacity_reports") == 1
                 and store.scalar("SELECT count(*) FROM quarantine") == 1, message="capacity report and reject")
    finally:
        ingestor.stop()
    assert store.scalar("SELECT beds_occupied FROM capacity_reports WHERE facility_id = 'hosp-1'") == 300
    assert store.scalar("SELECT reason_code FROM quarantine") == "occupied_exceeds_total"


# ---- validation -------------------------------------------------------------------------------------
INVALID = [
    # (csv row after facility_id,reported_at, reason code)
    ("400,401,,,,,", "occupied_exceeds_total"),
    ("400,-1,,,,,", "negative_count"),
    ("400,300,30,31,,,", "occupied_exceeds_total"),
    ("400,300,,,20,21,", "occupied_exceeds_total"),
    ("20,10,30,5,,,", "subtotal_exceeds_total"),
    ("400,300,,,,,301", "subtotal_exceeds_total"),
    ("400,,,,,,", "missing_field"),
    ("400,300.5,,,,,", "wrong_type"),
]


def test_invalid_reports_are_quarantined_with_reason_codes(capville):
    settings, store, contexts, files, folder = capville
    header = ("facility_id,reported_at,beds_total,beds_occupied,icu_total,icu_occupied,ventilators_total,"
              "ventilators_in_use,covid_patients\n")
    lines = [f"H1,{ts(i + 1)},{values}" for i, (values, _) in enumerate(INVALID)]
    lines.append(f"NOPE,{ts(1)},400,300,,,,,")
    lines.append(f"H2,{(NOW + timedelta(days=3)).isoformat()},400,300,,,,,")
    lines.append(f"H2,{(NOW - timedelta(hours=1)).replace(tzinfo=None).isoformat()},400,300,,,,,")
    lines.append(f"H2,{ts(1)},400,300,,,,,")  # the one valid row
    result = files.ingest_file(write(folder, "capacity-mixed.csv", header + "\n".join(lines) + "\n")).result
    assert (result.accepted, result.rejected) == (1, len(lines) - 1)
    reasons = list(store.read("SELECT reason_code FROM quarantine ORDER BY quarantine_id")["reason_code"])
    assert reasons == [code for _, code in INVALID] + ["unknown_facility", "future_timestamp",
                                                      "timestamp_without_timezone"]


# ---- the read model -----------------------------------------------------------------------------
def _report(store, contexts, facility_id, hours_ago, total, occupied, covid=None, **extra):
    rec = {"facility_id": facility_id, "reported_at": ts(hours_ago), "beds_total": total, "beds_occupied": occupied,
           **({"covid_patients": covid} if covid is not None else {}), **extra}
    b = BatchBuilder("test", "file")
    assert b.add("capacity", rec, json.dumps(rec).encode(), contexts.get()), rec
    store.write_batch(b.build()).result()


def test_stale_reports_are_flagged_against_the_configured_age(capville):
    settings, store, contexts, files, folder = capville
    _report(store, contexts, "H1", 2, 400, 300, icu_total=30, icu_occupied=29)
    _report(store, contexts, "H2", 30, 250, 100)
    compute(store, settings)
    rows = capacity_view(store, settings, MANAGER, NOW).facilities.set_index("facility_id")
    assert not rows.loc["H1", "stale"] and rows.loc["H2", "stale"]
    assert rows.loc["Q1", "stale"] and np.isnan(rows.loc["Q1", "report_age_h"])  # never reported
    assert "S1" not in rows.index  # potential sites have no occupancy to report
    assert rows.loc["H1", "occupancy"] == pytest.approx(0.75) and rows.loc["H1", "free_beds"] == 100
    assert rows.loc["H1", "status"] == "warn" and rows.loc["H1", "icu_free"] == 1
    assert rows.loc["H2", "report_age_h"] == pytest.approx(30, abs=0.01)
    view = capacity_view(store, settings, MANAGER, NOW)
    stale_tile = next(t for t in view.tiles if t.figure.key == "facilities_stale")
    assert (stale_tile.figure.display, stale_tile.status) == ("2", "bad")
    # Hospital totals count only current reports: H2's 30-hour-old report is not today's capacity.
    beds_tile = next(t for t in view.tiles if t.figure.key == "bed_occupancy")
    assert beds_tile.detail == "300 of 400 beds" and beds_tile.figure.value == pytest.approx(0.75)
    relaxed = cap_settings(stale_after_hours=48)
    compute(store, relaxed)
    assert not capacity_view(store, relaxed, MANAGER, NOW).facilities.set_index("facility_id").loc["H2", "stale"]


def test_supplies_days_on_hand_and_warning_levels(capville):
    settings, store, contexts, files, folder = capville
    csv = ("facility_id,reported_at,item,stock,daily_use,unit\n"
           f"H1,{ts(30)},ppe,9000,600,sets\n"   # an older report of the same item: superseded
           f"H1,{ts(2)},ppe,5200,650,sets\n"    # 8 days
           f"H1,{ts(2)},oxygen,50,10,cylinders\n"  # 5 days: warning below 7
           f"H2,{ts(2)},test_kits,100,50,kits\n"  # 2 days: critical below 3
           f"H2,{ts(2)},masks,400,,boxes\n")       # no use reported: no number
    assert files.ingest_file(write(folder, "supplies-today.csv", csv)).result.accepted == 5
    rows = supply_rows(store, cap_settings(supplies_warn_days=7, supplies_critical_days=3), NOW)
    got = {(r.facility_id, r.item): (None if np.isnan(r.days_on_hand) else r.days_on_hand, r.status)
           for r in rows.itertuples()}
    assert got == {("H1", "ppe"): (8.0, "ok"), ("H1", "oxygen"): (5.0, "warn"), ("H2", "test_kits"): (2.0, "bad"),
                   ("H2", "masks"): (None, "neutral")}
    assert list(rows["item"][:3]) == ["test_kits", "oxygen", "ppe"]  # the first to run out first
    stricter = supply_rows(store, cap_settings(supplies_warn_days=10, supplies_critical_days=6), NOW)
    assert dict(zip(stricter["item"], stricter["status"]))["ppe"] == "warn"
    # As the day's figures had them 28 hours ago: only the superseded ppe report existed then.
    earlier = supply_rows(store, settings, NOW - timedelta(hours=28))
    assert list(earlier["item"]) == ["ppe"] and earlier["days_on_hand"].iloc[0] == 15.0
    assert np.allclose(days_on_hand([10, 10, 10], [2, 0, None]), [5, np.nan, np.nan], equal_nan=True)
    # The tile counts the same rows the table lists.
    compute(store, settings)
    tiles = {t.figure.key: t for t in capacity_view(store, settings, MANAGER, NOW).tiles}
    assert tiles["supplies_low"].figure.value == 2 and tiles["supplies_low"].detail == "1 critical"


def test_capacity_settings_are_validated():
    with pytest.raises(ConfigError, match="supplies_critical_days"):
        parse_settings({"city": {"name": "x", "slug": "x"},
                        "capacity": {"supplies_warn_days": 3, "supplies_critical_days": 5}})
    with pytest.raises(ConfigError, match="unknown key 'capacity.stale_after'"):
        parse_settings({"city": {"name": "x", "slug": "x"}, "capacity": {"stale_after": 3}})
    assert cap_settings(supplies_warn_days=10).capacity.supplies_warn_days == 10


def test_potential_sites_next_to_rising_demand(capville):
    settings, store, *_ = capville
    table = pd.DataFrame({"area_id": ["A", "B", "C"], "new_cases_7d": [4.0, 12.0, 30.0],
                          "new_cases_7d__suppressed": [False] * 3, "new_cases_previous_7d": [1.0, 12.0, 10.0],
                          "new_cases_previous_7d__suppressed": [False] * 3,
                          "week_over_week_growth": [4.0, 1.0, 3.0]})
    centroids = pd.DataFrame({"area_id": ["A", "B", "C"], "centroid_lat": [2.95, 2.99, 2.96],
                              "centroid_lng": [101.70, 101.79, 101.71]})
    demand = area_demand(table, {"A": "A", "B": "B", "C": "C"}, centroids, rising_change=0.10)
    assert list(demand["rising"]) == [False, False, True]  # A: 4 cases is too few to call; B flat; C tripled
    sites = potential_site_rows(store, demand).set_index("facility_id")
    assert list(sites.index) == ["S1"]
    assert sites.loc["S1", "nearest_rising_area"] == "C"
    assert sites.loc["S1", "nearest_rising_km"] == pytest.approx(1.56, abs=0.05)


def test_sorting_keeps_missing_values_last():
    rows = pd.DataFrame({"name": ["b", "a", "c"], "occupancy": [0.5, np.nan, 0.9], "stale": [False, True, False]})
    assert list(sort_facilities(rows, "occupancy", True)["name"]) == ["c", "b", "a"]
    assert list(sort_facilities(rows, "occupancy", False)["name"]) == ["b", "c", "a"]
    assert list(sort_facilities(rows, "stale", True)["name"]) == ["a", "b", "c"]
    assert list(sort_facilities(rows, "no-such-column", False)["name"]) == ["c", "b", "a"]  # default


# ---- projection -----------------------------------------------------------------------------------
def _growing_cases(days: int = 120, start: float = 20.0, growth: float = 0.04) -> pd.Series:
    index = pd.date_range(end=pd.Timestamp(NOW.date()), periods=days, freq="D")
    return pd.Series(np.round(start * np.exp(growth * np.arange(days))), index=index)


def _add_cases(store, contexts, cases: pd.Series) -> None:
    b = BatchBuilder("test", "file")
    ctx = contexts.get()
    for day, n in cases.items():
        for i in range(int(n)):
            rec = {"case_id": f"C-{day:%Y%m%d}-{i}", "reported_date": f"{day:%Y-%m-%d}", "status": "confirmed"}
            b.add("case", rec, b"", ctx)
    store.write_batch(b.build()).result()


def test_projection_is_anchored_on_todays_census_and_reaches_full(capville):
    settings, store, contexts, files, folder = capville
    _add_cases(store, contexts, _growing_cases(days=60))
    _report(store, contexts, "H1", 2, 1000, 700, 200)
    compute(store, settings)
    outlook = qi.capacity_outlook(store, NOW.date(), scope="city").set_index("resource").loc["beds"]
    band = qi.capacity_bands(store, NOW.date(), "city", CITYWIDE, "beds")
    # Day 1 of the band starts from today's occupancy (the census carries on; it does not jump).
    assert abs(band["median"].iloc[0] - 700) < 0.05 * 700
    assert band["median"].is_monotonic_increasing and (band["q95"] >= band["q05"]).all()
    assert qi.rt_on(store, NOW.date())[CITYWIDE][0] > 1
    days = int(outlook["days_median"])
    assert 1 <= days <= settings.early_warning.forecast_days and int(outlook["days_upper"]) <= days
    assert band["median"].iloc[days - 1] >= 0.9 * 1000 > band["median"].iloc[days - 2]


def test_projection_declines_to_guess(capville):
    settings, store, contexts, files, folder = capville
    _report(store, contexts, "H1", 2, 1000, 600, 10)
    compute(store, settings)  # reports, but no cases: R(t) cannot be estimated
    city = qi.capacity_outlook(store, NOW.date(), scope="city").set_index("resource").loc["beds"]
    assert not bool(city["projected"]) and "R(t) not estimated" in city["note"]
    view = capacity_view(store, settings, MANAGER, NOW)
    days = next(t for t in view.tiles if t.figure.key == "days_to_bed_threshold")
    assert days.figure.value is None and days.figure.display == "–" and days.detail.startswith("no projection")


def test_facility_trend_and_days_until_full_per_facility(capville):
    settings, store, contexts, files, folder = capville
    _add_cases(store, contexts, _growing_cases(days=60))
    for h, (occ, covid) in enumerate([(300, 80), (290, 75)]):
        _report(store, contexts, "H1", 2 + 24 * h, 400, occ, covid)
    _report(store, contexts, "H2", 2, 250, 100, 20)
    compute(store, settings)
    view = capacity_view(store, settings, MANAGER, NOW)
    assert view.city_outlook is not None and view.city_outlook.projected, view.city_outlook
    rows = view.facilities.set_index("facility_id")
    # H1 holds 80 % of the COVID-19 patients and is fuller: it fills first.
    assert rows.loc["H1", "days_until_full"] < rows.loc["H2", "days_until_full"]
    trend = facility_trend(store, settings, MANAGER, "H1", NOW)
    assert trend.name == "General Hospital" and trend.band is not None
    assert trend.outlook.days_median == rows.loc["H1", "days_until_full"]
    history = trend.history.dropna(subset=["beds_total"])
    occupied = list(history["beds_occupied"].astype(int))
    assert occupied[-1] == 300 and 290 in occupied
    city = facility_trend(store, settings, MANAGER, CITYWIDE, NOW)
    assert city.band["median"].tolist() == view.city_band["median"].tolist()
    assert int(city.history["beds_occupied"].dropna().iloc[-1]) == 400  # 300 + 100 today
    assert view.as_of == NOW.date()
