"""The administrator's pages through the real app: /audit (the log and its chain check), /users
(disable, enable, end sessions, audited), and a navigation bar that lists only pages the caller may open."""
from __future__ import annotations

import json

import dash
import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client
from tests.test_callback_authz import _body, _components

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def admin_app(demo_city, tmp_path_factory):
    from auth.principal import SIGNED_IN_ROLES

    dsettings, _ = demo_city
    app, store, _settings = app_on_copy(dsettings, tmp_path_factory.mktemp("admin"),
                                        [(f"a-{role.replace('_', '-')}", role) for role in SIGNED_IN_ROLES])
    yield app, store
    close_app(app, store)


def _call(app, client, output_fragment: str, first_input=None):
    components = _components(app)
    key = next(k for k, e in app.callback_map.items() if "callback" in e and output_fragment in k)
    body = _body(key, app.callback_map[key], components)
    if first_input is not None:
        body["inputs"][0] = first_input
        changed = first_input[0] if isinstance(first_input, list) else first_input
        cid = changed["id"]
        cid = json.dumps(cid, separators=(",", ":"), sort_keys=True) if isinstance(cid, dict) else cid
        body["changedPropIds"] = [f"{cid}.{changed['property']}"]
    return client.post("/_dash-update-component", json=body)


def _nav(app, client) -> list[str]:
    layout = client.get("/_dash-layout").get_json()
    found = []

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if node.get("type") == "Link" and "nav-link" in str(props.get("className", "")):
                found.append(props.get("href"))
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(layout)
    return sorted(found)


@pytest.mark.parametrize("role", ["public", "operator", "executive", "police", "analyst", "data_manager", "admin"])
def test_the_navigation_lists_only_pages_the_role_may_open(admin_app, role):
    from auth.callbacks import permissions_of_module
    from auth.principal import principal_for, public_principal
    from auth.principal import may_open_page

    app, _ = admin_app
    client = app.server.test_client()
    principal = public_principal()
    if role != "public":
        assert sign_in_client(client, f"a-{role.replace('_', '-')}").status_code == 303
        principal = principal_for("x", role)
    links = _nav(app, client)
    expected = sorted(p["relative_path"] for p in dash.page_registry.values()
                      if may_open_page(principal, p["module"], permissions_of_module(p["module"])))
    assert links == expected and "/" in links
    for href in set(p["relative_path"] for p in dash.page_registry.values()) - set(links):
        assert client.get(href).status_code in (302, 403), href  # a page left out is one that would refuse
    if role == "admin":
        assert links == ["/", "/audit", "/users"]
    if role == "public":
        assert links == ["/"]


def test_the_audit_page_lists_the_log_and_checks_the_chain(admin_app):
    app, store = admin_app
    client = app.server.test_client()
    assert sign_in_client(client, "a-admin").status_code == 303
    table = _call(app, client, "audit-table")
    assert table.status_code == 200 and "login" in table.get_data(as_text=True)
    check = _call(app, client, "audit-check-result", {"id": "audit-check", "property": "n_clicks", "value": 1})
    assert check.status_code == 200 and '"data-chain": "ok"' in check.get_data(as_text=True).replace('":"', '": "')
    operator = app.server.test_client()
    assert sign_in_client(operator, "a-operator").status_code == 303
    assert _call(app, operator, "audit-table").status_code == 403


def test_an_admin_disables_and_enables_a_user_and_ends_sessions(admin_app):
    from store import queries_access as qa
    from store import queries_audit as qau

    app, store = admin_app
    analyst = app.server.test_client()
    assert sign_in_client(analyst, "a-analyst").status_code == 303
    admin = app.server.test_client()
    assert sign_in_client(admin, "a-admin").status_code == 303
    listing = _call(app, admin, "users-table").get_data(as_text=True)
    assert "a-analyst" in listing and "Public-health analyst" in listing

    def act(user: str, action: str) -> str:
        item = {"id": {"type": "users-action", "user": user, "action": action}, "property": "n_clicks", "value": 1}
        response = _call(app, admin, "users-status", [item])
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["response"]["users-status"]["children"]

    assert act("a-analyst", "disable").startswith("a-analyst disabled, ")  # the nav test signed in too
    assert qa.get_user(store, "a-analyst").disabled
    assert _call(app, analyst, "ew-asof").status_code == 403  # the session ended with the account
    assert act("a-analyst", "enable") == "a-analyst enabled"
    assert act("a-admin", "disable").startswith("Not done: you cannot lock yourself out")
    assert not qa.get_user(store, "a-admin").disabled
    store.flush()
    actions = set(qau.audit_page(store, actor="a-admin", limit=20)["action"])
    assert {"user_disabled", "user_enabled"} <= actions
