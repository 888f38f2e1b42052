"""The overview's numbers, computed on a small demo city ingested through the file path, equal direct SQL."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.overview import compute_kpis, compute_trend, overview
from store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def city(demo_city):
    dsettings, manifest = demo_city
    store = Store(dsettings.path(dsettings.store.path))
    yield dsettings, manifest, store
    store.close()


def test_demo_city_went_through_the_file_path(city):
    _, _, store = city
    sources = store.read("SELECT DISTINCT channel FROM ingest_log")["channel"].tolist()
    assert sources == ["file"]
    counts = store.table_counts()
    for table in ("areas", "sensors", "facilities", "cases", "tests", "readings", "capacity_reports",
                  "admissions"):
        assert counts[table] > 0, table
    assert store.scalar("SELECT count(*) FROM areas WHERE kind = 'community'") >= 10
    assert 5 <= store.scalar("SELECT count(*) FROM areas WHERE kind = 'precinct'") <= 8
    # Everything the generator wrote passed validation.
    assert store.scalar("SELECT count(*) FROM quarantine") == 0


def test_kpis_equal_direct_sql(city):
    _, _, store = city
    as_of = store.scalar("SELECT max(reported_date) FROM cases")
    kpis = {k.key: k for k in compute_kpis(store, as_of)}
    week_start = as_of - timedelta(days=6)
    cases_7d = store.scalar("SELECT count(*) FROM cases WHERE reported_date BETWEEN ? AND ?", [week_start, as_of])
    assert kpis["cases_7d"].value == cases_7d
    assert kpis["cases_24h"].value == store.scalar("SELECT count(*) FROM cases WHERE reported_date = ?", [as_of])
    population = store.scalar("SELECT sum(population) FROM areas WHERE kind = 'boundary'")
    assert kpis["incidence_7d"].value == pytest.approx(cases_7d / population * 1e5)
    tested, positive = store.read_rows(
        "SELECT sum(tested), sum(positive) FROM tests WHERE test_date BETWEEN ? AND ?", [week_start, as_of])[0]
    assert kpis["positivity_7d"].value == pytest.approx(positive / tested)
    occupied, total, icu_occ, icu_total = store.read_rows(
        """SELECT sum(beds_occupied), sum(beds_total), sum(icu_occupied), sum(icu_total) FROM (
             SELECT r.*, row_number() OVER (PARTITION BY r.facility_id ORDER BY reported_at DESC) rn
             FROM capacity_reports r JOIN facilities f USING (facility_id)
             WHERE f.kind IN ('hospital','icu','temporary_hospital')) WHERE rn = 1""")[0]
    assert kpis["bed_occupancy"].value == pytest.approx(occupied / total)
    assert kpis["icu_occupancy"].value == pytest.approx(icu_occ / icu_total)
    assert kpis["active_alerts"].value == store.scalar("SELECT count(*) FROM alerts WHERE status = 'active'")


def test_trend_and_cells_equal_direct_sql(city):
    dsettings, _, store = city
    as_of = store.scalar("SELECT max(reported_date) FROM cases")
    trend = compute_trend(store, as_of, dsettings.city.timezone, days=30)
    first = store.scalar("SELECT min(reported_date) FROM cases")
    assert len(trend) == min(30, (as_of - first).days + 1) and trend["day"].iloc[-1].date() == as_of
    direct = dict(store.read_rows("SELECT reported_date, count(*) FROM cases WHERE reported_date > ? "
                                  "GROUP BY 1", [as_of - timedelta(days=30)]))
    assert {d.date(): int(c) for d, c in zip(trend["day"], trend["cases"]) if c} == {
        d: int(c) for d, c in direct.items()}
    admissions = store.scalar("SELECT count(*) FROM admissions WHERE admitted_on > ?", [as_of - timedelta(days=30)])
    assert int(trend["admissions"].sum()) == admissions
    data = overview(store, as_of, dsettings.city.timezone, recent_days=14)
    cells = store.scalar("SELECT count(DISTINCT h3_cell) FROM cases WHERE reported_date > ?",
                         [as_of - timedelta(days=14)])
    assert len(data.case_cells) == cells
    assert int(data.case_cells["cases"].sum()) == store.scalar(
        "SELECT count(*) FROM cases WHERE reported_date > ? AND h3_cell IS NOT NULL", [as_of - timedelta(days=14)])


def test_healthz_shows_counts_and_sources_but_nothing_personal(city):
    from app import create_app
    dsettings, _, store = city
    app = create_app(dsettings, store)
    client = app.server.test_client()
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok"
    assert body["tables"]["cases"] == store.scalar("SELECT count(*) FROM cases")
    kinds = {(s["channel"], s["kind"]) for s in body["sources"]}
    assert ("file", "case") in kinds and ("file", "reading") in kinds
    case_source = next(s for s in body["sources"] if s["kind"] == "case")
    assert case_source["accepted"] == body["tables"]["cases"] and case_source["last_record_at"]
    text = resp.get_data(as_text=True)
    some_case = store.scalar("SELECT case_id FROM cases LIMIT 1")
    assert some_case not in text and "lat" not in text
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
