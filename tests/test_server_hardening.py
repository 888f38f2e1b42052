"""Issue 11, the server part: a production server, a bounded audit log under attack, pages matched as Dash
matches them, and callback inputs checked before the callback runs.

In-process tests use the real Flask app on a real DuckDB file (test client); the HTTP-level ones run
`python app.py serve` in a subprocess (tests/browser.py ServerProcess) and talk to it over sockets.
"""
from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from datetime import datetime, timedelta, timezone

import dash
import pytest

from tests.auth_helpers import FAST_AUTH, TEST_PASSWORD, csrf_from, sign_in_client

pytestmark = pytest.mark.slow
QUARANTINE_OUTPUT = "..rejected-by-reason.children...rejected-latest.children.."
ROUTER_OUTPUT = "_pages_content.children"
# Spellings of /rejected: Dash's router renders the quarantine page for the first ones (it strips
# slashes), browsers turn the others into /rejected before asking.
REJECTED_SPELLINGS = ("/rejected", "//rejected", "/rejected/", "///rejected//", "/./rejected",
                      "/x/../rejected", "/%72ejected", "/rejected%2F", "/\\rejected")


def _quarantine_body(value=1) -> dict:
    return {"output": QUARANTINE_OUTPUT,
            "outputs": [{"id": "rejected-by-reason", "property": "children"},
                        {"id": "rejected-latest", "property": "children"}],
            "inputs": [{"id": "rejected-refresh", "property": "n_intervals", "value": value}],
            "changedPropIds": ["rejected-refresh.n_intervals"], "state": []}


def _router_key(app) -> str:
    return next(k for k in app.callback_map if ROUTER_OUTPUT in k)


def _router_body(key: str, pathname, search="", swap=False) -> dict:
    inputs = [{"id": "_pages_location", "property": "pathname", "value": pathname},
              {"id": "_pages_location", "property": "search", "value": search}]
    return {"output": key, "outputs": [{"id": "_pages_content", "property": "children"},
                                       {"id": "_pages_store", "property": "data"}],
            "inputs": inputs[::-1] if swap else inputs, "changedPropIds": ["_pages_location.pathname"], "state": []}


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def app_on_empty_city(settings_factory):
    """The real app on an empty database; users exec (executive) and dm (data manager); a test clock."""
    from app import create_app
    from auth.users import add_user
    from store import Store

    settings = settings_factory(auth=FAST_AUTH)
    store = Store(settings.path(settings.store.path))
    app = create_app(settings, store)
    svc = app.server.extensions["pheoc.auth"]
    clock = Clock()
    svc.clock = clock
    for name, role in (("exec", "executive"), ("dm", "data_manager")):
        add_user(store, svc.passwords, name, role, TEST_PASSWORD, actor="test")
    app.server.test_client().get("/")  # first request: Dash registers its callbacks and its router
    yield app, store, svc, clock
    svc.stop()
    store.close()


def _audit_rows(store) -> int:
    store.flush()
    return store.table_counts()["audit_log"]


def _denials(store, since_seq: int):
    from store import queries_access as qa
    store.flush()
    return [r for r in qa.audit_rows(store) if r.seq > since_seq and r.action == "policy_denied"]


# ---- bounded audit log -------------------------------------------------------------------------------
def test_a_thousand_anonymous_denied_posts_add_a_bounded_number_of_audit_rows(app_on_empty_city):
    from auth.audit import verify_audit
    from store import queries_access as qa
    app, store, svc, clock = app_on_empty_city
    client = app.server.test_client()
    before, head = _audit_rows(store), qa.audit_head(store)[0]
    for _ in range(1000):
        assert client.post("/_dash-update-component", json=_quarantine_body()).status_code == 403
    assert _audit_rows(store) - before == 1  # the first denial is in the log at once
    clock.advance(61)  # the window closes: the 999 repeats become one record
    svc.denials.close_due()
    rows = _denials(store, head)
    assert len(rows) <= 5 and _audit_rows(store) - before == 2
    first, summary = (json.loads(r.detail) for r in rows)
    assert (rows[0].actor, rows[0].target, first["reason"], first["addr"]) == (
        "anonymous", "view_quarantine", "missing_permission", "127.0.0.1")
    assert first["callback"] == "pages.quarantine.refresh_rejected" and "repeats" not in first
    assert (rows[1].actor, rows[1].target, summary["repeats"]) == ("anonymous", "view_quarantine", 999)
    assert summary["first_repeat_at"] <= summary["last_repeat_at"]
    # The next window starts with a record of its own again.
    assert client.post("/_dash-update-component", json=_quarantine_body()).status_code == 403
    assert len(_denials(store, head)) == 3
    assert verify_audit(store).ok


