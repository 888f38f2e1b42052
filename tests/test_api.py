"""The JSON API under /api/v1 through the real app: credentials (session, bearer token, none), errors
as JSON naming the parameter, the OpenAPI document, tokens made by the CLI, and the audit of reads."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client

pytestmark = pytest.mark.slow
ENDPOINTS = ("/api/v1/indicators", "/api/v1/areas", "/api/v1/capacity", "/api/v1/clusters", "/api/v1/zones",
             "/api/v1/alerts", "/api/v1/audit", "/api/v1/openapi.json")
PUBLIC = {"/api/v1/indicators", "/api/v1/areas", "/api/v1/openapi.json"}


@pytest.fixture(scope="module")
def api(computed_city, tmp_path_factory):
    from auth.tokens import create_token

    settings, _, _today = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("api"),
                                       (("api-op", "operator"), ("api-admin", "admin"), ("api-cop", "police")))
    tokens = {role: create_token(store, f"bot-{role}", role, (), "test") for role in ("operator", "admin", "police")}
    yield app, store, settings, tokens
    close_app(app, store)


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_every_endpoint_is_described_by_the_openapi_document(api):
    from openapi_spec_validator import validate

    app, *_ = api
    client = app.server.test_client()
    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    # Flask's <int:alert_id> is OpenAPI's {alert_id}.
    served = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in app.server.url_map.iter_rules()
              if r.rule.startswith("/api/v1/")}
    assert set(ENDPOINTS) <= served
    assert {"/api/v1" + p for p in doc["paths"]} == served
    required = set(doc["components"]["schemas"]["Indicators"]["properties"]["indicators"]["required"])
    assert {"new_cases_24h", "new_cases_7d", "incidence_7d_per_100k", "test_positivity_7d", "bed_occupancy",
            "icu_occupancy", "rt", "days_to_bed_threshold", "active_alerts"} <= required


def test_without_credentials_the_public_subset_and_401_elsewhere(api):
    app, store, settings, _ = api
    client = app.server.test_client()
    for path in ENDPOINTS:
        response = client.get(path)
        if path in PUBLIC:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 401, path
            body = response.get_json()
            assert body["error"]["code"] == "credentials_required" and "Traceback" not in response.get_data(True)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = client.get("/api/v1/indicators").get_json()
    assert body["area"] == {"id": "citywide", "name": "Citywide"}
    figures = body["indicators"]
    assert 0 <= figures["test_positivity_7d"]["value"] <= 1 and figures["bed_occupancy"]["unit"] == "of beds"
    assert all(set(f) == {"value", "unit", "label", "definition", "suppressed", "display"} for f in figures.values())
    areas = client.get("/api/v1/areas").get_json()["areas"]
    assert {"boundary", "community", "precinct"} <= {a["kind"] for a in areas}
    assert all(set(a["centroid"]) == {"lat", "lng"} for a in areas)


def test_small_area_counts_are_withheld_for_the_public_but_not_for_case_level(api):
    from services.indicators import disclosed_day_table

    app, store, settings, _ = api
    from auth.principal import principal_for, public_principal
    from store import queries_indicators as qi
    day = qi.latest_indicator_day(store)
    public = disclosed_day_table(store, settings, public_principal(), day)
    withheld = public[public["new_cases_24h__suppressed"]]
    assert len(withheld), "the demo city has areas with 1-4 cases on the day"
    area = withheld["area_id"].iloc[0]
    body = app.server.test_client().get(f"/api/v1/indicators?area={area}").get_json()["indicators"]
    assert body["new_cases_24h"] == {**body["new_cases_24h"], "value": None, "suppressed": True,
                                     "display": f"<{settings.privacy.min_count}"}
    manager = disclosed_day_table(store, settings, principal_for("dm", "data_manager"), day)
    assert not manager["new_cases_24h__suppressed"].any()


@pytest.mark.parametrize("query, parameter", [
    ("date=2026-13-01", "date"), ("date=yesterday", "date"), ("area=nowhere", "area"), ("colour=red", "colour"),
    ("area=citywide&area=citywide", "area")])
def test_bad_parameters_are_400_naming_the_parameter(api, query, parameter):
    app, *_ = api
    response = app.server.test_client().get(f"/api/v1/indicators?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["parameter"] == parameter


def test_a_day_without_indicators_is_404_and_a_stored_day_is_returned(api):
    app, store, settings, _ = api
    from store import queries_indicators as qi
    client = app.server.test_client()
    assert client.get("/api/v1/indicators?date=1999-01-01").status_code == 404
    day = qi.latest_indicator_day(store) - timedelta(days=7)
    body = client.get(f"/api/v1/indicators?date={day.isoformat()}").get_json()
    assert body["as_of"] == day.isoformat()
    stored = qi.indicator_table(store, day)["citywide"]["new_cases_7d"]
    assert body["indicators"]["new_cases_7d"]["value"] == stored


def test_tokens_act_with_their_role_and_every_use_is_audited(api):
    from auth.policy import AUDIT_BUFFER_KEY
    from store import queries_audit as qau

    app, store, settings, tokens = api
    client = app.server.test_client()
    assert client.get("/api/v1/capacity", headers=_bearer(tokens["operator"])).status_code == 200
    assert client.get("/api/v1/audit", headers=_bearer(tokens["operator"])).status_code == 403
    audit = client.get("/api/v1/audit?action=token_added", headers=_bearer(tokens["admin"]))
    assert audit.status_code == 200 and {r["target"] for r in audit.get_json()["records"]} >= {
        "token:bot-operator", "token:bot-admin"}
    assert client.get("/api/v1/capacity", headers=_bearer(tokens["police"])).status_code == 403
    app.server.extensions[AUDIT_BUFFER_KEY].flush()
    used = qau.audit_page(store, action="api_token_used", limit=50)
    assert {"token:bot-operator", "token:bot-admin"} <= set(used["actor"])
    # A bad token is 401, never the public's answer.
    for header in ("Bearer pheoc_not-a-token", "Bearer nothing", "Basic abc"):
        response = client.get("/api/v1/indicators", headers={"Authorization": header})
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "bad_credentials"


def test_revoked_tokens_stop_working(api):
    from auth.tokens import create_token, revoke_token
    app, store, *_ = api
    token = create_token(store, "short-lived", "operator", (), "test")
    client = app.server.test_client()
    assert client.get("/api/v1/alerts", headers=_bearer(token)).status_code == 200
    assert revoke_token(store, "short-lived", "test")
    assert client.get("/api/v1/alerts", headers=_bearer(token)).status_code == 401


def test_a_signed_in_session_reads_the_api_and_forbidden_is_403_json(api):
    app, *_ = api
    client = app.server.test_client()
    assert sign_in_client(client, "api-cop").status_code == 303
    assert client.get("/api/v1/clusters").status_code == 200
    forbidden = client.get("/api/v1/capacity")
    assert forbidden.status_code == 403 and forbidden.get_json()["error"]["code"] == "forbidden"
    alerts = client.get("/api/v1/alerts?state=all&limit=5").get_json()
    assert alerts["total"] >= len(alerts["alerts"]) and len(alerts["alerts"]) <= 5
    assert client.get("/api/v1/alerts?state=maybe").get_json()["error"]["parameter"] == "state"


def test_reads_of_cells_are_audited_with_user_resource_parameters_and_rows(api):
    """One overview refresh by a signed-in operator: one data_access record for the map's cells; the
    tiles (area and city figures) and the public's refreshes write none."""
    import json

    from auth.policy import AUDIT_BUFFER_KEY
    from tests.test_callback_authz import _body, _components
    from store import queries_audit as qau

    app, store, *_ = api
    components = _components(app)
    key = next(k for k, e in app.callback_map.items() if "callback" in e and "overview-kpis" in k)
    app.server.extensions[AUDIT_BUFFER_KEY].flush()  # what earlier tests read is in the log before we start
    before = int(qau.audit_page(store, limit=1)["seq"].max())
    public = app.server.test_client()
    assert public.post("/_dash-update-component", json=_body(key, app.callback_map[key], components)).status_code == 200
    client = app.server.test_client()
    assert sign_in_client(client, "api-op").status_code == 303
    assert client.post("/_dash-update-component", json=_body(key, app.callback_map[key], components)).status_code == 200
    assert client.get("/api/v1/indicators").status_code == 200  # areas and the city only: not a cell-level read
    app.server.extensions[AUDIT_BUFFER_KEY].flush()
    records = qau.audit_page(store, action="data_access", limit=20)
    mine = records[records["seq"] > before]
    assert list(zip(mine["actor"], mine["target"])) == [("api-op", "overview.case_cells")]
    detail = json.loads(mine["detail"].iloc[0])
    cells = store.scalar("SELECT count(DISTINCT h3_cell) FROM counted_cases WHERE reported_date > "
                         "(SELECT max(day) FROM indicator_values) - 14")
    assert detail["level"] == "cells" and detail["rows"] == cells and detail["role"] == "operator"
    assert "overview-kpis" in detail["params"]["callback"] and "n_intervals" in detail["params"]["inputs"]
