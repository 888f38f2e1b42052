"""Logins, sessions and login back-off through the real Flask app on a real DuckDB file.

Covers: argon2id hashes; cookie flags; session rotation at login; revocation by logout, disable and
password reset; idle and absolute time-outs (timer refreshes are not activity); exponential back-off
per account name, device cookies that exempt a browser from its user's back-off, and the limit per
client address, with identical failure responses (one argon2 verification per attempt); login rate
limit and CSRF; safe redirects; HSTS over TLS; /healthz and the public overview without a login.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.auth_helpers import FAST_AUTH, TEST_PASSWORD, csrf_from, sign_in_client

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
QUARANTINE_CALLBACK = {
    "output": "..rejected-by-reason.children...rejected-latest.children..",
    "outputs": [{"id": "rejected-by-reason", "property": "children"}, {"id": "rejected-latest", "property": "children"}],
    "inputs": [{"id": "rejected-refresh", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["rejected-refresh.n_intervals"], "state": []}


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def make_app(settings_factory):
    """Build the real app on an empty database with the given auth settings; users: op, exec, admin, dm."""
    opened, services = [], []

    def make(**auth):
        from app import create_app
        from auth.users import add_user
        from store import Store

        settings = settings_factory(auth={**FAST_AUTH, **auth})
        store = Store(settings.path(settings.store.path))
        opened.append(store)
        app = create_app(settings, store)
        svc = app.server.extensions["pheoc.auth"]
        clock = Clock()
        svc.clock = clock
        for name, role in (("op", "operator"), ("exec", "executive"), ("admin", "admin"), ("dm", "data_manager")):
            add_user(store, svc.passwords, name, role, TEST_PASSWORD, actor="test")
        app.server.test_client().get("/healthz")  # first request: Dash registers its callbacks
        services.append(svc)
        return app, store, svc, clock
    yield make
    for svc in services:  # the access service writes what it holds before its store closes
        svc.stop()
    for store in opened:
        store.close()


def _client(app, addr: str):
    client = app.server.test_client()
    client.environ_base["REMOTE_ADDR"] = addr
    return client


def _quarantine_status(client) -> int:
    return client.post("/_dash-update-component", json=QUARANTINE_CALLBACK).status_code


def _session_cookie(response) -> str:
    for header in response.headers.get_all("Set-Cookie"):
        if header.startswith("pheoc_session="):
            return header
    raise AssertionError("no session cookie set")


def test_passwords_are_argon2id_with_the_configured_cost(make_app):
    from store import queries_access as qa
    app, store, svc, _ = make_app()
    stored = qa.get_user(store, "op").password_hash
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert TEST_PASSWORD not in stored
    assert svc.passwords.verify(stored, TEST_PASSWORD) and not svc.passwords.verify(stored, TEST_PASSWORD + "x")
    assert not svc.passwords.verify(None, TEST_PASSWORD)  # the dummy hash never lets anyone in


def test_login_sets_a_hardened_cookie_and_rotates_the_session_id(make_app):
    app, store, svc, _ = make_app()
    client = app.server.test_client()
    client.set_cookie("pheoc_session", "planted-by-an-attacker")  # session fixation attempt
    first = sign_in_client(client, "op", next_path="/rejected")
    assert first.status_code == 303 and first.headers["Location"] == "/rejected"
    cookie = _session_cookie(first)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP with secure_cookies: auto
    token1 = client.get_cookie("pheoc_session").value
    assert token1 != "planted-by-an-attacker" and len(token1) >= 40
    assert _quarantine_status(client) == 200
    # Signing in again (e.g. as someone else on the same browser) ends the old session.
    old = app.server.test_client()
    old.set_cookie("pheoc_session", token1)
    sign_in_client(client, "dm")
    assert client.get_cookie("pheoc_session").value != token1
    assert _quarantine_status(old) == 403


@pytest.mark.parametrize("mode, url, headers, proxies, secure", [
    ("always", "http://localhost", {}, 0, True),
    ("auto", "https://localhost", {}, 0, True),
    ("auto", "http://localhost", {"X-Forwarded-Proto": "https"}, 0, False),  # untrusted header ignored
    ("auto", "http://localhost", {"X-Forwarded-Proto": "https"}, 1, True),   # behind one TLS proxy
    ("never", "https://localhost", {}, 0, False),
])
def test_secure_flag_follows_config_and_tls(make_app, mode, url, headers, proxies, secure):
    app, *_ = make_app(secure_cookies=mode, trusted_proxies=proxies)
    client = app.server.test_client()
    response = sign_in_client(client, "op", base_url=url, headers=headers)
    assert response.status_code == 303
    assert ("; Secure" in _session_cookie(response)) is secure


@pytest.mark.parametrize("url, headers, proxies, hsts", [
    ("http://localhost", {}, 0, False),                               # browsers ignore HSTS on plain HTTP
    ("https://localhost", {}, 0, True),
    ("http://localhost", {"X-Forwarded-Proto": "https"}, 0, False),   # untrusted header ignored
    ("http://localhost", {"X-Forwarded-Proto": "https"}, 1, True),    # behind one TLS proxy
])
def test_hsts_only_over_tls(make_app, url, headers, proxies, hsts):
    app, *_ = make_app(trusted_proxies=proxies)
    client = app.server.test_client()
    for path in ("/healthz", "/", "/login", "/rejected"):
        response = client.get(path, base_url=url, headers=headers)
        assert response.headers.get("Strict-Transport-Security") == ("max-age=31536000" if hsts else None), path


def test_logout_disable_and_password_reset_revoke_sessions_at_once(make_app):
    from auth.users import reset_password, set_disabled
    app, store, svc, _ = make_app()
    clients = {}
    for name in ("op", "dm", "admin"):
        clients[name] = app.server.test_client()
        sign_in_client(clients[name], name)
    assert _quarantine_status(clients["op"]) == 200
    token = clients["op"].get_cookie("pheoc_session").value
    assert clients["op"].get("/logout").status_code == 200
    replay = app.server.test_client()
    replay.set_cookie("pheoc_session", token)
    assert _quarantine_status(replay) == 403  # the old cookie is worth nothing after logout

    assert _quarantine_status(clients["dm"]) == 200
    assert set_disabled(store, "dm", True, actor="test") == 1
    assert _quarantine_status(clients["dm"]) == 403
    assert _refused(sign_in_client(app.server.test_client(), "dm"))  # a disabled user cannot sign in either

    assert "Signed in as admin" in clients["admin"].get("/login").get_data(as_text=True)
    reset_password(store, svc.passwords, "admin", "a brand new passphrase", actor="test")
    assert "Signed in as" not in clients["admin"].get("/login").get_data(as_text=True)
    assert sign_in_client(app.server.test_client(), "admin", "a brand new passphrase").status_code == 303


def test_idle_timeout_ignores_timer_refreshes(make_app):
    app, store, svc, clock = make_app(idle_timeout_s=600, absolute_timeout_s=86_400, role_timeouts={})
    ticking, active = app.server.test_client(), app.server.test_client()
    sign_in_client(ticking, "op")
    sign_in_client(active, "dm")
    user_click = dict(QUARANTINE_CALLBACK, changedPropIds=["rejected-by-reason.n_clicks"])
    clock.advance(300)
    assert _quarantine_status(ticking) == 200  # an Interval tick: allowed, but not activity
    assert active.post("/_dash-update-component", json=user_click).status_code == 200
    store.flush()  # the touch is written by the store's writer
    clock.advance(400)  # 700 s since sign-in, 400 s since the click
    page = ticking.get("/rejected")
    assert page.status_code == 302 and page.headers["Location"].endswith("&ended=idle")
    assert _quarantine_status(ticking) == 403
    assert _quarantine_status(active) == 200
    store.flush()
    from store import queries_access as qa
    assert qa.active_sessions(store, "op") == 0


def test_absolute_timeout_ends_even_a_busy_session(make_app):
    app, store, svc, clock = make_app(idle_timeout_s=600, absolute_timeout_s=1800, role_timeouts={})
    client = app.server.test_client()
    sign_in_client(client, "dm")
    click = dict(QUARANTINE_CALLBACK, changedPropIds=["rejected-by-reason.n_clicks"])
    for _ in range(5):
        clock.advance(300)
        assert client.post("/_dash-update-component", json=click).status_code == 200
        store.flush()
    clock.advance(301)  # 1801 s after sign-in, 301 s after the last click
    response = client.get("/rejected")
    assert response.status_code == 302 and response.headers["Location"].endswith("&ended=expired")
    assert client.post("/_dash-update-component", json=click).status_code == 403


def test_the_operator_role_has_its_own_long_timeouts(make_app):
    app, store, svc, clock = make_app(idle_timeout_s=600, absolute_timeout_s=1800,
                                      role_timeouts={"operator": {"idle_timeout_s": 86_400,
                                                                  "absolute_timeout_s": 7 * 86_400}})
    wall = app.server.test_client()
    sign_in_client(wall, "op")
    clock.advance(6 * 3600)
    assert _quarantine_status(wall) == 200
    assert svc.sessions.limits("operator") == (86_400, 7 * 86_400)
    assert svc.sessions.limits("analyst") == (600, 1800)


def _refused(response) -> bool:
    """The form again with the one failure message, and no session."""
    return (response.status_code == 200 and b"Sign-in failed" in response.get_data()
            and not any(h.startswith("pheoc_session=") for h in response.headers.get_all("Set-Cookie")))


def _failure(client, name, password, **kwargs):
    response = sign_in_client(client, name, password, **kwargs)
    assert _refused(response)
    return response.status_code, response.get_data()


def test_failures_are_identical_and_cost_one_verification_each(make_app):
    from auth.users import set_disabled
    app, store, svc, _ = make_app(lockout_failures=3)
    client = app.server.test_client()
    set_disabled(store, "exec", True, actor="test")
    for _ in range(3):
        _failure(client, "admin", "wrong password here")  # admin's attempts must now wait
    before = svc.passwords.verifications
    outcomes = {
        "unknown user": _failure(client, "nobody-at-all", "whatever password"),
        "wrong password": _failure(client, "op", "wrong password here"),
        "disabled user": _failure(client, "exec", TEST_PASSWORD),
        "name waiting, right password": _failure(client, "admin", TEST_PASSWORD),
    }
    assert svc.passwords.verifications - before == len(outcomes)
    assert {status for status, _ in outcomes.values()} == {200}
    bodies = {body for _, body in outcomes.values()}
    assert len(bodies) == 1, "failure responses differ: they would tell which names exist"
    assert b"Sign-in failed" in bodies.pop()


def _device_cookie(response) -> str:
    for header in response.headers.get_all("Set-Cookie"):
        if header.startswith("pheoc_device="):
            return header
    raise AssertionError("no device cookie set")


def test_backoff_doubles_per_failure_up_to_its_cap():
    from auth.login import backoff_s
    from settings import AuthConfig
    cfg = AuthConfig(lockout_failures=3, lockout_backoff_s=10, lockout_backoff_max_s=80)
    assert [backoff_s(cfg, n) for n in range(9)] == [0, 0, 0, 10, 20, 40, 80, 80, 80]
    assert backoff_s(cfg, 10_000) == 80  # no overflow, still the cap


def test_failures_on_a_name_make_it_wait_and_attempts_during_a_wait_do_not_lengthen_it(make_app):
    app, store, svc, clock = make_app(lockout_failures=3, lockout_backoff_s=10, lockout_backoff_max_s=80,
                                      lockout_window_s=900, address_lockout_failures=1000,
                                      login_rate_per_min=1000)
    client = app.server.test_client()
    for _ in range(3):
        _failure(client, "op", "not the password")
    clock.advance(9)
    _failure(client, "op", TEST_PASSWORD)  # within the 10 s wait: the right password is refused too
    other = _client(app, "10.9.9.9")
    assert sign_in_client(other, "dm").status_code == 303  # other names are unaffected
    clock.advance(1)  # 10 s after the third failure; the refused attempt did not restart the wait
    _failure(client, "op", "fourth wrong password")  # the 4th failure: the wait doubles to 20 s
    clock.advance(19)
    _failure(client, "op", TEST_PASSWORD)
    clock.advance(1)
    _failure(client, "op", "fifth wrong password")  # 40 s
    clock.advance(40)
    _failure(client, "op", "sixth wrong password")  # 80 s, the cap
    clock.advance(80)
    _failure(client, "op", "seventh wrong password")  # still 80 s: an attacker gets one guess per cap
    clock.advance(79)
    _failure(client, "op", TEST_PASSWORD)
    clock.advance(1)
    assert sign_in_client(client, "op").status_code == 303  # the real user gets in once the wait is over
    from store import queries_access as qa
    reasons = [json.loads(r.detail)["reason"] for r in qa.audit_tail(store, 30, action="login_failed")]
    assert reasons.count("backoff") == 3 and reasons.count("wrong_password") == 7


def test_a_browser_that_signed_in_before_skips_the_back_off_an_attacker_causes(make_app):
    app, store, svc, clock = make_app(lockout_failures=3, lockout_backoff_s=30, lockout_backoff_max_s=120,
                                      lockout_window_s=900, address_lockout_failures=1000, device_trust_days=30,
                                      login_rate_per_min=1000)
    colleague = _client(app, "198.51.100.20")
    first = sign_in_client(colleague, "op")
    cookie = _device_cookie(first)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/login" in cookie
    assert f"Max-Age={30 * 86_400}" in cookie
    assert colleague.get("/logout").status_code == 200  # device trust outlives the session
    attacker = _client(app, "203.0.113.7")
    new_browser = _client(app, "198.51.100.21")
    clock.advance(1)  # failures count after the latest success
    for round_ in range(10):  # the attacker keeps op's name waiting, round after round
        for _ in range(3):  # (op's sign-in below ends the run of failures, so it takes three again)
            _failure(attacker, "op", f"guess {round_}")
        _failure(new_browser, "op", TEST_PASSWORD)  # a browser op never used must wait ...
        assert sign_in_client(colleague, "op").status_code == 303  # ... op's own browser need not
        colleague.get("/logout")
        clock.advance(60)
    # The device cookie is for op only: it does not lift the wait on another name.
    for _ in range(3):
        _failure(attacker, "dm", "guess")
    _failure(colleague, "dm", TEST_PASSWORD)
    # One browser remembers several users (a shared command-centre PC).
    clock.advance(120)
    assert sign_in_client(colleague, "dm").status_code == 303
    clock.advance(1)
    for _ in range(3):
        _failure(attacker, "op", "guess again")
    assert sign_in_client(colleague, "op").status_code == 303
    # A trust lapses after auth.device_trust_days.
    clock.advance(30 * 86_400)
    for _ in range(3):
        _failure(attacker, "op", "a month later")
    _failure(colleague, "op", TEST_PASSWORD)


def test_a_device_cookie_is_no_licence_to_guess(make_app):
    app, store, svc, clock = make_app(lockout_failures=3, lockout_backoff_s=30, lockout_backoff_max_s=120,
                                      address_lockout_failures=1000, login_rate_per_min=1000)
    owner = _client(app, "198.51.100.20")
    sign_in_client(owner, "op")
    stolen = owner.get_cookie("pheoc_device", path="/login").value
    thief = _client(app, "203.0.113.7")
    thief.set_cookie("pheoc_device", stolen, path="/login")
    clock.advance(1)
    for _ in range(3):
        _failure(thief, "op", "guessing with the cookie")  # the name's failures count as always ...
    _failure(thief, "op", TEST_PASSWORD)  # ... and after 3 failures the cookie is trusted no more
    forged = _client(app, "203.0.113.8")
    forged.set_cookie("pheoc_device", stolen[:-2] + ("AA" if not stolen.endswith("AA") else "BB"), path="/login")
    _failure(forged, "op", TEST_PASSWORD)  # an altered signature is not trusted
    clock.advance(120)
    assert sign_in_client(thief, "op").status_code == 303  # only the wait's length, as for any browser


def test_device_cookies_outlive_a_restart_only_with_the_configured_key(settings_factory, monkeypatch):
    from app import create_app
    from auth.users import add_user
    from store import Store

    settings = settings_factory(auth={**FAST_AUTH, "lockout_failures": 1, "lockout_backoff_s": 60,
                                      "lockout_backoff_max_s": 60})
    with Store(settings.path(settings.store.path)) as store:
        def start(key: str | None):
            """A fresh app on the same database, as after a restart, with server.secret_key_env's variable."""
            if key is None:
                monkeypatch.delenv("PHEOC_SECRET_KEY", raising=False)
            else:
                monkeypatch.setenv("PHEOC_SECRET_KEY", key)
            app = create_app(settings, store)
            app.server.test_client().get("/healthz")
            return app

        key = "k" * 32
        app = start(key)
        svc = app.server.extensions["pheoc.auth"]
        add_user(store, svc.passwords, "op", "operator", TEST_PASSWORD, actor="test")
        browser = _client(app, "198.51.100.20")
        assert sign_in_client(browser, "op").status_code == 303
        cookie = browser.get_cookie("pheoc_device", path="/login").value
        svc.stop()
        trusted = []
        for restart_key in (key, "other" * 7, None):
            app = start(restart_key)
            _failure(_client(app, "203.0.113.7"), "op", "an attacker's guess")  # op must now wait 60 s
            again = _client(app, "198.51.100.20")
            again.set_cookie("pheoc_device", cookie, path="/login")
            trusted.append(sign_in_client(again, "op").status_code == 303)
            app.server.extensions["pheoc.auth"].stop()
        # The same key: still trusted. Another key, or none (a new random one per start): not.
        assert trusted == [True, False, False]