def test_denials_of_many_kinds_are_capped_per_window_and_all_counted(app_on_empty_city):
    from auth.denials import MAX_ANONYMOUS_KINDS
    from store import queries_access as qa
    app, store, svc, clock = app_on_empty_city
    head = qa.audit_head(store)[0]
    addresses = [f"198.51.100.{i}" for i in range(MAX_ANONYMOUS_KINDS + 10)]  # an attack from many addresses
    for addr in addresses:
        client = app.server.test_client()
        client.environ_base["REMOTE_ADDR"] = addr
        for _ in range(3):
            assert client.post("/_dash-update-component", json=_quarantine_body()).status_code == 403
    # A signed-in user refused in the same window is still named at once, not folded into the overflow.
    executive = app.server.test_client()
    sign_in_client(executive, "exec")
    assert executive.post("/_dash-update-component", json=_quarantine_body()).status_code == 403
    store.flush()
    assert (qa.audit_tail(store, 1)[0].actor, qa.audit_tail(store, 1)[0].action) == ("exec", "policy_denied")
    svc.stop()  # as at shutdown: everything pending is written
    rows = [r for r in _denials(store, head) if r.actor != "exec"]
    assert len(rows) == 2 * MAX_ANONYMOUS_KINDS + 1
    details = [json.loads(r.detail) for r in rows]
    overflow = [(r, d) for r, d in zip(rows, details) if r.target == "(overflow)"]
    assert len(overflow) == 1 and overflow[0][0].actor == "(anonymous callers)"
    assert overflow[0][1]["repeats"] == 30 and len(overflow[0][1]["addr_sample"]) == 10
    accounted = sum(d["repeats"] if "repeats" in d else 1 for d in details)
    assert accounted == 3 * len(addresses)  # nothing lost: every refusal is counted somewhere


# ---- pages matched as Dash matches them ---------------------------------------------------------------
def test_every_spelling_of_a_page_is_authorised_as_that_page(app_on_empty_city):
    from auth.web import page_module_for
    app, store, svc, clock = app_on_empty_city
    key = _router_key(app)
    public, executive, data_manager = (app.server.test_client() for _ in range(3))
    sign_in_client(executive, "exec")
    sign_in_client(data_manager, "dm")
    from store import queries_access as qa
    for path in REJECTED_SPELLINGS:
        assert page_module_for(path) == "pages.quarantine", path
        assert public.post("/_dash-update-component", json=_router_body(key, path)).status_code == 403, path
        assert executive.post("/_dash-update-component", json=_router_body(key, path)).status_code == 403, path
        assert data_manager.post("/_dash-update-component", json=_router_body(key, path)).status_code == 200, path
        # A page load: Werkzeug hands the path over decoded, as a server receives it.
        page = public.get("/", environ_overrides={"PATH_INFO": urllib.parse.unquote(path)})
        assert page.status_code == 302 and page.headers["Location"].startswith("/login?next="), path
        refused = executive.get("/", environ_overrides={"PATH_INFO": urllib.parse.unquote(path)})
        assert refused.status_code == 403, path
    store.flush()
    assert {r.target for r in qa.audit_tail(store, 20, action="policy_denied")} == {"page:/rejected"}


def test_the_page_matcher_agrees_with_dash_pages_own_router(app_on_empty_city):
    """Wherever Dash's router renders a page, auth.web authorises that same page."""
    from dash._pages import _path_to_page

    from auth.web import page_module_for
    app, *_ = app_on_empty_city
    paths = set(REJECTED_SPELLINGS) | {"/", "//", "/Rejected", "/rejected/x", "/nowhere", "/capacity//"}
    for page in dash.page_registry.values():
        p = page["path"]
        paths |= {p, p + "/", "/" + p, p + "//", "/." + p}
    for path in sorted(paths):
        rendered, _ = _path_to_page(app.strip_relative_path(path))
        if rendered:
            assert page_module_for(path) == rendered["module"], path


