"""Handlers of /api/v1. Each checks its permission first, parses its parameters strictly, calls a read
model and returns JSON; the numbers are the read model's, so the same request gives the same
numbers as the page that shows them."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
from flask import Blueprint, Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from api import openapi
from auth.audit_buffer import AuditBuffer
from auth.policy import AUDIT_BUFFER_KEY, PRINCIPAL_KEY, PolicyDenied, current_principal, deny
from auth.principal import Principal
from auth.runtime import current_runtime
from auth.tokens import TokenResolver, bearer_of
from services.areas import area_list
from services.audit import audit_view
from services.capacity import capacity_outlooks, capacity_view
from services.clusters import cluster_list, zone_list
from services.formatting import json_number as number
from services.indicators import NoIndicators, UnknownArea, indicator_report
from store.definitions import CITYWIDE

PREFIX = "/api/v1"
TOKENS_KEY = "pheoc.tokens"
bp = Blueprint("api_v1", __name__, url_prefix=PREFIX)


class ApiError(Exception):
    """An answer other than 200: HTTP status, a stable code, the parameter at fault (if one), a message."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.parameter = status, code, message, parameter


def _error_body(status: int, code: str, message: str, parameter: str | None = None):
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if parameter:
        body["error"]["parameter"] = parameter
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pheoc"'  # RFC 9110 §15.5.2, RFC 6750 §3
    return response


# ---- credentials ---------------------------------------------------------------------------------------
@bp.before_request
def _bearer_token():
    """A request with ``Authorization: Bearer`` acts as the token; a bad token is 401, never the public."""
    token = bearer_of(request.headers.get("Authorization"))
    if request.headers.get("Authorization") is not None and token is None:
        raise ApiError(401, "bad_credentials", "Authorization must be 'Bearer <token>'")
    if token is None:
        return None
    resolver: TokenResolver = current_runtime_extension(TOKENS_KEY)
    result = resolver.resolve(token)
    if result.principal is None:
        raise ApiError(401, "bad_credentials", "the token is not valid (unknown or revoked)")
    setattr(g, PRINCIPAL_KEY, result.principal)
    buffer: AuditBuffer | None = current_runtime_extension(AUDIT_BUFFER_KEY, required=False)
    detail = {"role": result.principal.role, "path": request.path, "args": request.args.to_dict(flat=True),
              "addr": request.remote_addr}
    if buffer is not None:
        buffer.add(result.principal.user, "api_token_used", request.path, detail)
    return None


def current_runtime_extension(key: str, required: bool = True):
    from flask import current_app
    value = current_app.extensions.get(key)
    if value is None and required:
        raise RuntimeError(f"{key} is not installed (create_app installs it)")
    return value


def need(permission: str) -> Principal:
    """The caller, if allowed: 401 for the public (credentials would help), 403 for a signed-in caller."""
    principal = current_principal()
    if permission in principal.permissions:
        return principal
    if not principal.signed_in:
        raise ApiError(401, "credentials_required", f"sign in or send a bearer token to read this ({permission})")
    deny(principal, f"api:{request.path}")  # audited; raises PolicyDenied -> 403


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return _error_body(err.status, err.code, err.message, err.parameter)


@bp.errorhandler(PolicyDenied)
def _denied(err: PolicyDenied):
    return _error_body(403, "forbidden", f"{err.principal.role} may not {err.target}")


def _http_error(err: HTTPException):
    """404/405 and the like under /api as JSON (other paths keep the site's own pages)."""
    if not request.path.startswith(PREFIX):
        return err
    return _error_body(err.code or 500, (err.name or "error").lower().replace(" ", "_"), err.description or "")


# ---- parameters ----------------------------------------------------------------------------------------
Parser = Callable[[str, str], Any]


