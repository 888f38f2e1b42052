"""Handlers of /api/v1 for police: the address check, address search, and precinct risk.

Registered on the same blueprint as the rest of /api/v1 (api.v1 imports this module before it
registers the blueprint), so bearer tokens, JSON errors and the parameter rules are the same.
"""
from __future__ import annotations

import math

from flask import current_app, jsonify

from api.v1 import ApiError, bp, need, number, params, parse_limit, parse_text, when
from auth.runtime import current_runtime
from services.address_check import AddressCheckRefused, check_address
from services.address_search import suggest_addresses
from services.precincts import PrecinctRisk, UnknownPrecinct, precinct_detail, precinct_risk

RATE_LIMITER_KEY = "pheoc.ratelimit"  # auth.web puts the app's RateLimiter here


def parse_coordinate(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be a number in degrees, got {text[:40]!r}", name) from None
    if not math.isfinite(value):
        raise ApiError(400, "bad_parameter", f"{name} must be finite", name)
    return value


def _refused(exc: AddressCheckRefused):
    body = {"error": {"code": exc.code, "message": exc.message}}
    if exc.parameter:
        body["error"]["parameter"] = exc.parameter
    if exc.suggestions:
        body["error"]["suggestions"] = list(exc.suggestions)
    response = jsonify(body)
    response.status_code = exc.status
    if exc.status == 429:
        response.headers["Retry-After"] = "60"  # a bucket refills one check every 60/rate s; a minute refills it
    return response


@bp.get("/address-check")
def address_check():
    principal = need("check_address")
    p = params({"address": parse_text, "address_id": parse_text, "lat": parse_coordinate, "lng": parse_coordinate,
                "purpose": parse_text})
    rt = current_runtime()
    try:
        answer = check_address(rt.store, rt.settings, principal, current_app.extensions[RATE_LIMITER_KEY],
                               purpose=p.get("purpose"), address=p.get("address"), address_id=p.get("address_id"),
                               lat=p.get("lat"), lng=p.get("lng"))
    except AddressCheckRefused as exc:
        return _refused(exc)
    return jsonify(answer)


@bp.get("/addresses")
def addresses():
    need("check_address")
    p = params({"q": parse_text, "limit": parse_limit})
    if not p.get("q", "").strip():
        raise ApiError(400, "bad_parameter", "q (the address typed so far) is required", "q")
    found = suggest_addresses(current_runtime().store, p["q"], min(p.get("limit", 10), 20))
    return jsonify({"addresses": [{"id": a.address_id, "text": a.text} for a in found]})


def _figure(row: dict, column: str):
    return {"value": number(row.get(column)), "suppressed": bool(row.get(column + "__suppressed", False))}


def precinct_json(row: dict, tiers: tuple[str, ...]) -> dict:
    return {
        "id": row["precinct_id"], "name": row["name"], "population": number(row.get("population")),
        "cases_7d": _figure(row, "cases_7d"), "cases_previous_7d": _figure(row, "cases_previous_7d"),
        "change_7d": _figure(row, "change_7d"), "rate_7d_per_100k": _figure(row, "rate_7d_per_100k"),
        "trend_7d": row.get("trend_7d") if isinstance(row.get("trend_7d"), str) else None,
        "cases_14d": _figure(row, "cases_14d"), "cases_previous_14d": _figure(row, "cases_previous_14d"),
        "change_14d": _figure(row, "change_14d"), "rate_14d_per_100k": _figure(row, "rate_14d_per_100k"),
        "trend_14d": row.get("trend_14d") if isinstance(row.get("trend_14d"), str) else None,
        "zone_shares": {t: number(row["zone_shares"].get(t, 0.0)) for t in tiers},
        "tier": row.get("tier") if isinstance(row.get("tier"), str) else None,
        "active_alerts": int(row.get("active_alerts", 0)),
    }


def _risk_json(risk: PrecinctRisk) -> dict:
    return {"as_of": when(risk.as_of), "tiers": list(risk.tiers), "scoped_to_your_precincts": risk.scoped,
            "precincts": [precinct_json(r, risk.tiers) for r in risk.rows.to_dict("records")]}


@bp.get("/precincts")
def precincts():
    principal = need("view_precincts")
    params({})
    rt = current_runtime()
    return jsonify(_risk_json(precinct_risk(rt.store, rt.settings, principal)))


@bp.get("/precincts/<precinct_id>")
def precinct(precinct_id: str):
    principal = need("view_precincts")
    params({})
    rt = current_runtime()
    try:
        detail = precinct_detail(rt.store, rt.settings, principal, precinct_id[:64])
    except UnknownPrecinct as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    history = [{"day": when(r["day"]), "cases": _figure(r, "cases"), "cases_7d": _figure(r, "cases_7d"),
                "rate_7d_per_100k": _figure(r, "rate_7d_per_100k")} for r in detail.history.to_dict("records")]
    zones = [{"id": z["zone_id"], "cluster_id": z["cluster_id"], "role": z["role"], "tier": z["tier"],
              "since": when(z["since"]), "share": number(z["share"])} for z in detail.zones.to_dict("records")]
    alerts = [{"id": int(a["alert_id"]), "raised_at": when(a["raised_at"]), "severity": a["severity"],
               "kind": a["kind"], "area_id": a["area_id"], "title": a["title"], "status": a["status"]}
              for a in detail.alerts.to_dict("records")]
    return jsonify({"precinct": precinct_json(detail.row, detail.tiers), "history": history, "zones": zones,
                    "alerts": alerts})