def test_the_router_reads_its_pathname_by_position(app_on_empty_city):
    app, *_ = app_on_empty_city
    key = _router_key(app)
    public = app.server.test_client()
    # Dash reads inputs by position: "/rejected" first, labelled "search", and a harmless pathname after it.
    smuggled = _router_body(key, "/", search="/rejected", swap=True)
    response = public.post("/_dash-update-component", json=smuggled)
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    assert public.post("/_dash-update-component", json=_router_body(key, "/")).status_code == 200
    not_a_path = public.post("/_dash-update-component", json=_router_body(key, "rejected"))
    assert not_a_path.status_code == 400  # Dash would raise on a pathname without "/" (HTTP 500)


@pytest.mark.parametrize("mangle", [
    lambda b: [b],                                                  # not an object
    lambda b: {**b, "inputs": []},                                  # an input left out
    lambda b: {**b, "inputs": b["inputs"] * 2},                     # one too many
    lambda b: {**b, "inputs": [dict(b["inputs"][0], property="n_clicks")]},  # another property
    lambda b: {**b, "inputs": [dict(b["inputs"][0], id="overview-refresh")]},  # another component
    lambda b: {**b, "inputs": [dict(b["inputs"][0], value={"$gt": 1})]},      # an object for a count
    lambda b: {**b, "inputs": [dict(b["inputs"][0], value=[1])]},            # a list for a count
    lambda b: {**b, "inputs": [dict(b["inputs"][0], value="1")]},            # a string for a count
    lambda b: {**b, "inputs": [dict(b["inputs"][0], value=True)]},           # a boolean for a count
    lambda b: {**b, "inputs": "n_intervals"},
    lambda b: {**b, "state": [{"id": "x", "property": "value", "value": 1}]},
    lambda b: {**b, "outputs": {"id": "rejected-by-reason", "property": "children"}},
    lambda b: {**b, "changedPropIds": 7},
], ids=["list-body", "missing", "extra", "property", "component", "object", "list", "string", "boolean",
        "inputs-string", "stray-state", "outputs", "changed"])
def test_a_callback_request_of_the_wrong_shape_is_400_not_500(app_on_empty_city, mangle):
    app, *_ = app_on_empty_city
    client = app.server.test_client()
    sign_in_client(client, "dm")
    assert client.post("/_dash-update-component", json=_quarantine_body()).status_code == 200
    response = client.post("/_dash-update-component", json=mangle(_quarantine_body()))
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert response.get_json()["error"] == "bad_request" and "Traceback" not in response.get_data(as_text=True)


def test_untyped_inputs_and_stray_declarations_fail_at_registration():
    from dash import Input, State

    from auth.callbacks import CALLBACK_INPUT_TYPES, CALLBACK_PERMISSIONS, callback_key, register_callback

    def cb(_x):
        return None
    try:
        with pytest.raises(ValueError, match=r"no JSON type is known for some-store\.data"):
            register_callback(cb, "view_overview", [Input("some-store", "data")], [])
        with pytest.raises(ValueError, match=r"not inputs or state"):
            register_callback(cb, "view_overview", [Input("a", "n_clicks")], [], types={"b.data": "object"})
        with pytest.raises(ValueError, match=r"unknown JSON type"):
            register_callback(cb, "view_overview", [Input("a", "data")], [], types={"a.data": "dict"})
        assert callback_key(cb) not in CALLBACK_PERMISSIONS
        register_callback(cb, "view_overview", [Input("a", "n_clicks")], [State("s", "data")],
                          types={"s.data": ("object", "null")})
        assert CALLBACK_INPUT_TYPES[callback_key(cb)] == {"s.data": frozenset({"object", "null"})}
    finally:  # the registry is the app's: leave no test callback in it
        CALLBACK_PERMISSIONS.pop(callback_key(cb), None)
        CALLBACK_INPUT_TYPES.pop(callback_key(cb), None)


