"""Wires access control into the Dash app's Flask server: hooks, the login and logout routes.

Per request (before Dash sees it):
1. the principal is loaded from the session cookie (``public`` without a valid session) and put on
   flask.g, where auth.policy.current_principal() finds it;
2. a POST to /_dash-update-component is authorised against the permission its callback declared
   with pages._secure.secure_callback; a callback that declared none is refused (default deny), and
   Dash's page router is authorised against the page it would render (its pathname read by
   position, as Dash reads it, and matched as Dash matches it: see page_module_for). The request's
   shape and input types are checked before Dash runs the callback (auth.callback_inputs): a
   mismatch is HTTP 400 with a JSON body;
3. a page load is authorised against the page table; an anonymous visitor is sent to /login.
Every refusal is HTTP 403 and is accounted for in the audit log (``policy_denied``; repeats are
counted into one record per window, see auth.denials).
"""
from __future__ import annotations

import hmac
import logging
import re
import secrets
from fnmatch import fnmatchcase
from urllib.parse import quote, unquote, urlsplit

import dash
from flask import Response, g, redirect, request
from werkzeug.middleware.proxy_fix import ProxyFix

from auth import login as login_flow
from auth.callback_inputs import BadCallbackRequest, check_request
from auth.callbacks import CALLBACK_INPUT_TYPES, CALLBACK_PERMISSIONS, callback_key, permissions_of_module
from auth.devices import COOKIE_NAME as DEVICE_COOKIE
from auth.devices import device_key
from auth.loginpage import FAILURE_MESSAGE, forbidden_page, login_page, message_page, signed_out_page
from auth.policy import AUDIT_BUFFER_KEY, DENIALS_KEY, PRINCIPAL_KEY, PolicyDenied, deny
from auth.principal import may_open_page
from auth.service import AuthService
from auth.sessions import COOKIE_NAME
from auth.users import ensure_first_admin

log = logging.getLogger(__name__)
AUTH_KEY = "pheoc.auth"
LOGIN_PATH, LOGOUT_PATH = "/login", "/logout"
CALLBACK_PATH = "/_dash-update-component"
CSRF_COOKIE = "pheoc_login_csrf"
# Served without looking at the session: static files, and /healthz for monitoring (counts only).
OPEN_PREFIXES = ("/_dash-component-suites/", "/assets/", "/_favicon.ico", "/_reload-hash", "/healthz")
ROUTER_OUTPUT = "_pages_content.children"  # Dash Pages' own callback that renders a page's layout
ROUTER_PATHNAME = {"id": "_pages_location", "property": "pathname"}  # the router's input naming the page
ENDED_NOTES = {"idle": "You were signed out after a period without activity.",
               "expired": "Your session reached its maximum length; please sign in again.",
               "revoked": "Your session was ended.", "disabled": "Your session was ended."}


def install_auth(app: dash.Dash, runtime) -> AuthService:
    """Attach sessions, authorisation and the login routes to the app; create the first admin if asked."""
    settings = runtime.settings
    svc = AuthService(runtime.store, settings.auth, device_key=device_key(settings.server.secret_key_env))
    server = app.server
    if settings.auth.trusted_proxies:
        n = settings.auth.trusted_proxies
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n)
    server.extensions[AUTH_KEY] = svc
    server.extensions["pheoc.ratelimit"] = svc.limiter
    server.extensions[DENIALS_KEY] = svc.denials
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


def stop_auth(app: dash.Dash) -> None:
    """Write what auth still holds in memory (denial counts, buffered audit records) before the store closes."""
    svc = app.server.extensions.get(AUTH_KEY)
    if svc is not None:
        svc.stop()
    buffer = app.server.extensions.get(AUDIT_BUFFER_KEY)  # set by app.create_app when it buffers reads
    if buffer is not None:
        buffer.close()


# ---- per request -------------------------------------------------------------------------------
def _client_addr() -> str:
    return request.remote_addr or "unknown"


def _automatic(body) -> bool:
    """A callback fired by a timer (dcc.Interval), not by a person: it does not keep a session alive."""
    changed = body.get("changedPropIds") if isinstance(body, dict) else None
    return isinstance(changed, list) and bool(changed) and all(str(c).endswith(".n_intervals") for c in changed)


