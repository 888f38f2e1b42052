"""Precinct risk and role scoping, on the computed demo city served by the real app.

* The indicators job stores each precinct's cases (counted cases located in its polygon), and the
  read model's 7- and 14-day figures are those, checked against an independent count with shapely.
* Small counts are withheld (with complementary suppression across precincts); a police user bound
  to precincts gets its own precincts only (the table, the API, the panel).
* Zone shares and the precinct's tier come from the zones in force.
* No police user, bound or not, and not the public, reaches case-level data through ANY registered
  callback or ANY /api/v1 endpoint: no case id, no case coordinates, no case-level read in the audit
  log, and for the bound officer no H3 cell outside its precinct.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import dash
import pandas as pd
import pytest
import shapely

from analytics.trend import trend_of
from tests.app_helpers import app_on_copy, close_app, decimals_in, points_in, shows_coordinates, shows_point
from tests.auth_helpers import TEST_PASSWORD, sign_in_client
from tests.test_callback_authz import ROUTER_OUTPUT, _body, _components

H3_ID = re.compile(r"\b8[0-9a-f]{14}\b")


@pytest.fixture(scope="module")
def city(computed_city, tmp_path_factory):
    from auth.users import add_user

    settings, manifest, today = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("precincts"),
                                       (("cop-all", "police"), ("ex-one", "executive"), ("ad-one", "admin")))
    precincts = [r[0] for r in store.read_rows("SELECT area_id FROM areas WHERE kind = 'precinct' ORDER BY area_id")]
    svc = app.server.extensions["pheoc.auth"]
    add_user(store, svc.passwords, "cop-one", "police", TEST_PASSWORD, actor="test", precincts=(precincts[0],))
    yield {"app": app, "store": store, "settings": settings, "precincts": precincts, "today": today}
    close_app(app, store)


def _client(city, user=None):
    client = city["app"].server.test_client()
    if user:
        assert sign_in_client(client, user).status_code == 303
    return client


def test_the_job_counts_cases_in_each_precinct_polygon(city):
    from geo.areas import geometry_from_geojson

    store = city["store"]
    day = store.scalar("SELECT max(day) FROM precinct_days")
    stored = store.read("SELECT * FROM precinct_days WHERE day = ?", [day]).set_index("precinct_id")
    assert sorted(stored.index) == city["precincts"] and 5 <= len(stored) <= 8
    cases = store.read("SELECT reported_date, lat, lng FROM counted_cases WHERE lat IS NOT NULL")
    cases["reported_date"] = pd.to_datetime(cases["reported_date"]).dt.date
    shapes = {a: geometry_from_geojson(g) for a, g in store.read_rows(
        "SELECT area_id, geometry FROM areas WHERE kind = 'precinct'")}
    population = dict(store.read_rows("SELECT area_id, population FROM areas WHERE kind = 'precinct'"))
    for precinct_id, geometry in shapes.items():
        inside = shapely.contains_xy(geometry, cases["lng"].to_numpy(), cases["lat"].to_numpy())
        days = cases.loc[inside, "reported_date"]

        def window(first, last):
            return int(((days >= day - timedelta(days=first)) & (days <= day - timedelta(days=last))).sum())
        row = stored.loc[precinct_id]
        assert row["cases_7d"] == window(6, 0) and row["cases_previous_7d"] == window(13, 7), precinct_id
        assert row["cases_14d"] == window(13, 0) and row["cases_previous_14d"] == window(27, 14), precinct_id
        assert row["rate_7d_per_100k"] == pytest.approx(window(6, 0) / population[precinct_id] * 1e5)
    assert stored["cases_14d"].sum() > 0


def test_the_read_model_withholds_small_counts_and_cuts_to_bound_precincts(city):
    from auth.principal import principal_for
    from services.precincts import UnknownPrecinct, precinct_detail, precinct_risk

    store, settings = city["store"], city["settings"]
    k = settings.privacy.min_count
    risk = precinct_risk(store, settings, principal_for("cop-all", "police"))
    rows = risk.rows
    assert list(rows["precinct_id"]) == city["precincts"] and not risk.scoped
    for column in ("cases_7d", "cases_previous_7d", "cases_14d", "cases_previous_14d"):
        shown = rows.loc[~rows[column + "__suppressed"], column]
        assert not ((shown >= 1) & (shown < k)).any(), column
        withheld = int(rows[column + "__suppressed"].sum())
        assert withheld != 1, f"{column}: a single withheld precinct is recovered from the city's total"
        assert rows.loc[rows[column + "__suppressed"], column].isna().all()
    hidden = rows["cases_7d__suppressed"] | rows["cases_previous_7d__suppressed"]
    assert rows.loc[hidden, "change_7d"].isna().all() and rows.loc[hidden, "trend_7d"].isna().all()
    assert set(rows.loc[~hidden, "trend_7d"]) <= {"rising", "falling", "steady"}
    bound = principal_for("cop-one", "police", (city["precincts"][0],))
    mine = precinct_risk(store, settings, bound)
    assert list(mine.rows["precinct_id"]) == [city["precincts"][0]] and mine.scoped
    # The same figures as everyone else sees (withheld on the whole table, then cut).
    pd.testing.assert_series_equal(mine.rows.iloc[0][["cases_7d", "cases_14d"]], rows.iloc[0][["cases_7d", "cases_14d"]],
                                   check_names=False)
    with pytest.raises(UnknownPrecinct):
        precinct_detail(store, settings, bound, city["precincts"][1])
    detail = precinct_detail(store, settings, bound, city["precincts"][0])
    assert len(detail.history) == 56
    shown = detail.history.loc[~detail.history["cases__suppressed"], "cases"]
    assert not ((shown >= 1) & (shown < k)).any()


def test_zone_shares_and_the_precinct_tier(city):
    """A red zone over every cell of the first precinct and an orange one over one cell of the second."""
    from auth.principal import principal_for
    from geo.areas import geometry_from_geojson
    from geo.cells import geometry_to_overlapping_cells, latlng_to_cell
    from services.precincts import precinct_detail, precinct_risk

    store, settings = city["store"], city["settings"]
    first, second = city["precincts"][:2]
    res = settings.clusters.resolution
    geometry = {a: geometry_from_geojson(g) for a, g in store.read_rows(
        "SELECT area_id, geometry FROM areas WHERE kind = 'precinct'")}
    whole = geometry_to_overlapping_cells(geometry[first], res)
    centre = geometry[second].representative_point()
    one = [latlng_to_cell(centre.y, centre.x, res)]
    day = store.scalar("SELECT max(day) FROM precinct_days")
    for zone_id, tier, cells in (("Z-RED", "red", whole), ("Z-ORANGE", "orange", one)):
        store.write("INSERT INTO zones VALUES (?, ?, 'core', ?, ?, 'test', 'nys-cai-2020', '2020-10-21', ?, ?, NULL, "
                    "NULL, ?)", [zone_id, "CL-" + zone_id, tier, cells, day, day, day])
    try:
        rows = precinct_risk(store, settings, principal_for("cop-all", "police")).rows.set_index("precinct_id")
        assert rows.at[first, "tier"] == "red" and rows.at[first, "zone_shares"]["red"] == pytest.approx(1.0, abs=1e-6)
        assert rows.at[second, "tier"] == "orange"
        assert 0 < rows.at[second, "zone_shares"]["orange"] < 0.5
        # Only the orange zone in force: the precincts it does not touch have no tier (None, rank 0).
        store.write("CREATE TABLE zones_aside AS SELECT * FROM zones WHERE zone_id <> 'Z-ORANGE'")
        store.write("DELETE FROM zones WHERE zone_id <> 'Z-ORANGE'")
        try:
            only = precinct_risk(store, settings, principal_for("cop-all", "police")).rows.set_index("precinct_id")
        finally:
            store.write("INSERT INTO zones SELECT * FROM zones_aside")
            store.write("DROP TABLE zones_aside")
        assert only.at[second, "tier"] == "orange" and only.at[second, "tier_rank"] > 0
        untouched = [p for p in only.index if not any(only.at[p, "zone_shares"].values())]
        assert untouched and all(only.at[p, "tier"] is None and only.at[p, "tier_rank"] == 0 for p in untouched)
        detail = precinct_detail(store, settings, principal_for("cop-all", "police"), second)
        assert "Z-ORANGE" in set(detail.zones["zone_id"])
        body = _client(city, "cop-all").get("/api/v1/precincts").get_json()
        api = {p["id"]: p for p in body["precincts"]}
        assert api[first]["tier"] == "red" and api[first]["zone_shares"]["red"] == pytest.approx(1.0, abs=1e-6)
    finally:
        store.write("DELETE FROM zones WHERE zone_id IN ('Z-RED', 'Z-ORANGE')")


def test_trend_is_a_test_of_two_counts_not_a_percentage():
    assert trend_of(3, 1) == "steady" and trend_of(30, 10) == "rising" and trend_of(10, 30) == "falling"
    assert trend_of(0, 0) == "steady" and trend_of(None, 3) is None and trend_of(float("nan"), 3) is None


def test_the_api_by_role(city):
    first, second = city["precincts"][:2]
    assert _client(city).get("/api/v1/precincts").status_code == 401
    assert _client(city, "ad-one").get("/api/v1/precincts").status_code == 403
    body = _client(city, "ex-one").get("/api/v1/precincts").get_json()
    assert [p["id"] for p in body["precincts"]] == city["precincts"] and body["tiers"] == ["yellow", "orange", "red"]
    figure = body["precincts"][0]["cases_7d"]
    assert set(figure) == {"value", "suppressed"}
    cop = _client(city, "cop-one")
    mine = cop.get("/api/v1/precincts").get_json()
    assert [p["id"] for p in mine["precincts"]] == [first] and mine["scoped_to_your_precincts"] is True
    assert cop.get(f"/api/v1/precincts/{second}").status_code == 404
    detail = cop.get(f"/api/v1/precincts/{first}").get_json()
    assert detail["precinct"]["id"] == first and len(detail["history"]) == 56
    assert cop.get("/api/v1/precincts/P99").status_code == 404
    assert cop.get(f"/api/v1/precincts/{first}?x=1").status_code == 400


# ---- no case-level data for police, through any callback or endpoint ------------------------------------
def _api_paths(app, first_precinct: str, address_id: str) -> list[str]:
    """Every GET route under /api/v1 the app serves, with its path parameters filled in."""
    paths = []
    for rule in app.server.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or "GET" not in (rule.methods or ()):
            continue
        path = re.sub(r"<(?:[^:>]+:)?precinct_id>", first_precinct, rule.rule)
        path = re.sub(r"<[^>]+>", "x", path)
        paths.append(path)
    extra = [f"/api/v1/address-check?address_id={address_id}&purpose=audit+test",
             "/api/v1/addresses?q=1", "/api/v1/alerts?state=all"]
    return sorted(set(paths)) + extra


def _all_responses(app, client, first_precinct: str, address_id: str) -> list[tuple[str, int, str]]:
    components = _components(app)
    out = []
    for key, entry in app.callback_map.items():
        if "callback" not in entry:
            continue
        if ROUTER_OUTPUT in key:
            for page in dash.page_registry.values():
                r = client.post("/_dash-update-component", json=_body(
                    key, entry, components, {"pathname": page["path"], "search": ""}))
                out.append((f"page {page['path']}", r.status_code, r.get_data(as_text=True)))
            continue
        r = client.post("/_dash-update-component", json=_body(key, entry, components))
        out.append((key, r.status_code, r.get_data(as_text=True)))
    for path in _api_paths(app, first_precinct, address_id):
        r = client.get(path)
        out.append((path, r.status_code, r.get_data(as_text=True)))
    return out


@pytest.mark.parametrize("who", [None, "cop-all", "cop-one"], ids=["public", "police", "police-bound"])
def test_police_reach_no_case_level_data_through_any_callback_or_endpoint(city, who):
    from geo.cells import is_valid_cell
    from services.privacy import jurisdiction

    app, store = city["app"], city["store"]
    first = city["precincts"][0]
    address_id = store.scalar("SELECT min(address_id) FROM addresses")
    client = _client(city, who)
    store.flush()
    seq_before = store.scalar("SELECT coalesce(max(seq), 0) FROM audit_log")
    responses = _all_responses(app, client, first, address_id)
    assert len(responses) > 30 and any(status == 200 for _, status, _ in responses)
    cases = store.read_rows("SELECT case_id, lat, lng FROM cases WHERE lat IS NOT NULL")
    problems = []
    place = jurisdiction(store)
    for what, status, body in responses:
        if status >= 400:
            if status not in (400, 401, 403, 404, 429):
                problems.append(f"{what}: {status} {body[:200]}")
            continue
        found_ids = [c for c, _, _ in cases[:2000] if c in body]
        if found_ids:
            problems.append(f"{what}: case ids {found_ids[:3]}")
        numbers, points = decimals_in(body), points_in(body)
        if any(shows_coordinates(numbers, lat, lng) or shows_point(points, lat, lng) for _, lat, lng in cases[:2000]):
            problems.append(f"{what}: a case's coordinates")
        for field in ('"case_id"', '"age_band"', '"onset_date"'):  # (alerts have a severity too)
            if field in body:
                problems.append(f"{what}: case-level field {field}")
        cells = {c for c in H3_ID.findall(body) if is_valid_cell(c)}  # not the digits of a number like -0.8192…
        if who is None and cells:
            problems.append(f"{what}: the public received cells {sorted(cells)[:3]}")
        if who == "cop-one" and cells:
            outside = [c for c, p in place.precinct_of_cells(cells).items() if p != first]
            if outside:
                problems.append(f"{what}: cells outside {first}: {outside[:3]}")
    store.flush()
    reads = store.read_rows("SELECT actor, detail FROM audit_log WHERE seq > ? AND action = 'data_access'",
                            [seq_before])
    for actor, detail in reads:
        if json.loads(detail).get("level") == "points":
            problems.append(f"{actor} was released case-level rows: {detail[:200]}")
    assert not problems, "\n".join(problems[:30])
