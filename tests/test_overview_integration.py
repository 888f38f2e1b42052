"""The overview's numbers on a small demo city ingested through the file path equal direct SQL over the
store's records: the indicators job computed them once, and the read model only reads them."""
from __future__ import annotations

from datetime import timedelta

import pytest

from auth.principal import principal_for, public_principal
from services.overview import overview
from store import Store

pytestmark = pytest.mark.slow
OPERATOR = principal_for("op", "operator")


@pytest.fixture(scope="module")
def city(computed_city):
    settings, manifest, _today = computed_city
    store = Store(settings.path(settings.store.path))
    yield settings, manifest, store
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


def test_tiles_equal_direct_sql(city):
    settings, _, store = city
    data = overview(store, settings, OPERATOR)
    as_of = data.as_of
    tiles = {t.figure.key: t.figure for t in data.tiles}
    week_start = as_of - timedelta(days=6)
    counted = "status <> 'suspected'"
    cases_7d = store.scalar(f"SELECT count(*) FROM cases WHERE reported_date BETWEEN ? AND ? AND {counted}",
                            [week_start, as_of])
    assert tiles["new_cases_24h"].value == store.scalar(
        f"SELECT count(*) FROM cases WHERE reported_date = ? AND {counted}", [as_of])
    population = store.scalar("SELECT sum(population) FROM areas WHERE kind = 'boundary'")
    assert tiles["incidence_7d_per_100k"].value == pytest.approx(cases_7d / population * 1e5)
    tested, positive = store.read_rows(
        "SELECT sum(tested), sum(positive) FROM tests WHERE test_date BETWEEN ? AND ?", [week_start, as_of])[0]
    assert tiles["test_positivity_7d"].value == pytest.approx(positive / tested)
    # Each hospital's latest report by now (none in the demo is older than the stale limit).
    occupied, total = store.read_rows(
        """SELECT sum(beds_occupied), sum(beds_total) FROM (
             SELECT r.*, row_number() OVER (PARTITION BY r.facility_id ORDER BY reported_at DESC) rn
             FROM capacity_reports r JOIN facilities f USING (facility_id)
             WHERE f.kind IN ('hospital','icu','temporary_hospital')) WHERE rn = 1""")[0]
    assert tiles["bed_occupancy"].value == pytest.approx(occupied / total)
    assert tiles["active_alerts"].value == store.scalar("SELECT count(*) FROM alerts WHERE status <> 'resolved'")


def test_trend_and_cells_equal_direct_sql(city):
    settings, _, store = city
    data = overview(store, settings, OPERATOR)
    as_of, trend = data.as_of, data.trend
    assert trend["day"].iloc[-1].date() == as_of
    direct = dict(store.read_rows("SELECT reported_date, count(*) FROM cases WHERE reported_date > ? "
                                  "AND status <> 'suspected' GROUP BY 1", [as_of - timedelta(days=90)]))
    shown = {d.date(): int(c) for d, c, hidden in zip(trend["day"], trend["cases"], trend["cases__suppressed"])
             if c and not hidden}
    withheld = {d.date() for d, hidden in zip(trend["day"], trend["cases__suppressed"]) if hidden}
    assert shown == {d: int(c) for d, c in direct.items() if d not in withheld}
    assert all(1 <= direct[d] < settings.privacy.min_count for d in withheld)
    cells = data.map.rows
    assert data.map.grain == "cell"
    window = as_of - timedelta(days=settings.map.recent_days)
    assert len(cells) == store.scalar("SELECT count(DISTINCT h3_cell) FROM cases WHERE reported_date > ? "
                                      "AND status <> 'suspected'", [window])
    shown = cells["value"].fillna(0).sum()
    hidden = int(cells["value__suppressed"].sum())
    total = store.scalar("SELECT count(*) FROM cases WHERE reported_date > ? AND h3_cell IS NOT NULL "
                         "AND status <> 'suspected'", [window])
    # Withheld cells hold 1..k-1 cases each.
    assert shown + hidden <= total <= shown + hidden * (settings.privacy.min_count - 1)


def test_the_public_gets_community_areas_not_cells(city):
    settings, _, store = city
    data = overview(store, settings, public_principal())
    assert data.map.grain == "area" and "h3_cell" not in data.map.rows
    assert set(data.map.rows["area_id"]) <= set(store.read("SELECT area_id FROM areas WHERE kind = 'community'")
                                                ["area_id"])


def test_healthz_shows_counts_and_sources_but_nothing_personal(city):
    from app import create_app
    settings, _, store = city
    app = create_app(settings, store)
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