def parse_date(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be a date YYYY-MM-DD, got {text[:40]!r}", name) from None


def parse_datetime(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be an ISO 8601 date or time, got {text[:40]!r}",
                       name) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_text(name: str, text: str) -> str:
    if len(text) > 200:
        raise ApiError(400, "bad_parameter", f"{name} is longer than 200 characters", name)
    return text


def parse_limit(name: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise ApiError(400, "bad_parameter", f"{name} must be a whole number from 1 to 1000", name)
    return int(text)


def params(allowed: Mapping[str, Parser]) -> dict[str, Any]:
    """The query parameters, parsed; an unknown or repeated one is a 400 naming it."""
    out: dict[str, Any] = {}
    for name in request.args:
        if name not in allowed:
            raise ApiError(400, "unknown_parameter", f"unknown parameter {name!r} (allowed: {', '.join(allowed)})",
                           name)
        values = request.args.getlist(name)
        if len(values) != 1:
            raise ApiError(400, "bad_parameter", f"{name} given {len(values)} times", name)
        out[name] = allowed[name](name, values[0])
    return out


# ---- JSON of read-model values -------------------------------------------------------------------------
def when(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    return value.isoformat() if isinstance(value, date) else str(value)


def text(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


# ---- endpoints -----------------------------------------------------------------------------------------
@bp.get("/indicators")
def indicators():
    principal = need("view_overview")
    p = params({"area": parse_text, "date": parse_date})
    rt = current_runtime()
    try:
        report = indicator_report(rt.store, rt.settings, principal, p.get("area", CITYWIDE), p.get("date"))
    except UnknownArea as exc:
        raise ApiError(400, "bad_parameter", str(exc), "area") from None
    except NoIndicators as exc:
        raise ApiError(404, "no_data", str(exc), "date" if "date" in p else None) from None
    return jsonify({
        "as_of": report.day.isoformat(), "latest": report.latest_day.isoformat(),
        "area": {"id": report.area_id, "name": report.area_name},
        "indicators": {key: {"value": number(f.value), "unit": f.unit, "label": f.label, "definition": f.definition,
                             "suppressed": f.suppressed, "display": f.display}
                       for key, f in report.figures.items()},
    })


@bp.get("/areas")
def areas():
    need("view_overview")
    params({})
    rows = area_list(current_runtime().store)
    return jsonify({"areas": [{"id": r.area_id, "name": r.name, "kind": r.kind, "population": number(r.population),
                               "centroid": {"lat": number(r.centroid_lat), "lng": number(r.centroid_lng)}}
                              for r in rows.itertuples(index=False)]})


def _counts(row: dict, columns) -> dict:
    return {c: number(row.get(c)) for c in columns}


@bp.get("/capacity")
def capacity():
    principal = need("view_capacity")
    params({})
    rt = current_runtime()
    view = capacity_view(rt.store, rt.settings, principal, datetime.now(timezone.utc))
    facilities = []
    for r in view.facilities.to_dict("records"):
        suppressed = sorted(c for c in ("beds_occupied", "icu_occupied", "ventilators_in_use", "covid_patients")
                            if r.get(c + "__suppressed"))
        facilities.append({
            "id": r["facility_id"], "name": r["name"], "kind": r["kind"], "area": text(r.get("area_name")),
            **_counts(r, ("beds_total", "beds_occupied", "icu_total", "icu_occupied", "ventilators_total",
                          "ventilators_in_use", "covid_patients", "occupancy", "icu_occupancy", "free_beds")),
            "suppressed": suppressed, "reported_at": when(r.get("reported_at")),
            "last_report_at": when(r.get("last_report_at")), "stale": bool(r["stale"]),
            "days_until_full": {"median": _days(r.get("days_until_full")),
                                "upper": _days(r.get("days_until_full_upper"))}})
    outlooks = capacity_outlooks(rt.store, view.as_of) if view.as_of else pd.DataFrame()
    scoped: dict[str, list] = {"city": [], "facility": [], "area": []}
    for r in outlooks.to_dict("records"):
        scoped[r["scope"]].append({
            "id": r["scope_id"], "resource": r["resource"], "capacity": number(r["capacity"]),
            "threshold": number(r["threshold"]), "projected": bool(r["projected"]),
            "days_median": number(r["days_median"]), "days_upper": number(r["days_upper"]),
            "horizon_days": number(r["horizon_days"]), "trigger": bool(r["trigger"]), "note": text(r["note"])})
    return jsonify({"as_of": when(view.as_of), "reference_time": when(view.reference_time), "facilities": facilities,
                    "outlook": scoped})


def _days(value) -> int | str | None:
    """Days until full: a number, "beyond_horizon", or null (no projection)."""
    v = number(value)
    if v is None and isinstance(value, float) and math.isinf(value):
        return "beyond_horizon"
    return v


@bp.get("/clusters")
def clusters():
    principal = need("view_clusters")
    params({})
    rt = current_runtime()
    return jsonify(cluster_list(rt.store, rt.settings, principal, rt.today()))


@bp.get("/zones")
def zones():
    principal = need("view_clusters")
    params({})
    rt = current_runtime()
    return jsonify(zone_list(rt.store, rt.settings, principal))


@bp.get("/audit")
def audit():
    principal = need("read_audit")
    p = params({"action": parse_text, "user": parse_text, "since": parse_datetime, "until": parse_datetime,
                "limit": parse_limit})
    view = audit_view(current_runtime().store, principal, action=p.get("action"), actor=p.get("user"),
                      since=p.get("since"), until=p.get("until"), limit=p.get("limit", 100))
    return jsonify({"more": view.more, "actions": list(view.actions), "records": [
        {"seq": int(r["seq"]), "logged_at": when(r["logged_at"]), "user": r["actor"], "action": r["action"],
         "target": text(r["target"]), "detail": r["detail"]} for r in view.rows.to_dict("records")]})


@bp.get("/openapi.json")
def openapi_document():
    params({})
    return jsonify(openapi.document())


def install_api(app: Flask, store) -> None:
    """Register /api/v1 on the Flask app of create_app, with its token resolver."""
    app.extensions[TOKENS_KEY] = TokenResolver(store)
    from api.alerts import install_alert_routes  # /alerts, /warnings (+ the signed acknowledgement link)
    install_alert_routes(app)
    import api.police  # noqa: F401  (address check, addresses, precincts: added to bp before it registers)
    from api.briefing import install_briefing_routes  # /briefing, /open-data/* on bp; /briefing.pdf beside it
    install_briefing_routes(app)
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
