"""Every registered Dash callback x every role and no session: POST /_dash-update-component.

The callbacks are discovered from the app's callback_map after the first request (when Dash has
collected them), so callbacks that pages add later are covered without editing this test. Inputs
carry the values the page layouts give them, as the browser would send on first render. Each
unauthorised call must be HTTP 403 and leave a ``policy_denied`` record naming the caller; each
authorised call must succeed (200, or 204 when the callback declines to update). Every input of
every callback, given a value of the wrong JSON type, must be HTTP 400 with a JSON body, never 500.
"""
from __future__ import annotations

import copy
import json

import dash
import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client

pytestmark = pytest.mark.slow
ROUTER_OUTPUT = "_pages_content.children"


@pytest.fixture(scope="module")
def authz(demo_city, tmp_path_factory):
    from auth.principal import SIGNED_IN_ROLES

    dsettings, _ = demo_city
    app, store, _settings = app_on_copy(dsettings, tmp_path_factory.mktemp("authz"),
                                        [(f"t-{role.replace('_', '-')}", role) for role in SIGNED_IN_ROLES])
    yield app, store
    close_app(app, store)  # pending denial counts reach the log before the store closes


def _components(app) -> list[tuple]:
    """(id, component) for every component with an id in the shell and every page's layout."""
    found: list[tuple] = []

    def walk(node):
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
            return
        if not hasattr(node, "to_plotly_json"):
            return
        cid = getattr(node, "id", None)
        if cid is not None:
            found.append((cid, node))
        walk(getattr(node, "children", None))

    with app.server.test_request_context("/"):
        walk(app.layout() if callable(app.layout) else app.layout)
        for page in dash.page_registry.values():
            layout = page["layout"]
            walk(layout() if callable(layout) else layout)
    return found


def _parse_id(cid):
    """A dependency's id: a plain string, or a pattern dict whose wildcards read ["ALL"], ["MATCH"]..."""
    if isinstance(cid, str) and cid.startswith("{"):
        return json.loads(cid)
    return cid


def _prop_value(component, prop: str):
    value = getattr(component, prop, None) if component is not None else None
    return 0 if value is None and prop == "n_intervals" else value


def _dependency(components, cid, prop: str, *, with_value: bool, override=None):
    """What the browser sends for one dependency: one item, or a list for ALL-type patterns."""
    cid = _parse_id(cid)

    def item(concrete, component):
        entry = {"id": concrete, "property": prop}
        if with_value:
            entry["value"] = override if override is not None else _prop_value(component, prop)
        return entry
    if isinstance(cid, dict) and any(isinstance(v, list) for v in cid.values()):
        matches = [(i, c) for i, c in components if isinstance(i, dict) and set(i) == set(cid)
                   and all(isinstance(cid[k], list) or cid[k] == i[k] for k in cid)]
        items = [item(i, c) for i, c in matches]
        wildcard = next(v[0] for v in cid.values() if isinstance(v, list))
        return items if wildcard in ("ALL", "ALLSMALLER") else (items[0] if items else item(cid, None))
    component = next((c for i, c in components if i == cid), None)
    return item(cid, component)


# A person's first action on an input: the browser fires a prevent_initial_call callback only on a change.
FIRST_ACTION = {"n_clicks": 1, "n_intervals": 1}


def _prop_id(item: dict) -> str:
    cid = item["id"]
    text = json.dumps(cid, sort_keys=True, separators=(",", ":")) if isinstance(cid, dict) else cid
    return f"{text}.{item['property']}"


def _body(key: str, entry: dict, components, overrides: dict | None = None) -> dict:
    """The request the browser sends when the callback's first input changes (first click, first tick)."""
    overrides = overrides or {}
    raw_outputs = entry["output"] if isinstance(entry["output"], list) else [entry["output"]]
    outputs = [_dependency(components, o.component_id_str(), o.component_property, with_value=False)
               for o in raw_outputs]
    inputs = [_dependency(components, d["id"], d["property"], with_value=True, override=overrides.get(d["property"]))
              for d in entry["inputs"]]
    state = [_dependency(components, d["id"], d["property"], with_value=True) for d in entry.get("state", [])]
    changed = []
    first = inputs[0] if inputs else None
    first = (first[0] if first else None) if isinstance(first, list) else first
    if first is not None:
        if first["property"] in FIRST_ACTION and not overrides:
            first["value"] = FIRST_ACTION[first["property"]]
        changed.append(_prop_id(first))
    return {"output": key, "outputs": outputs if isinstance(entry["output"], list) else outputs[0],
            "inputs": inputs, "state": state, "changedPropIds": changed}


def _principals():
    from auth.principal import SIGNED_IN_ROLES
    return [None, *SIGNED_IN_ROLES]


def _expect_page(role: str, module: str) -> bool:
    """The page table read straight from the data (not through the code under test)."""
    from auth.callbacks import CALLBACK_PERMISSIONS
    from auth.principal import PAGE_PERMISSIONS, role_permissions
    held = role_permissions(role)
    if module in PAGE_PERMISSIONS:
        return PAGE_PERMISSIONS[module] in held
    used = {p for k, p in CALLBACK_PERMISSIONS.items() if k.rsplit(".", 1)[0] == module}
    return role != "public" and (not used or bool(used & held))