def test_auth_and_server_settings_are_checked_with_their_key(settings_factory, monkeypatch):
    from app import create_app
    from settings import ConfigError
    from store import Store
    for auth, key in (({"lockout_backoff_s": 200, "lockout_backoff_max_s": 100}, "auth.lockout_backoff_s"),
                      ({"lockout_backoff_max_s": 1000, "lockout_window_s": 900}, "auth.lockout_backoff_max_s"),
                      ({"device_trust_days": 0}, "device_trust_days")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            settings_factory(auth={**FAST_AUTH, **auth})
    monkeypatch.setenv("PHEOC_SECRET_KEY", "too short")
    settings = settings_factory(auth=FAST_AUTH)
    with Store(settings.path(settings.store.path)) as store:
        with pytest.raises(ConfigError, match=r"server\.secret_key_env.*PHEOC_SECRET_KEY holds 9 characters"):
            create_app(settings, store)


def test_address_lockout_across_names(make_app):
    app, store, svc, clock = make_app(lockout_failures=50, address_lockout_failures=4, lockout_window_s=900)
    attacker = _client(app, "203.0.113.7")
    assert sign_in_client(attacker, "dm").status_code == 303  # a device cookie for dm on this browser
    clock.advance(1)  # failures count after the latest success
    for name in ("alice", "bob", "carol", "dave"):
        _failure(attacker, name, "password1234")
    assert _refused(sign_in_client(attacker, "op"))  # the address is blocked, even for a real user
    assert _refused(sign_in_client(attacker, "dm"))  # and even for a trusted browser
    colleague = _client(app, "198.51.100.20")
    assert sign_in_client(colleague, "op").status_code == 303
    clock.advance(901)
    assert sign_in_client(attacker, "op").status_code == 303  # the block lifts as the failures age out


def test_login_rate_limit_and_csrf(make_app):
    app, *_ = make_app(login_rate_per_min=3)
    client = app.server.test_client()
    no_form = client.post("/login", data={"username": "op", "password": TEST_PASSWORD})
    assert no_form.status_code == 400  # no CSRF cookie/token: the form must come from this site
    statuses = [sign_in_client(client, "op", "wrong password!").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the first POST (no form) used up one of the 3
    assert client.post("/login", data={}).headers.get("Retry-After") == "60"


@pytest.mark.parametrize("target, expected", [
    ("/rejected?x=1", "/rejected?x=1"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("javascript:alert(1)", "/"), ("/logout", "/"), ("", "/")])
def test_only_local_paths_follow_a_login(target, expected):
    from auth.web import safe_next
    assert safe_next(target) == expected


def test_healthz_login_page_and_public_overview_need_no_session(make_app):
    app, store, *_ = make_app()
    client = app.server.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200
    values: list[str] = []

    def strings(node):
        if isinstance(node, dict):
            values.extend(node)
            for v in node.values():
                strings(v)
        elif isinstance(node, list):
            for v in node:
                strings(v)
        elif isinstance(node, str):
            values.append(node)
    strings(health.get_json())
    assert not {"op", "exec", "admin", "dm"} & set(values)  # counts and times only, nobody's name
    assert "argon2" not in health.get_data(as_text=True)
    page = client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html  # no external assets
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert client.get("/").status_code == 200  # the public overview
    redirect = client.get("/rejected")
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith("/login?next=/rejected")


def test_signed_in_role_without_the_page_permission_gets_403(make_app):
    from store import queries_access as qa
    app, store, *_ = make_app()
    client = app.server.test_client()
    sign_in_client(client, "exec")
    response = client.get("/rejected")
    assert response.status_code == 403 and "executive" in response.get_data(as_text=True)
    store.flush()
    last = qa.audit_tail(store, 1)[0]
    assert (last.actor, last.action, last.target) == ("exec", "policy_denied", "page:/rejected")


def test_first_admin_comes_from_the_environment(settings_factory, monkeypatch):
    from app import create_app
    from store import Store
    from store import queries_access as qa
    monkeypatch.setenv("PHEOC_ADMIN_USER", "chief")
    monkeypatch.setenv("PHEOC_ADMIN_PASSWORD", "first admin passphrase")
    settings = settings_factory(auth=FAST_AUTH)
    with Store(settings.path(settings.store.path)) as store:
        create_app(settings, store)
        user = qa.get_user(store, "chief")
        assert user is not None and user.role == "admin"
        create_app(settings, store)  # only when there are no users: a second start changes nothing
        assert qa.user_count(store) == 1


def test_user_rules(make_app):
    from auth.passwords import WeakPassword
    from auth.users import UserError, add_user
    app, store, svc, _ = make_app()
    with pytest.raises(UserError, match="already exists"):
        add_user(store, svc.passwords, "OP", "operator", TEST_PASSWORD, actor="t")
    with pytest.raises(UserError, match="role"):
        add_user(store, svc.passwords, "pat", "public", TEST_PASSWORD, actor="t")
    with pytest.raises(UserError, match="precinct"):
        add_user(store, svc.passwords, "cop", "police", TEST_PASSWORD, actor="t", precincts=("NOPE",))
    with pytest.raises(UserError, match="only police"):
        add_user(store, svc.passwords, "ana", "analyst", TEST_PASSWORD, actor="t", precincts=("P1",))
    with pytest.raises(WeakPassword):
        add_user(store, svc.passwords, "shorty", "analyst", "short", actor="t")


def test_police_bound_to_a_precinct_carries_it_in_the_principal(make_app):
    from flask import g

    from auth.users import add_user
    from auth.policy import current_principal
    app, store, svc, _ = make_app()
    store.write("INSERT INTO areas VALUES ('P9', 'Precinct 9', 'precinct', 0, '{}', 0, 0, 'test', 'h', now())")
    add_user(store, svc.passwords, "cop", "police", TEST_PASSWORD, actor="t", precincts=("P9",))
    client = app.server.test_client()
    sign_in_client(client, "cop")
    with app.server.test_request_context("/"):
        resolved = svc.sessions.resolve(client.get_cookie("pheoc_session").value, activity=False)
        g.pheoc_principal = resolved.principal
        principal = current_principal()
    assert principal.role == "police" and principal.precincts == frozenset({"P9"})
    assert not principal.may_see_small_counts and principal.sees_at_least("cells")


def test_users_cli_adds_lists_disables_and_resets(settings_factory, capsys, monkeypatch):
    import io

    from app import main
    settings = settings_factory(auth=FAST_AUTH)
    cfg = str(settings.base_dir / "config.yaml")
    monkeypatch.setattr("sys.stdin", io.StringIO("cli chosen passphrase\n"))
    assert main(["users", "add", "ana", "--role", "analyst", "--password-stdin", "--config", cfg]) == 0
    assert main(["users", "add", "cop", "--role", "police", "--config", cfg]) == 0  # generated, printed
    out = capsys.readouterr().out
    assert "added ana (analyst)" in out and "password: " in out
    assert main(["users", "disable", "ana", "--config", cfg]) == 0
    assert main(["users", "reset-password", "cop", "--config", cfg]) == 0
    assert main(["users", "list", "--config", cfg]) == 0
    listing = capsys.readouterr().out
    assert "ana" in listing and "disabled" in listing and "cop" in listing
    assert main(["users", "add", "ana", "--role", "analyst", "--config", cfg]) == 2
    assert csrf_from('<input name="csrf" value="abc">') == "abc"