# ---- the production server ----------------------------------------------------------------------------
def test_the_wsgi_server_is_waitress_with_the_configured_threads_and_no_banner(settings_factory):
    from app import wsgi_server
    from tests.browser import free_port

    settings = settings_factory(server={"port": free_port(), "threads": 3})
    server = wsgi_server(settings, lambda environ, start_response: [])
    try:
        assert type(server).__module__ == "waitress.server"
        assert len(server.task_dispatcher.threads) == 3
        assert server.adj.ident is None  # no Server header
    finally:
        server.task_dispatcher.shutdown()
        server.close()


def test_server_threads_is_validated_with_its_key(settings_factory):
    from settings import ConfigError
    for bad in (0, 65, "many"):
        with pytest.raises(ConfigError, match=r"server\.threads"):
            settings_factory(server={"threads": bad})


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory):
    from store import Store
    path = tmp_path_factory.mktemp("empty_city") / "source.duckdb"
    Store(path).close()
    return path


def _serve(database, folder, **auth):
    from tests.browser import serve_database_copy
    return serve_database_copy(database, folder, users=(("t-exec", "executive"), ("t-dm", "data_manager")),
                               sections={"auth": {**FAST_AUTH, **auth}, "server": {"threads": 3}})


@pytest.fixture(scope="module")
def served(empty_database, tmp_path_factory):
    """`python app.py serve` behind one (pretend) TLS proxy: X-Forwarded-Proto is believed."""
    proc = _serve(empty_database, tmp_path_factory.mktemp("served_hardening"), trusted_proxies=1)
    yield proc
    proc.stop()


