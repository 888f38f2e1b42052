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