def _before_request(app: dash.Dash, svc: AuthService):
    path = request.path
    if path.startswith(OPEN_PREFIXES):
        return None
    is_callback = path == CALLBACK_PATH and request.method == "POST"
    body = request.get_json(silent=True) if is_callback else None
    resolved = svc.sessions.resolve(request.cookies.get(COOKIE_NAME), activity=not _automatic(body))
    g.pheoc_session = resolved
    setattr(g, PRINCIPAL_KEY, resolved.principal)
    if is_callback:
        _authorise_callback(app, body)
        return None
    if request.method in ("GET", "HEAD") and path not in (LOGIN_PATH, LOGOUT_PATH):
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


def canonical_path(path: str) -> str:
    """A URL path reduced the way browsers and Dash Pages' router reduce it, to match page paths against.

    Dash's router (dash._pages._path_to_page) compares ``pathname.strip("/")`` with each page's
    ``path.strip("/")``: to it "//rejected" and "/rejected/" are /rejected. Browsers also resolve
    "." and ".." segments (RFC 3986 §5.2.4) and treat "\\" as "/" (WHATWG URL), and a path may
    arrive percent-encoded. Reducing all of these maps every spelling that Dash would render as a
    page onto that page; the few that Dash would answer with its 404 page instead (e.g.
    "/%72ejected") are then refused like the page itself, which costs nothing.
    """
    segments: list[str] = []
    for part in unquote(path).replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    return "/" + "/".join(segments)


def page_module_for(path: str) -> str | None:
    """The Dash Pages module that serves a URL path (None for paths that are no page), as Dash picks it."""
    wanted = canonical_path(path).strip("/")
    for page in dash.page_registry.values():  # in Dash's order, templates before the plain path
        template = page.get("path_template")
        # dash._pages._parse_path_variables: each <variable> of a template is an fnmatch "*".
        if template and fnmatchcase(wanted, re.sub("<.*?>", "*", template.strip("/"))):
            return page.get("module")
        if wanted == str(page.get("path") or "").strip("/"):
            return page.get("module")
    return None


def _page_target(module: str) -> str:
    """How a refused page is named in the audit log: its registered path, however it was spelt."""
    page = next((p for p in dash.page_registry.values() if p.get("module") == module), {})
    return f"page:{page.get('path', module)}"


def _position(dependencies: list, wanted: dict) -> int:
    return next(i for i, d in enumerate(dependencies) if d["id"] == wanted["id"] and d["property"] == wanted["property"])


def _authorise_callback(app: dash.Dash, body) -> None:
    principal = g.get(PRINCIPAL_KEY)
    if not isinstance(body, dict):
        raise BadCallbackRequest("the body must be a JSON object")
    output = body.get("output")
    entry = app.callback_map.get(output) if isinstance(output, str) else None
    if entry is None or "callback" not in entry:
        deny(principal, "callback:unknown", "unknown_callback")
    if ROUTER_OUTPUT in output:
        # Dash passes the router its inputs by position; read the pathname from the same position.
        checked = check_request(body, entry, {})
        pathname = checked.inputs[_position(entry["inputs"], ROUTER_PATHNAME)]
        if pathname is not None and not pathname.startswith("/"):
            raise BadCallbackRequest("inputs: a pathname starts with '/'")  # Dash would raise (HTTP 500)
        module = page_module_for(pathname or "/")
        if module is not None and not may_open_page(principal, module, permissions_of_module(module)):
            deny(principal, _page_target(module), "page_not_allowed")
        return
    key = callback_key(entry["callback"])
    permission = CALLBACK_PERMISSIONS.get(key)
    if permission is None:
        deny(principal, f"callback:{key}", "callback_without_permission")
    if permission not in principal.permissions:
        deny(principal, permission, "missing_permission", callback=key)
    check_request(body, entry, CALLBACK_INPUT_TYPES.get(key, {}))


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
    deny(principal, _page_target(module), "page_not_allowed")


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
                                           _client_addr(), request.cookies.get(COOKIE_NAME),
                                           request.cookies.get(DEVICE_COOKIE))
        if outcome.ok:
            response = redirect(next_path, code=303)
            idle_s, absolute_s = svc.sessions.limits(outcome.role)
            # Persistent for the session's maximum length (the wall screen survives a browser restart);
            # the server enforces both time-outs whatever the browser keeps.
            response.set_cookie(COOKIE_NAME, outcome.token, max_age=absolute_s, path="/", httponly=True,
                                samesite="Strict", secure=_secure_cookies(svc))
            # The device cookie is sent to /login only, and outlives sessions and logouts (auth.devices).
            response.set_cookie(DEVICE_COOKIE, outcome.device_cookie, max_age=svc.cfg.device_trust_days * 86_400,
                                path=LOGIN_PATH, httponly=True, samesite="Strict", secure=_secure_cookies(svc))
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
