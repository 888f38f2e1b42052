"""Every registered Dash callback x every role and no session: POST /_dash-update-component.

The callbacks are discovered from the app's callback_map after the first request (when Dash has
collected them), so callbacks that pages add later are covered without editing this test. Inputs
carry the values the page layouts give them, as the browser would send on first render. Each
unauthorised call must be HTTP 403 and leave a ``policy_denied`` record naming the caller; each
authorised call must succeed (200, or 204 when the callback declines to update).
"""
from __future__ import annotations

import shutil

import dash
import pytest

from tests.auth_helpers import FAST_AUTH, TEST_PASSWORD, sign_in_client
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
ROUTER_OUTPUT = "_pages_content.children"


@pytest.fixture(scope="module")
def authz(demo_city, tmp_path_factory):
    from app import create_app
    from auth.users import add_user
    from services.access import SIGNED_IN_ROLES
    from store import Store

    dsettings, _ = demo_city
    folder = tmp_path_factory.mktemp("authz")
    db = folder / "pheoc.duckdb"
    shutil.copy(dsettings.path(dsettings.store.path), db)
    settings = dsettings.with_overrides(store=dsettings.store.model_copy(update={"path": db}),
                                        auth=dsettings.auth.model_copy(update=FAST_AUTH),
                                        base_dir=ROOT)  # rulebooks and other relative paths: the project's
    store = Store(db)
    app = create_app(settings, store)
    svc = app.server.extensions["pheoc.auth"]
    for role in SIGNED_IN_ROLES:
        add_user(store, svc.passwords, f"t-{role.replace('_', '-')}", role, TEST_PASSWORD, actor="test")
    assert app.server.test_client().get("/").status_code == 200  # Dash collects callbacks, adds its router
    yield app, store
    store.close()


def _components_by_id(app) -> dict:
    """Every component with an id in the shell and in every page's layout (what the browser would render)."""
    found: dict = {}

    def walk(node):
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
            return
        if not hasattr(node, "to_plotly_json"):
            return
        cid = getattr(node, "id", None)
        if cid is not None:
            found[str(cid)] = node
        walk(getattr(node, "children", None))

    with app.server.test_request_context("/"):
        walk(app.layout() if callable(app.layout) else app.layout)
        for page in dash.page_registry.values():
            layout = page["layout"]
            walk(layout() if callable(layout) else layout)
    return found


def _value(components: dict, dep: dict):
    component = components.get(str(dep["id"]))
    value = getattr(component, dep["property"], None) if component is not None else None
    if value is None and dep["property"] == "n_intervals":
        return 0
    return value


def _body(key: str, entry: dict, components: dict, overrides: dict | None = None) -> dict:
    outputs = [{"id": o.component_id, "property": o.component_property} for o in
               (entry["output"] if isinstance(entry["output"], list) else [entry["output"]])]
    inputs = [dict(d, value=(overrides or {}).get(d["property"], _value(components, d))) for d in entry["inputs"]]
    state = [dict(d, value=_value(components, d)) for d in entry.get("state", [])]
    return {"output": key, "outputs": outputs if isinstance(entry["output"], list) else outputs[0],
            "inputs": inputs, "state": state, "changedPropIds": [f"{d['id']}.{d['property']}" for d in inputs]}


def _principals():
    from services.access import SIGNED_IN_ROLES
    return [None, *SIGNED_IN_ROLES]


def _expect_page(role: str, module: str) -> bool:
    """The page table read straight from the data (not through the code under test)."""
    from pages._secure import CALLBACK_PERMISSIONS
    from services.access import PAGE_PERMISSIONS, role_permissions
    held = role_permissions(role)
    if module in PAGE_PERMISSIONS:
        return PAGE_PERMISSIONS[module] in held
    used = {p for k, p in CALLBACK_PERMISSIONS.items() if k.rsplit(".", 1)[0] == module}
    return role != "public" and (not used or bool(used & held))


def test_every_callback_declares_a_known_permission(authz):
    from auth.web import callback_key
    from pages._secure import CALLBACK_PERMISSIONS
    from services.access import PERMISSIONS
    app, _ = authz
    served = [e for e in app.callback_map.values() if "callback" in e]  # clientside ones never reach the server
    assert len(served) >= 2
    for entry in served:
        key = callback_key(entry["callback"])
        if ROUTER_OUTPUT in str(entry["output"]):
            continue
        assert key in CALLBACK_PERMISSIONS, f"{key} was registered without pages._secure.secure_callback"
        assert CALLBACK_PERMISSIONS[key] in PERMISSIONS


