"""Refreshes redraw only what changed (pages._redraw): the sensors page's panels and list and the alert
inbox's table are sent once, then left alone while their content is the same, so a focused button or a
note being typed survives the refresh; a change is sent again. Posted to /_dash-update-component as
the browser posts a refresh tick."""
from __future__ import annotations

import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client
from tests.test_callback_authz import _body, _components

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redraw_app(computed_city, tmp_path_factory):
    settings, _, _ = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("redraw"), (("rd-op", "operator"),))
    client = app.server.test_client()
    assert sign_in_client(client, "rd-op").status_code == 303
    yield app, store, client
    close_app(app, store)


def _tick(app, client, output_id: str, drawn_id: str, drawn):
    key = next(k for k in app.callback_map if f"..{output_id}." in k or k.startswith(f"{output_id}."))
    body = _body(key, app.callback_map[key], _components(app))
    for item in body["state"]:
        if item["id"] == drawn_id:
            item["value"] = drawn
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.get_data(as_text=True)[:300]
    return {} if response.status_code == 204 else response.get_json()["response"]


def test_a_refresh_with_nothing_new_sends_nothing_again(redraw_app):
    from pages import _ids as ids

    app, _, client = redraw_app
    first = _tick(app, client, ids.SENSORS_LIST, ids.SENSORS_DRAWN, None)
    assert {ids.SENSORS_LIST, ids.SENSORS_PANELS, ids.SENSORS_MAP, ids.SENSORS_DRAWN} <= set(first)
    drawn = first[ids.SENSORS_DRAWN]["data"]
    again = _tick(app, client, ids.SENSORS_LIST, ids.SENSORS_DRAWN, drawn)
    assert not {ids.SENSORS_LIST, ids.SENSORS_PANELS, ids.SENSORS_MAP, ids.SENSORS_DRAWN} & set(again)
    # A browser that shows something else (a stale list) is sent the list again, and only what differs.
    stale = {**drawn, "list": "0" * 24}
    changed = _tick(app, client, ids.SENSORS_LIST, ids.SENSORS_DRAWN, stale)
    assert ids.SENSORS_LIST in changed and ids.SENSORS_PANELS not in changed
    assert changed[ids.SENSORS_DRAWN]["data"] == drawn


def test_the_alert_table_is_redrawn_when_an_alert_changes(redraw_app):
    from auth.principal import principal_for
    from pages import _ids as ids
    from services import alert_inbox as inbox

    app, store, client = redraw_app
    first = _tick(app, client, ids.ALERTS_TABLE, ids.ALERTS_TABLE_DRAWN, None)
    drawn = first[ids.ALERTS_TABLE_DRAWN]["data"]
    assert ids.ALERTS_TABLE not in _tick(app, client, ids.ALERTS_TABLE, ids.ALERTS_TABLE_DRAWN, drawn)
    target = int(inbox.alert_inbox(store, principal_for("rd-op", "operator"), state="active").rows["alert_id"].iloc[0])
    inbox.act_on_alert(store, principal_for("rd-op", "operator"), target, "acknowledge", note="seen")
    after = _tick(app, client, ids.ALERTS_TABLE, ids.ALERTS_TABLE_DRAWN, drawn)
    assert ids.ALERTS_TABLE in after and after[ids.ALERTS_TABLE_DRAWN]["data"] != drawn


def _alerts_tick(app, client, page, changed: str | None = None):
    """A refresh of the inbox asking for ``page``; ``changed`` names the input that fired (default the tick)."""
    from pages import _ids as ids

    key = next(k for k in app.callback_map if f"..{ids.ALERTS_TABLE}." in k)
    body = _body(key, app.callback_map[key], _components(app))
    for item in body["inputs"]:
        if item["id"] == ids.ALERTS_PAGE:
            item["value"] = page
        if changed and item["id"] == changed:
            body["changedPropIds"] = [f"{changed}.{item['property']}"]
    response = client.post("/_dash-update-component", json=body)
    return response.status_code, (response.get_json() or {}).get("response", {}) if response.status_code == 200 else {}