def _request(url: str, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={**({"Content-Type": "application/json"} if data else {}),
                                                      **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _signed_in_cookie(url: str, username: str) -> str:
    """Sign in through the real form over HTTP; returns the Cookie header to send."""
    status, headers, body = _request(url, "GET", "/login")
    csrf_cookie = headers["Set-Cookie"].split(";")[0]
    form = urllib.parse.urlencode({"csrf": csrf_from(body.decode()), "username": username,
                                   "password": TEST_PASSWORD, "next": "/"})
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", "/login", body=form, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                        "Cookie": csrf_cookie})
    response = conn.getresponse()
    response.read()
    cookies = [h[1].split(";")[0] for h in response.getheaders() if h[0] == "Set-Cookie"]
    conn.close()
    assert response.status == 303, f"sign-in as {username} failed"
    return "; ".join(c for c in cookies if c.startswith("pheoc_session="))


def test_served_by_waitress_without_a_version_banner(served):
    log = served.log_path.read_text()
    assert "(waitress, 3 threads)" in log
    key = "..rejected-by-reason.children...rejected-latest.children.."
    answers = [_request(served.url, "GET", "/healthz"), _request(served.url, "GET", "/rejected"),
               _request(served.url, "POST", "/_dash-update-component", _quarantine_body()),
               _request(served.url, "POST", "/_dash-update-component", {**_quarantine_body(), "output": key,
                                                                      "inputs": []}),
               _request(served.url, "GET", "/no-such-page-at-all")]
    assert [a[0] for a in answers] == [200, 302, 403, 403, 200]
    for status, headers, body in answers:
        assert "Server" not in headers and "Via" not in headers, headers
        assert not any(word in (body.decode(errors="replace") + json.dumps(headers))
                       for word in ("Werkzeug", "waitress", "Python/")), status
    # An error waitress answers itself (a malformed request never reaches the app).
    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
        raw = s.recv(65536).decode(errors="replace")
    assert raw.startswith("HTTP/1.1 400") and "\r\nServer:" not in raw and "waitress" not in raw.lower()


def test_hsts_on_the_served_server_when_the_proxy_says_tls(served):
    _, plain, _ = _request(served.url, "GET", "/healthz")
    _, tls, _ = _request(served.url, "GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in plain
    assert tls["Strict-Transport-Security"] == "max-age=31536000"


def test_double_slash_rejected_is_refused_over_real_http(served):
    status, headers, _ = _request(served.url, "GET", "//rejected")
    assert status == 302 and headers["Location"].startswith("/login?next=")
    key = ".._pages_content.children..._pages_store.data.."
    for path in ("//rejected", "/rejected/", "/./rejected"):
        assert _request(served.url, "POST", "/_dash-update-component", _router_body(key, path))[0] == 403
    executive = {"Cookie": _signed_in_cookie(served.url, "t-exec")}
    assert _request(served.url, "GET", "//rejected", headers=executive)[0] == 403
    assert _request(served.url, "POST", "/_dash-update-component", _router_body(key, "//rejected"),
                    headers=executive)[0] == 403
    data_manager = {"Cookie": _signed_in_cookie(served.url, "t-dm")}
    assert _request(served.url, "POST", "/_dash-update-component", _router_body(key, "//rejected"),
                    headers=data_manager)[0] == 200


def test_a_wrong_typed_callback_over_real_http_is_400(served):
    data_manager = {"Cookie": _signed_in_cookie(served.url, "t-dm")}
    status, headers, body = _request(served.url, "POST", "/_dash-update-component",
                                     _quarantine_body(value={"an": "object"}), headers=data_manager)
    assert status == 400 and json.loads(body)["error"] == "bad_request" and b"Traceback" not in body


def test_static_code_is_cached_by_its_versioned_url_and_pages_and_data_never(served):
    """Issue 16: plotly.min.js and Dash's bundles were served no-store, so every load fetched 5 MB again."""
    import re
    data_manager = {"Cookie": _signed_in_cookie(served.url, "t-dm")}
    status, headers, body = _request(served.url, "GET", "/", headers=data_manager)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    status, headers, _ = _request(served.url, "POST", "/_dash-update-component", _quarantine_body(),
                                  headers=data_manager)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert _request(served.url, "GET", "/healthz")[1]["Cache-Control"] == "no-store"
    # Every script and style the page names carries a version (Dash's fingerprint, or ?m= for assets).
    linked = re.findall(r'(?:src|href)="(/(?:_dash-component-suites|assets)/[^"]+)"', body.decode())
    assert any("/dash_renderer." in u for u in linked) and any(u.startswith("/assets/") for u in linked)
    for url in linked:
        status, headers, _ = _request(served.url, "GET", url, headers=data_manager)
        assert (status, headers["Cache-Control"]) == (200, "public, max-age=31536000, immutable"), url
    # What Dash loads on demand without a version: kept, but revalidated; the second time costs no body.
    for url in ("/_dash-component-suites/plotly/package_data/plotly.min.js",
                "/_dash-component-suites/dash/dcc/async-graph.js"):
        status, headers, body = _request(served.url, "GET", url)
        assert status == 200 and headers["Cache-Control"] == "no-cache" and len(body) > 10_000, url
        status, again, body = _request(served.url, "GET", url, headers={"If-None-Match": headers["Etag"]})
        assert (status, again["Cache-Control"], body) == (304, "no-cache", b""), url
    # A wrong or missing file is not cacheable: the next deployment may have it.
    status, headers, _ = _request(served.url, "GET", "/assets/no-such-file.v1m1.css?m=1")
    assert status == 404 and headers["Cache-Control"] != "public, max-age=31536000, immutable"


def test_a_thousand_denied_posts_over_http_then_a_clean_shutdown(empty_database, tmp_path):
    from auth.audit import verify_audit
    from store import Store
    from store import queries_access as qa
    proc = _serve(empty_database, tmp_path)
    try:
        before = proc.healthz()["tables"]["audit_log"]
        parts = urllib.parse.urlsplit(proc.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)  # one keep-alive connection
        body = json.dumps(_quarantine_body()).encode()
        for _ in range(1000):
            conn.request("POST", "/_dash-update-component", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 403
        conn.close()
        assert proc.healthz()["tables"]["audit_log"] - before == 1
    finally:
        proc.stop()  # SIGTERM, as a service manager stops it
    assert proc.proc.returncode == 0, proc.log_path.read_text()[-2000:]
    assert "pheoc stopped" in proc.log_path.read_text()
    with Store(tmp_path / "pheoc.duckdb") as store:  # the server closed the store: the file opens
        rows = [r for r in qa.audit_rows(store) if r.seq > before]
        assert len(rows) == 2, "1000 refusals, two records: the first, and the count of the rest"
        assert [json.loads(r.detail).get("repeats") for r in rows] == [None, 999]
        assert verify_audit(store).ok  # chain and anchor agree: nothing cut off at shutdown
