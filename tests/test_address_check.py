"""The address check (GET /api/v1/address-check and the /precincts page): exactly the documented keys,
audited, rate-limited, refused without a purpose, 401 for the public, and the active-case flag only
inside a bound officer's precincts; never anything about a case beyond the flag."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from auth.ratelimit import RateLimiter
from services.address_check import ANSWER_KEYS, CASE_MATCH_M, NOT_AVAILABLE
from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import TEST_PASSWORD, sign_in_client
from tests.test_callback_authz import _body, _components

PATH = "/api/v1/address-check"


@pytest.fixture(scope="module")
def city(computed_city, tmp_path_factory):
    """The computed demo city served by the real app; an address with an active case, one without, police
    users bound inside and outside its precinct, and a red zone over the address's cell."""
    from auth.users import add_user
    from geo.cells import latlng_to_cell
    from services.precincts import precinct_index

    settings, _, today = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("address_check"),
                                       (("op-one", "operator"), ("cop-all", "police"), ("an-one", "analyst")))
    # Many checks a minute from the same users: the limit is what one test below tests, with its own limiter.
    app.server.extensions["pheoc.ratelimit"] = RateLimiter({"login": 1000, "address_check": 1000})
    as_of = store.scalar("SELECT max(reported_date) FROM counted_cases")
    since = as_of - timedelta(days=settings.police.isolation_days - 1)
    active = store.read("""SELECT a.address_id, a.text, a.lat, a.lng FROM addresses a JOIN counted_cases c
                           ON a.lat = c.lat AND a.lng = c.lng WHERE c.reported_date >= ? ORDER BY a.address_id
                           LIMIT 1""", [since]).iloc[0]
    # An address with no case ever reported within twice the match distance.
    quiet = store.read("""SELECT a.address_id, a.text, a.lat, a.lng FROM addresses a WHERE NOT EXISTS (
                            SELECT 1 FROM cases c WHERE abs(c.lat - a.lat) < 0.0002 AND abs(c.lng - a.lng) < 0.0002)
                          ORDER BY a.address_id LIMIT 1""").iloc[0]
    index = precinct_index(store)
    home = index.locate_one(active.lat, active.lng)
    other = next(p.area_id for p in index.precincts if p.area_id != home)
    svc = app.server.extensions["pheoc.auth"]
    add_user(store, svc.passwords, "cop-home", "police", TEST_PASSWORD, actor="test", precincts=(home,))
    add_user(store, svc.passwords, "cop-away", "police", TEST_PASSWORD, actor="test", precincts=(other,))
    cell = latlng_to_cell(active.lat, active.lng, settings.clusters.resolution)
    # A zone in force over the active address, as the cluster job stores one (its own tests cover the job).
    store.write("""INSERT INTO zones VALUES ('Z-TEST', 'CL-TEST', 'core', 'red', [?], 'test zone', 'nys-cai-2020',
                   '2020-10-21', ?, ?, NULL, NULL, ?)""", [cell, as_of, as_of, as_of])
    yield {"app": app, "store": store, "settings": settings, "active": active, "quiet": quiet, "home": home,
           "other": other}
    close_app(app, store)


def _client(city, user=None):
    client = city["app"].server.test_client()
    if user:
        assert sign_in_client(client, user).status_code == 303
    return client


def _audits(store, actor):
    store.flush()
    return [json.loads(d) | {"target": t} for t, d in store.read_rows(
        "SELECT target, detail FROM audit_log WHERE action = 'address_check' AND actor = ? ORDER BY seq", [actor])]


def test_the_answer_has_exactly_the_documented_keys_and_is_audited(city):
    client = _client(city, "cop-all")
    active = city["active"]
    r = client.get(PATH, query_string={"address": active.text.upper().replace(",", " "), "purpose": "domestic call"})
    assert r.status_code == 200, r.get_data(as_text=True)
    answer = r.get_json()
    assert tuple(sorted(answer)) == tuple(sorted(ANSWER_KEYS))
    assert set(answer["precinct"]) == {"id", "name"} and answer["precinct"]["id"] == city["home"]
    assert answer["active_case_at_address"] is True
    assert answer["precautions"].startswith("Active case at this address: take precautions.")
    assert city["settings"].police.precautions in answer["precautions"]
    assert answer["zone_tier"] == "red"
    record = _audits(city["store"], "cop-all")[-1]
    assert record["target"] == active.address_id
    assert (record["purpose"], record["precinct"], record["flag_shown"]) == ("domestic call", city["home"], True)
    assert record["query"].startswith(active.text.upper()[:5])
    # Nothing about the case: no id, no date, no count anywhere in the answer.
    case_ids = {c for (c,) in city["store"].read_rows("SELECT case_id FROM cases")}
    text = r.get_data(as_text=True)
    assert not any(c in text for c in case_ids)
    assert "reported_date" not in text and "case_id" not in text and "age" not in text


def test_no_case_at_a_quiet_address_and_by_coordinates(city):
    client = _client(city, "cop-all")
    quiet, active = city["quiet"], city["active"]
    answer = client.get(PATH, query_string={"address_id": quiet.address_id, "purpose": "welfare check"}).get_json()
    assert answer["active_case_at_address"] is False and answer["zone_tier"] is None
    assert answer["precautions"].startswith("No active case reported at this address")
    by_point = client.get(PATH, query_string={"lat": active.lat, "lng": active.lng, "purpose": "welfare check"})
    assert by_point.get_json()["active_case_at_address"] is True
    # A door CASE_MATCH_M + a few metres away is another address: no flag there.
    north = active.lat + (CASE_MATCH_M + 3) / 111_320
    assert client.get(PATH, query_string={"lat": north, "lng": active.lng, "purpose": "welfare check"}
                      ).get_json()["active_case_at_address"] is False


