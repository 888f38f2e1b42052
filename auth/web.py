"""Wires access control into the Dash app's Flask server: hooks, the login and logout routes.

Per request (before Dash sees it):
1. the principal is loaded from the session cookie (``public`` without a valid session) and put on
   flask.g, where auth.policy.current_principal() finds it;
2. a POST to /_dash-update-component is authorised against the permission its callback declared
   with pages._secure.secure_callback; a callback that declared none is refused (default deny), and
   Dash's page router is authorised against the page it would render;
3. a page load is authorised against the page table; an anonymous visitor is sent to /login.
Every refusal is HTTP 403 and a ``policy_denied`` record in the audit log.
"""
from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import quote, urlsplit

import dash
from flask import Response, g, redirect, request
from werkzeug.middleware.proxy_fix import ProxyFix

from auth import login as login_flow
from auth.loginpage import FAILURE_MESSAGE, forbidden_page, login_page, message_page, signed_out_page
from auth.service import AuthService
from auth.sessions import COOKIE_NAME
from auth.users import ensure_first_admin
from auth.callbacks import CALLBACK_PERMISSIONS, callback_key, permissions_of_module
from auth.policy import PRINCIPAL_KEY, PolicyDenied, deny, require
from auth.principal import may_open_page

log = logging.getLogger(__name__)
AUTH_KEY = "pheoc.auth"
LOGIN_PATH, LOGOUT_PATH = "/login", "/logout"
CALLBACK_PATH = "/_dash-update-component"
CSRF_COOKIE = "pheoc_login_csrf"
# Served without looking at the session: static files, and /healthz for monitoring (counts only).
OPEN_PREFIXES = ("/_dash-component-suites/", "/assets/", "/_favicon.ico", "/_reload-hash", "/healthz")
ROUTER_OUTPUT = "_pages_content.children"  # Dash Pages' own callback that renders a page's layout
ENDED_NOTES = {"idle": "You were signed out after a period without activity.",
               "expired": "Your session reached its maximum length; please sign in again.",
               "revoked": "Your session was ended.", "disabled": "Your session was ended."}


def install_auth(app: dash.Dash, runtime) -> AuthService:
    """Attach sessions, authorisation and the login routes to the app; create the first admin if asked."""
    settings = runtime.settings
    svc = AuthService(runtime.store, settings.auth)
    server = app.server
    if settings.auth.trusted_proxies:
        n = settings.auth.trusted_proxies
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n)
    server.extensions[AUTH_KEY] = svc
    server.extensions["pheoc.ratelimit"] = svc.limiter
    ensure_first_admin(runtime.store, settings, svc.passwords)

    server.before_request(lambda: _before_request(app, svc))
    server.after_request(lambda response: _after_request(svc, response))
    server.register_error_handler(PolicyDenied, _denied)

    def login_view():
        return _login(svc, settings.city.name)

    def logout_view():
        return _logout(svc)
    server.add_url_rule(LOGIN_PATH, "pheoc_login", login_view, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "pheoc_logout", logout_view, methods=["GET", "POST"])
    return svc


# ---- per request -------------------------------------------------------------------------------
def _client_addr() -> str:
    return request.remote_addr or "unknown"


def _automatic(body: dict) -> bool:
    """A callback fired by a timer (dcc.Interval), not by a person: it does not keep a session alive."""
    changed = body.get("changedPropIds") or []
    return bool(changed) and all(str(c).endswith(".n_intervals") for c in changed)


def _before_request(app: dash.Dash, svc: AuthService):
    path = request.path
    if path.startswith(OPEN_PREFIXES):
        return None
    is_callback = path == CALLBACK_PATH and request.method == "POST"
    body = (request.get_json(silent=True) or {}) if is_callback else {}
    resolved = svc.sessions.resolve(request.cookies.get(COOKIE_NAME), activity=not _automatic(body))
    g.pheoc_session = resolved
    setattr(g, PRINCIPAL_KEY, resolved.principal)
    if is_callback:
        _authorise_callback(app, body)
        return None
    if request.method in ("GET", "HEAD") and not path.startswith("/_") and path not in (LOGIN_PATH, LOGOUT_PATH):
        return _authorise_page(path, resolved.status)
    return None


def _after_request(svc: AuthService, response: Response) -> Response:
    resolved = g.get("pheoc_session")
    if resolved is not None and resolved.status not in ("none", "ok") and not g.get("pheoc_cookie_set"):
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict",
                               secure=_secure_cookies(svc))
    return response


def _secure_cookies(svc: AuthService) -> bool:
    mode = svc.cfg.secure_cookies
    return mode == "always" or (mode == "auto" and request.is_secure)


def page_module_for(path: str) -> str | None:
    """The Dash Pages module that serves a URL path (None for paths that are no page)."""
    wanted = path.rstrip("/") or "/"
    for page in dash.page_registry.values():
        if (str(page.get("path") or "").rstrip("/") or "/") == wanted:
            return page.get("module")
    return None