@pytest.mark.parametrize("role", _principals(), ids=lambda r: r or "no-session")
def test_every_callback_as_every_role(authz, role):
    from auth.web import callback_key
    from pages._secure import CALLBACK_PERMISSIONS
    from services.access import role_permissions
    from store import queries_access as qa

    app, store = authz
    client = app.server.test_client()
    actor = "anonymous"
    if role is not None:
        actor = f"t-{role.replace('_', '-')}"
        assert sign_in_client(client, actor).status_code == 303
    effective = role or "public"
    held = role_permissions(effective)
    components = _components_by_id(app)
    calls = []
    for key, entry in app.callback_map.items():
        if "callback" not in entry:
            continue
        if ROUTER_OUTPUT in key:
            for page in dash.page_registry.values():
                path = page["path"]
                calls.append((key, entry, {"pathname": path, "search": ""}, f"page:{path}",
                              _expect_page(effective, page["module"])))
        else:
            permission = CALLBACK_PERMISSIONS[callback_key(entry["callback"])]
            calls.append((key, entry, None, permission, permission in held))
    assert calls
    failures = []
    for key, entry, overrides, target, allowed in calls:
        store.flush()
        before = qa.audit_head(store)
        response = client.post("/_dash-update-component", json=_body(key, entry, components, overrides))
        store.flush()
        if allowed:
            if response.status_code not in (200, 204):
                failures.append(f"{target} ({key}): allowed for {effective} but got {response.status_code}: "
                                f"{response.get_data(as_text=True)[:300]}")
            continue
        if response.status_code != 403:
            failures.append(f"{target} ({key}): not allowed for {effective} but got {response.status_code}")
            continue
        last = qa.audit_tail(store, 1)[0]
        if before is not None and last.seq == before[0]:
            failures.append(f"{target}: refused but nothing was written to the audit log")
        elif (last.action, last.actor, last.target) != ("policy_denied", actor, target):
            failures.append(f"{target}: refused but logged as {(last.action, last.actor, last.target)}")
    assert not failures, "\n".join(failures)


def test_callbacks_without_a_permission_and_unknown_outputs_are_refused(authz, tmp_path):
    from dash import Input, Output

    from store import queries_access as qa
    app, store = authz
    client = app.server.test_client()
    sign_in_client(client, "t-operator")

    @app.callback(Output("unsecured-out", "children"), Input("unsecured-in", "value"))
    def unsecured(value):  # registered with plain Dash, bypassing secure_callback
        return value

    body = {"output": "unsecured-out.children", "outputs": {"id": "unsecured-out", "property": "children"},
            "inputs": [{"id": "unsecured-in", "property": "value", "value": 1}], "state": [], "changedPropIds": []}
    assert client.post("/_dash-update-component", json=body).status_code == 403
    store.flush()
    last = qa.audit_tail(store, 1)[0]
    assert last.action == "policy_denied" and last.target.endswith(".unsecured")
    assert "callback_without_permission" in last.detail
    del app.callback_map["unsecured-out.children"]
    assert client.post("/_dash-update-component", json=dict(body, output="nope.children")).status_code == 403


def test_the_permission_table_is_complete_and_least_privilege():
    from services.access import DETAIL_LEVELS, PERMISSIONS, ROLES, permission_table
    table = permission_table()
    granted = set().union(*(perms for _, perms in table.values()))
    assert granted == set(PERMISSIONS), f"permissions no role holds: {set(PERMISSIONS) - granted}"
    assert all(detail in DETAIL_LEVELS for detail, _ in table.values())
    assert table["public"][1] == frozenset({"view_overview"}) and table["public"][0] == "aggregates"
    assert [r.name for r in ROLES if r.detail == "points"] == ["data_manager"]
    assert {r for r, (_, p) in table.items() if "manage_users" in p or "read_audit" in p} == {"admin"}
    assert {r for r, (_, p) in table.items() if "export_cases" in p} == {"data_manager"}