def test_a_bound_officer_gets_the_flag_only_inside_their_precincts(city):
    active = city["active"]
    query = {"address_id": active.address_id, "purpose": "arrest warrant"}
    home = _client(city, "cop-home").get(PATH, query_string=query).get_json()
    away = _client(city, "cop-away").get(PATH, query_string=query).get_json()
    assert home["active_case_at_address"] is True
    assert away["active_case_at_address"] is None and away["precautions"] == NOT_AVAILABLE
    assert away["zone_tier"] == "red" and away["precinct"]["id"] == city["home"]  # the zone tier anywhere
    record = _audits(city["store"], "cop-away")[-1]
    assert (record["flag_available"], record["flag_shown"]) == (False, False)


@pytest.mark.parametrize("query, status, parameter", [
    ({"address_id": "AD-000001"}, 400, "purpose"),
    ({"address_id": "AD-000001", "purpose": "  "}, 400, "purpose"),
    ({"purpose": "domestic call"}, 400, "address"),
    ({"lat": "2.9", "purpose": "domestic call"}, 400, "lat"),
    ({"lat": "north", "lng": "101.7", "purpose": "domestic call"}, 400, "lat"),
    ({"address": "1 Jalan Yang Tiada", "purpose": "domestic call"}, 404, "address"),
    ({"address_id": "AD-000001", "purpose": "x", "colour": "red"}, 400, "colour"),
])
def test_refusals_name_the_parameter(city, query, status, parameter):
    client = _client(city, "cop-all")
    before = len(_audits(city["store"], "cop-all"))
    r = client.get(PATH, query_string=query)
    assert r.status_code == status and r.get_json()["error"]["parameter"] == parameter
    assert len(_audits(city["store"], "cop-all")) == before  # a refused check shows nothing and logs no check


def test_an_unknown_address_offers_close_ones(city):
    text = city["active"].text
    r = _client(city, "cop-all").get(PATH, query_string={"address": text[: len(text) // 2 + 3] + " zz",
                                                         "purpose": "domestic call"})
    assert r.status_code == 404


def test_the_public_gets_401_and_roles_without_the_permission_403(city):
    r = _client(city).get(PATH, query_string={"address_id": city["active"].address_id, "purpose": "curious"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "active_case_at_address" not in r.get_data(as_text=True)
    r = _client(city, "an-one").get(PATH, query_string={"address_id": city["active"].address_id, "purpose": "study"})
    assert r.status_code == 403


def test_checks_are_rate_limited_per_user_and_per_address(city):
    app = city["app"]
    saved = app.server.extensions["pheoc.ratelimit"]
    app.server.extensions["pheoc.ratelimit"] = RateLimiter({"login": 1000, "address_check": 3})
    try:
        client = _client(city, "cop-all")
        quiet, active = city["quiet"], city["active"]
        statuses = [client.get(PATH, query_string={"address_id": quiet.address_id, "purpose": "noise complaint"}
                               ).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the address's bucket (and the user's) is empty
        r = client.get(PATH, query_string={"address_id": active.address_id, "purpose": "noise complaint"})
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"  # this user's bucket is empty too
        # Another officer at the same door is held back by the address's bucket; elsewhere they may check.
        other = _client(city, "cop-home")
        assert other.get(PATH, query_string={"address_id": quiet.address_id, "purpose": "backup"}).status_code == 429
        assert other.get(PATH, query_string={"address_id": active.address_id, "purpose": "backup"}).status_code == 200
    finally:
        app.server.extensions["pheoc.ratelimit"] = saved


def test_the_page_gives_the_same_answer_and_audits_it(city):
    """The page's check callback, posted as the browser would, calls the same function."""
    app = city["app"]
    client = _client(city, "op-one")
    key = next(k for k, e in app.callback_map.items() if "callback" in e and "address-check-answer" in k)
    body = _body(key, app.callback_map[key], _components(app))
    for item in body["state"]:
        item["value"] = {"address-check-address": city["active"].address_id,
                         "address-check-purpose": "radio request from patrol"}[item["id"]]
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 200
    card = r.get_json()["response"]["address-check-answer"]["children"]["props"]
    assert card["data-flag"] == "true" and card["data-zone-tier"] == "red"
    assert _audits(city["store"], "op-one")[-1]["purpose"] == "radio request from patrol"
    # Without a purpose the page asks for one and nothing is checked.
    for item in body["state"]:
        if item["id"] == "address-check-purpose":
            item["value"] = ""
    r = client.post("/_dash-update-component", json=body)
    assert "purpose" in json.dumps(r.get_json()) and len(_audits(city["store"], "op-one")) == 1


def test_address_search_endpoint(city):
    client = _client(city, "cop-all")
    text = city["active"].text
    found = client.get("/api/v1/addresses", query_string={"q": text.lower()[:12]}).get_json()["addresses"]
    assert found and all(set(a) == {"id", "text"} for a in found)
    assert _client(city).get("/api/v1/addresses", query_string={"q": "1"}).status_code == 401
    assert client.get("/api/v1/addresses").status_code == 400
