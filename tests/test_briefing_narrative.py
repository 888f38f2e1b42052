"""The briefing's narrative on small cities with known numbers: cases rising and falling week on week,
no capacity reports, case reports that stopped, and a capacity projection with its stated weakness.

Each city is a real DuckDB file filled through the ingest batch path, with the indicators and
early-warning jobs run on it, so the sentences are read from stored figures as in production."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

from auth.principal import principal_for
from ingest.batch import BatchBuilder
from ingest.context import ContextProvider
from ingest.files import FileIngestor
from jobs import early_warning, indicators
from services.briefing import daily_briefing
from services.narrative import day_text
from settings import Settings
from store import Store

DAY = date(2026, 3, 14)  # the briefing day: a fixed date, so the sentences can be written out in full
RAN_AT = datetime.combine(DAY, time(20, 0), tzinfo=timezone.utc)
READ_AT = datetime.combine(DAY + timedelta(days=1), time(8, 0), tzinfo=timezone.utc)  # DAY is complete
SQUARE = {"type": "Polygon", "coordinates": [[[101.6, 2.8], [101.8, 2.8], [101.8, 3.0], [101.6, 3.0], [101.6, 2.8]]]}
HOSPITALS = "facility_id,name,kind,owner,lat,lng,beds,icu_beds\nH1,General Hospital,hospital,MOH,2.90,101.65,1000,40\n"
EXECUTIVE = principal_for("mayor", "executive")


def _settings(**early_warning_overrides) -> Settings:
    return Settings.model_validate({"city": {"name": "Smallville", "slug": "smallville", "timezone": "UTC"},
                                    "mqtt": {"mode": "off"}, "early_warning": early_warning_overrides})


def _city(folder, daily_cases: dict[date, int], reports: list[tuple[date, int, int, int]] = (),
          settings: Settings | None = None):
    """A store with a boundary, one hospital, the given cases per report day and capacity reports
    (day, beds occupied, ICU occupied, COVID-19 patients) at 10:00 of their day; jobs run for DAY."""
    settings = settings or _settings()
    store = Store(folder / "pheoc.duckdb")
    contexts = ContextProvider(store, settings)
    files = FileIngestor(store, contexts)
    (folder / "boundary.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"area_id": "city", "name": "Smallville"}, "geometry": SQUARE}]}))
    assert files.ingest_file(folder / "boundary.geojson").error is None
    (folder / "facilities.csv").write_text(HOSPITALS)
    assert files.ingest_file(folder / "facilities.csv").result.accepted == 1
    batch = BatchBuilder("test", "file")
    for day, n in daily_cases.items():
        for i in range(n):
            batch.add("case", {"case_id": f"C-{day:%Y%m%d}-{i}", "reported_date": day.isoformat(),
                               "status": "confirmed"}, b"", contexts.get())
    for day, occupied, icu, covid in reports:
        rec = {"facility_id": "H1", "reported_at": datetime.combine(day, time(10), tzinfo=timezone.utc).isoformat(),
               "beds_total": 1000, "beds_occupied": occupied, "icu_total": 40, "icu_occupied": icu,
               "covid_patients": covid}
        assert batch.add("capacity", rec, json.dumps(rec).encode(), contexts.get()), rec
    store.write_batch(batch.build()).result()
    assert indicators.run(store, settings, DAY, now=RAN_AT)["status"] == "computed"
    early_warning.run(store, settings, DAY, now=RAN_AT)
    return store, settings


def _days(first: date, last: date, n: int) -> dict[date, int]:
    return {first + timedelta(days=i): n for i in range((last - first).days + 1)}


def _sentences(store, settings) -> list[str]:
    b = daily_briefing(store, settings, EXECUTIVE, now=READ_AT)
    assert b.day == DAY and b.complete
    return list(b.narrative)


def test_rising_cases_are_told_with_the_stored_numbers(tmp_path):
    cases = {**_days(DAY - timedelta(days=20), DAY - timedelta(days=7), 10), **_days(DAY - timedelta(days=6), DAY, 20)}
    reports = [(DAY - timedelta(days=d), 600, 20, 50) for d in range(14)]
    store, settings = _city(tmp_path, cases, reports)
    try:
        said = _sentences(store, settings)
        assert f"New cases rose 100 % week on week, to 140 in the 7 days to {day_text(DAY)}." in said
        rt = next(s for s in said if s.startswith("R(t) is "))
        assert "more than one other person, so cases are likely to keep rising" in rt
        assert any(s.startswith("Hospital bed occupancy is 60% and ICU occupancy 50%") for s in said)
        assert not any("stale" in s or "No hospital capacity" in s for s in said)
    finally:
        store.close()


def test_falling_cases(tmp_path):
    cases = {**_days(DAY - timedelta(days=20), DAY - timedelta(days=7), 20), **_days(DAY - timedelta(days=6), DAY, 10)}
    reports = [(DAY - timedelta(days=d), 300, 8, 20) for d in range(14)]
    store, settings = _city(tmp_path, cases, reports)
    try:
        said = _sentences(store, settings)
        assert f"New cases fell 50 % week on week, to 70 in the 7 days to {day_text(DAY)}." in said
        assert any(s.startswith("R(t) is ") and "fewer than one other person" in s for s in said)
    finally:
        store.close()


def test_missing_capacity_reports_are_said_not_guessed(tmp_path):
    store, settings = _city(tmp_path, _days(DAY - timedelta(days=20), DAY, 12))
    try:
        said = _sentences(store, settings)
        assert (f"No hospital capacity reports were counted for {day_text(DAY)}, so bed and ICU occupancy and the "
                "days until the threshold are unknown.") in said
        assert f"New cases held steady week on week (84 in the 7 days to {day_text(DAY)})." in said
        assert not any("occupancy is" in s for s in said)
    finally:
        store.close()


def test_case_reports_that_stopped_are_called_stale(tmp_path):
    last_case = DAY - timedelta(days=3)
    reports = [(DAY - timedelta(days=d), 400, 10, 30) for d in range(7)]  # reports keep DAY the as-of day
    store, settings = _city(tmp_path, _days(DAY - timedelta(days=20), last_case, 15), reports)
    try:
        said = _sentences(store, settings)
        assert (f"No case reports have arrived since {day_text(last_case)}: the case figures for {day_text(DAY)} "
                "are stale and likely too low.") == said[0]
    finally:
        store.close()


def test_a_projection_comes_with_its_numbers_and_its_weakness(tmp_path):
    import numpy as np
    # Steady growth with R held fixed (no relaxation towards 1): the beds fill within the horizon.
    settings = _settings(forecast_r_relax_days=None)
    cases = {DAY - timedelta(days=59 - i): int(round(20 * np.exp(0.04 * i))) for i in range(60)}
    store, settings = _city(tmp_path, cases, [(DAY, 700, 30, 200)], settings)
    try:
        b = daily_briefing(store, settings, EXECUTIVE, now=READ_AT)
        days = b.capacity.days_to_beds
        assert days.value is not None and days.display == f"{days.value:,.0f} d"
        sentence = next(s for s in b.narrative if s.startswith("Hospital bed occupancy is 70%"))
        assert f"hospital beds reach 90% in about {days.value:,.0f} days" in sentence
        caveat = b.narrative[b.narrative.index(sentence) + 1]
        assert caveat.startswith("The projection cannot know about new measures, changes in testing or reporting "
                                 "delays")
        assert b.forecast_caveats[0].startswith("The projection starts from today's R(t); R(t) is assumed to stay")
    finally:
        store.close()