def test_the_inbox_is_shown_a_page_of_rows_at_a_time_most_urgent_first(redraw_app, monkeypatch):
    from auth.principal import principal_for
    from pages import _ids as ids
    from services import alert_inbox as inbox

    # The demo city's two dozen open alerts in pages of 10 (the page holds 50).
    PAGE_ROWS = 10
    import importlib
    monkeypatch.setattr(importlib.import_module("pages.alerts"), "PAGE_ROWS", PAGE_ROWS)
    app, store, client = redraw_app
    total = inbox.alert_inbox(store, principal_for("rd-op", "operator"), state="open").total
    assert total > 2 * PAGE_ROWS, "the demo city should have more open alerts than two pages"
    rows = inbox.alert_inbox(store, principal_for("rd-op", "operator"), state="open").rows
    pages = -(-total // PAGE_ROWS)
    status, first = _alerts_tick(app, client, 0)
    assert status == 200
    assert len(first[ids.ALERTS_PAGE]["options"]) == pages and ids.ALERTS_PAGE not in first or \
        first[ids.ALERTS_PAGE].get("value") in (None, 0)
    assert str(first).count("alert-state") == PAGE_ROWS and f"rows 1–{PAGE_ROWS} shown" in str(first)
    _, second = _alerts_tick(app, client, 1)
    assert f"rows {PAGE_ROWS + 1}–{2 * PAGE_ROWS} shown" in str(second) and "value" not in second[ids.ALERTS_PAGE]
    # Most urgent first: page 1 holds the inbox's rows 11-20 in its order, and only those.
    assert all(f"'alert': {a}" in str(second) or f'"alert": {a}' in str(second)
               for a in rows["alert_id"].iloc[PAGE_ROWS:2 * PAGE_ROWS])
    assert not any(f"'alert': {a}," in str(second) for a in rows["alert_id"].iloc[:PAGE_ROWS])
    # Past the end (alerts resolved meanwhile): the last page, and the control says so.
    _, beyond = _alerts_tick(app, client, pages + 5)
    assert beyond[ids.ALERTS_PAGE]["value"] == pages - 1 and f"–{total} shown" in str(beyond)
    # Another filter starts again at the most urgent rows.
    _, refiltered = _alerts_tick(app, client, 1, changed=ids.ALERTS_SEVERITY)
    assert refiltered[ids.ALERTS_PAGE]["value"] == 0
    # A page that is not a whole number is the first page or refused, never an error.
    status, odd = _alerts_tick(app, client, "1; drop table alerts")
    assert status == 400 or (status == 200 and "rows 1–" in str(odd))


def test_a_part_kept_as_its_plain_tree_has_the_fingerprint_of_the_part_itself():
    from dash import dcc, html, no_update

    from pages._redraw import fingerprint, only_changed, plain, prepared

    part = [html.Div("3 signal(s)", className="asof"),
            html.Table([html.Tr([html.Td("a"), html.Td(html.Button("Ack", id={"type": "x", "alert": 1}))])]),
            dcc.Graph(figure={"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4]}], "layout": {}})]
    trees, prints = prepared({"table": part})
    assert prints["table"] == fingerprint(part)  # served from the cache or built anew: one fingerprint
    assert "to_plotly_json" not in repr(type(trees["table"][0])) and isinstance(trees["table"][0], dict)
    assert plain(trees) == trees  # already plain: unchanged
    drawn, (sent,) = only_changed(None, trees, prints)
    assert sent == trees["table"] and drawn == prints
    assert only_changed(drawn, trees, prints) == (no_update, [no_update])


def test_the_lead_table_lists_the_clearest_samplers_and_every_one_when_asked():
    import pandas as pd

    from components.sensors import lead_table

    leads = pd.DataFrame({"name": [f"sampler {i}" for i in range(30)], "lag_days": [5] * 30,
                          "correlation": [i / 40 for i in range(30)], "days_used": [60] * 30})
    few = str(lead_table(leads, None, limit=12))
    assert few.count("'sampler ") == 12 and "sampler 29" in few and "sampler 17" not in few
    assert "The 12 samplers of the clearest lead" in few and "of 30" in few
    every = str(lead_table(leads, None, limit=None))
    assert every.count("'sampler ") == 30 and "clearest lead" not in every
