"""The alert inbox (/alerts, GET /api/v1/alerts): one row per series and area, filters, and acknowledging
and resolving from the page (a real Dash callback POST) and through the API, each audited; refusals
for roles without acknowledge_alerts, for the public, and for cross-site posts with a session."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inbox_app(computed_city, tmp_path_factory):
    from auth.tokens import create_token

    settings, _, _ = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("inbox"),
                                       (("in-op", "operator"), ("in-analyst", "analyst"), ("in-cop", "police"),
                                        ("in-exec", "executive")))
    token = create_token(store, "inbox-bot", "operator", (), "test")
    yield app, store, settings, token
    close_app(app, store)


def _client(app, user=None):
    client = app.server.test_client()
    if user:
        assert sign_in_client(client, user).status_code == 303
    return client


def _audit(store, action):
    store.flush()
    return store.read("SELECT actor, target, detail FROM audit_log WHERE action = ? ORDER BY seq", [action])


def test_series_drop_the_day_and_the_tier():
    from services.alert_inbox import series_of
    assert series_of("aberration", "ew:aberration:cases:C12:2026-11-21", 7) == "ew:aberration:cases:C12"
    assert series_of("cluster_zone", "cluster_zone:C1:core:red:2026-12-02", 1) == "cluster_zone:C1:core"
    assert series_of("cluster_zone", "cluster_zone:C1:core:orange:2026-11-30", 2) == "cluster_zone:C1:core"
    assert series_of("capacity_forecast", None, 9) == "alert:9"


def test_a_signal_that_fires_again_is_one_row_with_its_episodes(inbox_app):
    """Three episodes of one series (two resolved by the job) and a zone's escalation: one row each."""
    from services.alert_inbox import alert_inbox
    from auth.principal import principal_for

    app, store, *_ = inbox_app
    now = datetime.now(timezone.utc)
    series = store.scalar("SELECT dedupe_key FROM alerts WHERE kind = 'aberration' ORDER BY alert_id LIMIT 1")
    prefix = series.rsplit(":", 1)[0]
    before = alert_inbox(store, principal_for("x", "operator"), state="all").total
    for days, status in ((40, "resolved"), (25, "resolved")):
        day = (now - timedelta(days=days)).date().isoformat()
        store.write("""INSERT INTO alerts (raised_at, severity, kind, area_id, title, detail, status, dedupe_key,
                       resolved_at) VALUES (?, 'warning', 'aberration', NULL, 'earlier', '', ?, ?, ?)""",
                    [now - timedelta(days=days), status, f"{prefix}:{day}", now - timedelta(days=days - 3)])
    for tier, days in (("orange", 3), ("red", 1)):
        store.write("""INSERT INTO alerts (raised_at, severity, kind, area_id, title, detail, status, dedupe_key)
                       VALUES (?, 'critical', 'cluster_zone', 'C01', ?, '', 'active', ?)""",
                    [now - timedelta(days=days), f"Cluster T-1 {tier}",
                     f"cluster_zone:T-1:core:{tier}:{(now - timedelta(days=days)).date()}"])
    listed = alert_inbox(store, principal_for("x", "operator"), state="all")
    assert listed.total == before + 1  # the zone is one new row; the earlier episodes joined their series
    row = listed.rows[listed.rows["series"] == prefix].iloc[0]
    assert row["episodes"] == 3 and row["state"] != "resolved" and row["title"] != "earlier"
    zone = listed.rows[listed.rows["series"] == "cluster_zone:T-1:core"].iloc[0]
    assert zone["episodes"] == 2 and zone["title"] == "Cluster T-1 red"
    # Open rows come first, the most severe first.
    is_open = list(listed.rows["state"] != "resolved")
    assert is_open == sorted(is_open, reverse=True)
    assert listed.rows.iloc[0]["severity"] == "critical"


def test_filters_by_kind_area_severity_and_state_and_bad_ones_name_the_parameter(inbox_app):
    app, store, _, token = inbox_app
    client = app.server.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    every = client.get("/api/v1/alerts?state=all", headers=auth).get_json()
    assert every["total"] == len(every["alerts"]) and "aberration" in every["kinds"]
    assert len({a["series"] for a in every["alerts"]}) == len(every["alerts"])
    area = next(a["area"]["id"] for a in every["alerts"] if a["area"])
    for query, check in (("kind=aberration", lambda a: a["kind"] == "aberration"),
                         (f"area={area}", lambda a: a["area"] and a["area"]["id"] == area),
                         ("severity=warning", lambda a: a["severity"] == "warning"),
                         ("state=active", lambda a: a["status"] == "active")):
        got = client.get(f"/api/v1/alerts?state=all&{query}" if "state" not in query else f"/api/v1/alerts?{query}",
                         headers=auth).get_json()["alerts"]
        assert got and all(check(a) for a in got), query
    for query, parameter in (("severity=loud", "severity"), ("state=maybe", "state"), ("colour=red", "colour")):
        response = client.get(f"/api/v1/alerts?{query}", headers=auth)
        assert response.status_code == 400 and response.get_json()["error"]["parameter"] == parameter