def test_every_callback_declares_a_known_permission(authz):
    from auth.web import callback_key
    from auth.callbacks import CALLBACK_PERMISSIONS
    from auth.principal import PERMISSIONS
    app, _ = authz
    served = [e for e in app.callback_map.values() if "callback" in e]  # clientside ones never reach the server
    assert len(served) >= 2
    served_keys = {callback_key(e["callback"]) for e in served}
    assert set(CALLBACK_PERMISSIONS) <= served_keys, "secured callbacks the app does not serve (untested)"
    for entry in served:
        key = callback_key(entry["callback"])
        if ROUTER_OUTPUT in str(entry["output"]):
            continue
        assert key in CALLBACK_PERMISSIONS, f"{key} was registered without pages._secure.secure_callback"
        assert CALLBACK_PERMISSIONS[key] in PERMISSIONS


@pytest.mark.parametrize("role", _principals(), ids=lambda r: r or "no-session")
def test_every_callback_as_every_role(authz, role):
    from auth.web import callback_key
    from auth.callbacks import CALLBACK_PERMISSIONS
    from auth.principal import role_permissions
    from store import queries_access as qa

    app, store = authz
    client = app.server.test_client()
    actor = "anonymous"
    if role is not None:
        actor = f"t-{role.replace('_', '-')}"
        assert sign_in_client(client, actor).status_code == 303
    effective = role or "public"
    held = role_permissions(effective)
    components = _components(app)
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


def test_callbacks_without_a_permission_and_unknown_outputs_are_refused(authz):
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
    from auth.principal import DETAIL_LEVELS, PERMISSIONS, ROLES, permission_table
    table = permission_table()
    granted = set().union(*(perms for _, perms in table.values()))
    assert granted == set(PERMISSIONS), f"permissions no role holds: {set(PERMISSIONS) - granted}"
    assert all(detail in DETAIL_LEVELS for detail, _ in table.values())
    assert table["public"][1] == frozenset({"view_overview"}) and table["public"][0] == "aggregates"
    assert [r.name for r in ROLES if r.detail == "points"] == ["data_manager"]
    assert {r for r, (_, p) in table.items() if "manage_users" in p or "read_audit" in p} == {"admin"}


# One value of each JSON type, to put where a callback expects another.
WRONG_VALUES = ({"$ne": None}, ["a", "list"], "a string", 12345)


def _with_value(item, value, dependency: dict):
    """The request item (each item, for a pattern-matching input) carrying ``value``; one made up if none matched."""
    if isinstance(item, list):
        if not item:
            pattern = json.loads(dependency["id"])
            concrete = {k: ("x" if isinstance(v, list) else v) for k, v in pattern.items()}
            return [{"id": concrete, "property": dependency["property"], "value": value}]
        return [dict(i, value=value) for i in item]
    return dict(item, value=value)


def test_every_callback_refuses_wrong_typed_inputs_with_400(authz):
    from auth.callback_inputs import expected_types, matches
    from auth.callbacks import CALLBACK_INPUT_TYPES, CALLBACK_PERMISSIONS
    from auth.principal import SIGNED_IN_ROLES, role_permissions
    from auth.web import callback_key

    app, _ = authz
    clients = {}
    for role in SIGNED_IN_ROLES:
        clients[role] = app.server.test_client()
        assert sign_in_client(clients[role], f"t-{role.replace('_', '-')}").status_code == 303
    components = _components(app)
    failures, callbacks, tried = [], 0, 0
    for key, entry in app.callback_map.items():
        if "callback" not in entry:
            continue
        callbacks += 1
        router = ROUTER_OUTPUT in key
        declared = {} if router else CALLBACK_INPUT_TYPES[callback_key(entry["callback"])]
        # As a role allowed to make the call, so that the type check answers, not a refusal.
        needed = "view_overview" if router else CALLBACK_PERMISSIONS[callback_key(entry["callback"])]
        client = clients[next(r for r in SIGNED_IN_ROLES if needed in role_permissions(r))]
        body = _body(key, entry, components, {"pathname": "/", "search": ""} if router else None)
        valid = client.post("/_dash-update-component", json=body)
        assert valid.status_code in (200, 204), f"{key}: the well-typed request failed: {valid.status_code}"
        wrong_ones = 0
        for section in ("inputs", "state"):
            for i, dependency in enumerate(entry.get(section, [])):
                allowed = expected_types(dependency, declared)
                assert allowed is not None, f"{key}: {dependency} has no type"
                sent = body[section][i]
                # Independently of the declarations: what the layout holds, or a counter, is never an object.
                if not isinstance(sent, list) and isinstance(sent.get("value"), (str, int, float)):
                    assert "object" not in allowed, f"{key}: {dependency} would accept an object"
                if dependency["property"] in ("n_clicks", "n_intervals"):
                    assert allowed <= {"integer", "null"}, f"{key}: {dependency} is a count"
                wrong = next(v for v in WRONG_VALUES if not matches(v, allowed))
                bad = copy.deepcopy(body)
                bad[section][i] = _with_value(sent, wrong, dependency)
                response = client.post("/_dash-update-component", json=bad)
                text = response.get_data(as_text=True)
                tried += 1
                wrong_ones += 1
                if (response.status_code != 400 or response.mimetype != "application/json"
                        or "Traceback" in text or response.get_json().get("error") != "bad_request"):
                    failures.append(f"{key} {section}[{i}] {dependency} = {wrong!r}: "
                                    f"{response.status_code} {text[:200]}")
        assert wrong_ones, f"{key}: no input to send a wrong type to"
    assert callbacks >= 2 and tried >= callbacks
    assert not failures, "\n".join(failures)