def _authorise_callback(app: dash.Dash, body: dict) -> None:
    principal = g.get(PRINCIPAL_KEY)
    output = body.get("output")
    entry = app.callback_map.get(output) if isinstance(output, str) else None
    if entry is None or "callback" not in entry:
        deny(principal, "callback:unknown", "unknown_callback")
    if ROUTER_OUTPUT in output:
        pathname = next((i.get("value") for i in body.get("inputs") or []
                         if isinstance(i, dict) and i.get("property") == "pathname"), None) or "/"
        module = page_module_for(str(pathname))
        if module is not None and not may_open_page(principal, module, permissions_of_module(module)):
            deny(principal, f"page:{pathname}", "page_not_allowed")
        return
    key = callback_key(entry["callback"])
    permission = CALLBACK_PERMISSIONS.get(key)
    if permission is None:
        deny(principal, f"callback:{key}", "callback_without_permission")
    require(permission)


def _authorise_page(path: str, session_status: str):
    module = page_module_for(path)
    if module is None:
        return None
    principal = g.get(PRINCIPAL_KEY)
    ended = session_status in ENDED_NOTES
    if not ended and may_open_page(principal, module, permissions_of_module(module)):
        return None
    if not principal.signed_in:
        target = f"{LOGIN_PATH}?next={quote(request.full_path.rstrip('?'), safe='/')}"
        return redirect(target + (f"&ended={session_status}" if ended else ""), code=302)
    deny(principal, f"page:{path}", "page_not_allowed")


def _denied(err: PolicyDenied):
    if request.path == CALLBACK_PATH:
        return Response('{"error": "forbidden"}', status=403, mimetype="application/json")
    return Response(forbidden_page(err.principal.role, err.target.removeprefix("page:")), status=403,
                    mimetype="text/html")


# ---- login and logout --------------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, host or protocol-relative //) may follow a login."""
    value = (value or "/").strip()
    parts = urlsplit(value)
    if (not value.startswith("/") or value.startswith("//") or "\\" in value or parts.scheme or parts.netloc
            or value.startswith((LOGIN_PATH, LOGOUT_PATH))):
        return "/"
    return value


def _csrf_token() -> tuple[str, bool]:
    """The browser's login-form token (a double-submit cookie; SameSite=Strict keeps other sites out)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(24), True


def _login(svc: AuthService, city: str):
    token, fresh = _csrf_token()
    next_path = safe_next(request.values.get("next"))
    principal = g.get(PRINCIPAL_KEY)
    message = None
    note = ENDED_NOTES.get(request.args.get("ended", ""))
    if request.method == "POST":
        if not svc.limiter.allow("login", _client_addr()):
            response = Response(message_page("Too many attempts", "Too many sign-in attempts from this address; "
                                             "wait a minute and try again."), status=429, mimetype="text/html")
            response.headers["Retry-After"] = "60"
            return response
        sent = request.form.get("csrf", "")
        if fresh or not hmac.compare_digest(sent.encode(), token.encode()):
            return Response(message_page("Form expired", "The sign-in form expired; open it again."),
                            status=400, mimetype="text/html")
        outcome = login_flow.attempt_login(svc, request.form.get("username", ""), request.form.get("password", ""),
                                           _client_addr(), request.cookies.get(COOKIE_NAME))
        if outcome.ok:
            response = redirect(next_path, code=303)
            idle_s, absolute_s = svc.sessions.limits(outcome.role)
            # Persistent for the session's maximum length (the wall screen survives a browser restart);
            # the server enforces both time-outs whatever the browser keeps.
            response.set_cookie(COOKIE_NAME, outcome.token, max_age=absolute_s, path="/", httponly=True,
                                samesite="Strict", secure=_secure_cookies(svc))
            g.pheoc_cookie_set = True
            return response
        # 200 with the form again, whatever the reason: a 401 would need a WWW-Authenticate scheme
        # (RFC 9110 §15.5.2) that a form login does not have.
        message, note = FAILURE_MESSAGE, None
    signed_in_as = principal.user if principal is not None and principal.signed_in else None
    response = Response(login_page(city, token, next_path, message=message, note=note, signed_in_as=signed_in_as),
                        status=200, mimetype="text/html")
    if fresh:
        response.set_cookie(CSRF_COOKIE, token, path=LOGIN_PATH, httponly=True, samesite="Strict",
                            secure=_secure_cookies(svc))
    return response


def _logout(svc: AuthService):
    token = request.cookies.get(COOKIE_NAME)
    principal = g.get(PRINCIPAL_KEY)
    if token and principal is not None and principal.signed_in:
        login_flow.logout(svc, token, principal.user, _client_addr())
    response = Response(signed_out_page(), status=200, mimetype="text/html")
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict", secure=_secure_cookies(svc))
    g.pheoc_cookie_set = True
    return response
