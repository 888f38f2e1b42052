"""Names come from ingested files, and Plotly renders a subset of HTML in labels and hovers: an area or
facility named ``<a href=...>`` must reach every figure as text, never as a live link.

Every served callback is called, as the public and as an operator, on a copy of the demo city whose
area and facility names carry markup; every string of every figure in every answer is checked.
"""
from __future__ import annotations

import json

import pytest

from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import sign_in_client
from tests.test_callback_authz import ROUTER_OUTPUT, _body, _components

pytestmark = pytest.mark.slow
LINK = '<a href="https://evil.example/">click</a>'


@pytest.fixture(scope="module")
def marked_up_city(demo_city, tmp_path_factory):
    dsettings, _ = demo_city
    app, store, _ = app_on_copy(dsettings, tmp_path_factory.mktemp("html-names"), [("t-operator", "operator")])
    store.write("UPDATE areas SET name = name || ' ' || ?", (LINK,))
    store.write("UPDATE facilities SET name = name || ' ' || ?", (LINK,))
    store.flush()
    yield app
    close_app(app, store)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _figure_strings(answer: dict):
    """Strings inside Plotly figures only: elsewhere (table cells, dropdown labels) React prints strings as
    text whatever they hold, and the raw name is the right thing to show."""
    for props in answer.get("response", {}).values():
        for prop, value in props.items():
            if prop == "figure":
                yield from _strings(value)


@pytest.mark.parametrize("user", [None, "t-operator"], ids=["public", "operator"])
def test_markup_in_names_reaches_figures_as_text(marked_up_city, user):
    app = marked_up_city
    client = app.server.test_client()
    if user:
        assert sign_in_client(client, user).status_code == 303
    components = _components(app)
    escaped_seen = 0
    for key, entry in app.callback_map.items():
        if "callback" not in entry or ROUTER_OUTPUT in key:
            continue
        response = client.post("/_dash-update-component", json=_body(key, entry, components))
        if response.status_code != 200:
            continue  # refused (403) or nothing to update (204): nothing rendered
        for text in _figure_strings(json.loads(response.get_data(as_text=True))):
            assert "<a href" not in text, f"{key} renders a live link from a name: {text[:200]}"
            escaped_seen += "&lt;a href" in text
    # The names did reach the figures (escaped), so the check above looked at them.
    assert escaped_seen > 0