def test_acknowledging_through_the_api_is_audited_and_shown(inbox_app):
    app, store, _, token = inbox_app
    client = _client(app, "in-op")
    alert = client.get("/api/v1/alerts?state=active").get_json()["alerts"][0]
    response = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": "team sent to check"})
    assert response.status_code == 200 and response.get_json()["alert"]["status"] == "acknowledged"
    records = _audit(store, "alert_acknowledged")
    last = records.iloc[-1]
    assert last["actor"] == "in-op" and last["target"] == f"alert:{alert['id']}"
    detail = json.loads(last["detail"])
    assert detail["note"] == "team sent to check" and detail["from"] == "active" and detail["role"] == "operator"
    shown = next(a for a in client.get("/api/v1/alerts?state=all").get_json()["alerts"] if a["id"] == alert["id"])
    assert shown["status"] == "acknowledged" and shown["acknowledged"]["by"] == "in-op"
    assert shown["acknowledged"]["note"] == "team sent to check"
    # Acknowledged twice: a conflict, nothing written. Then resolved, with a bearer token (no session, no CSRF).
    assert client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={}).status_code == 409
    bot = app.server.test_client()
    resolved = bot.post(f"/api/v1/alerts/{alert['id']}/resolve", json={"note": "false alarm"},
                        headers={"Authorization": f"Bearer {token}"})
    assert resolved.status_code == 200 and resolved.get_json()["alert"]["status"] == "resolved"
    assert _audit(store, "alert_resolved").iloc[-1]["actor"] == "token:inbox-bot"
    assert store.scalar("SELECT status FROM alerts WHERE alert_id = ?", [alert["id"]]) == "resolved"
    assert client.post("/api/v1/alerts/999999/acknowledge", json={}).status_code == 404


def test_roles_without_the_permission_the_public_and_cross_site_posts_are_refused(inbox_app):
    app, store, *_ = inbox_app
    op = _client(app, "in-op")
    target = op.get("/api/v1/alerts?state=active").get_json()["alerts"][0]["id"]
    assert app.server.test_client().post(f"/api/v1/alerts/{target}/acknowledge", json={}).status_code == 401
    for user in ("in-cop", "in-exec"):
        response = _client(app, user).post(f"/api/v1/alerts/{target}/acknowledge", json={})
        assert response.status_code == 403
        assert _audit(store, "policy_denied").iloc[-1]["actor"] == user
    # A form post (what another site could make the browser send) and a post naming another origin.
    assert op.post(f"/api/v1/alerts/{target}/acknowledge", data={"note": "x"}).status_code == 415
    assert op.post(f"/api/v1/alerts/{target}/acknowledge", json={},
                   headers={"Origin": "https://evil.example"}).status_code == 403
    assert op.post(f"/api/v1/alerts/{target}/acknowledge", json={},
                   headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert op.post(f"/api/v1/alerts/{target}/acknowledge", json={"note": 5}).status_code == 400
    assert op.post(f"/api/v1/alerts/{target}/acknowledge", json={"bogus": 1}).get_json()["error"]["parameter"] == \
        "bogus"
    assert store.scalar("SELECT status FROM alerts WHERE alert_id = ?", [target]) == "active"


def _callback_body(app, output_prefix: str, inputs: list, state: list) -> dict:
    key = next(k for k in app.callback_map if k.startswith(output_prefix) and "callback" in app.callback_map[k])
    entry = app.callback_map[key]
    return {"output": key, "outputs": {"id": output_prefix.split(".")[0], "property": "children"},
            "inputs": inputs, "state": state,
            "changedPropIds": [json.dumps(inputs[0][0]["id"], sort_keys=True, separators=(",", ":")) + ".n_clicks"]
            if entry else []}


def test_acknowledging_from_the_page_is_audited(inbox_app):
    """The page's Acknowledge button, posted to /_dash-update-component as the browser sends it."""
    from pages import _ids as ids

    app, store, *_ = inbox_app
    analyst = _client(app, "in-analyst")
    target = analyst.get("/api/v1/alerts?state=active").get_json()["alerts"][0]["id"]
    button = {"type": ids.ALERTS_ACTION, "alert": target, "action": "acknowledge"}
    body = _callback_body(app, f"{ids.ALERTS_STATUS}.children",
                          [[{"id": button, "property": "n_clicks", "value": 1}]],
                          [[{"id": {"type": ids.ALERTS_NOTE, "alert": target}, "property": "value",
                             "value": "called the district office"}]])
    response = analyst.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert f"Alert {target} acknowledged" in response.get_data(as_text=True)
    last = _audit(store, "alert_acknowledged").iloc[-1]
    assert last["actor"] == "in-analyst" and json.loads(last["detail"])["note"] == "called the district office"
    # The executive may read the inbox but not act: the same post is refused and logged.
    response = _client(app, "in-exec").post("/_dash-update-component", json=body)
    assert response.status_code == 403
    assert _audit(store, "policy_denied").iloc[-1]["actor"] == "in-exec"


def test_the_overview_tile_opens_the_inbox(inbox_app):
    from tests.test_callback_authz import _body, _components

    app, *_ = inbox_app
    client = _client(app, "in-op")
    key = next(k for k in app.callback_map if k.startswith("..overview-kpis"))
    response = client.post("/_dash-update-component", json=_body(key, app.callback_map[key], _components(app)))
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    tile = next(c for c in response.get_json()["response"]["overview-kpis"]["children"]
                if c["props"].get("data-indicator") == "active_alerts")
    link = tile["props"]["children"][-1]
    assert link["type"] == "Link" and link["props"]["href"] == "/alerts"
    assert client.get("/alerts").status_code == 200
    assert _client(app).get("/alerts").status_code == 302  # the public is sent to sign in
