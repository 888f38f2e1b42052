"""Alerts and warnings in the JSON API, and the signed acknowledgement link agencies receive.

    GET  /api/v1/alerts                          the inbox: one row per series and area (view_alerts)
    POST /api/v1/alerts/<id>/acknowledge          {"note": "..."} (acknowledge_alerts)
    POST /api/v1/alerts/<id>/resolve              {"note": "..."} (acknowledge_alerts)
    GET  /api/v1/warnings                         CAP warnings with cap_url, acknowledgements, deliveries
    GET  /api/v1/warnings/<id>/cap.xml            the CAP 1.2 document as issued (application/cap+xml)
    POST /api/v1/warnings                         compose (issue_warnings): proposed, sent once approved
    POST /api/v1/warnings/<id>/approve|reject|cancel                   (issue_warnings)
    POST /api/v1/warnings/<id>/acknowledge        {"recipient": "police"} (acknowledge_warnings)
    GET/POST /warnings/ack?w=&r=&e=&s=            the signed link: a page with one button, no sign-in

Posts made with a browser session must be JSON (``Content-Type: application/json``, which a form on
another site cannot send without a CORS preflight that pheoc never answers) and, when the browser
says where they come from (``Origin``, ``Sec-Fetch-Site``), come from this site; the session cookie
is SameSite=Strict besides. Posts with a bearer token carry no ambient credentials and need neither.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape

from flask import Blueprint, Flask, Response, jsonify, request

from api.v1 import ApiError, bp, need, number, params, parse_limit, parse_text, text, when
from auth.runtime import current_runtime
from services.drill import BANNER, exercise_banner
from services.alert_inbox import AlertStateError, BadAlertFilter, act_on_alert, alert_inbox
from services.warnings import (
    ExerciseOnly,
    WarningInputError,
    WarningStateError,
    acknowledge_by_link,
    acknowledge_warning,
    approve_warning,
    cancel_warning,
    cap_document,
    channel_health,
    compose_warning,
    reject_warning,
    warning_list,
)

ACK_PATH = "/warnings/ack"
link_bp = Blueprint("warning_links", __name__)


# ---- posts: CSRF and the JSON body ---------------------------------------------------------------------
def _json_body(allowed: tuple[str, ...]) -> dict:
    from auth.policy import current_principal

    principal = current_principal()
    if principal.via == "session":
        if request.mimetype != "application/json":
            raise ApiError(415, "json_required", "send the body as application/json")
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
            raise ApiError(403, "cross_site", "posts from another site are refused")
        if request.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
            raise ApiError(403, "cross_site", "posts from another site are refused")
    if not request.content_length:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})",
                       unknown[0])
    return body


def _field(body: dict, name: str, kind=str):
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise ApiError(400, "bad_parameter", f"{name} has the wrong type", name)
    return value


# ---- alerts ----------------------------------------------------------------------------------------------
def alert_json(r: dict) -> dict:
    return {"id": int(r["alert_id"]), "series": r["series"], "raised_at": when(r["raised_at"]),
            "first_raised_at": when(r["first_raised_at"]), "episodes": int(r["episodes"]),
            "severity": r["severity"], "kind": r["kind"],
            "area": None if not isinstance(r["area_id"], str) else {"id": r["area_id"], "name": r["area_name"]},
            "title": r["title"], "detail": text(r["detail"]), "status": r["state"],
            "acknowledged": None if text(r["acknowledged_by"]) is None else {
                "by": r["acknowledged_by"], "at": when(r["acknowledged_at"]), "note": text(r["ack_note"])},
            "resolved_at": when(r["resolved_at"]), "resolved_by": text(r["resolved_by"]),
            "rule_id": text(r["rule_id"]), "rule_version": text(r["rule_version"])}


@bp.get("/alerts")
def alerts():
    principal = need("view_alerts")
    p = params({"state": parse_text, "kind": parse_text, "area": parse_text, "severity": parse_text,
                "limit": parse_limit})
    try:
        inbox = alert_inbox(current_runtime().store, principal, state=p.get("state", "open"), kind=p.get("kind"),
                            area_id=p.get("area"), severity=p.get("severity"), limit=p.get("limit", 200))
    except BadAlertFilter as exc:
        raise ApiError(400, "bad_parameter", str(exc), exc.parameter) from None
    return jsonify({"total": inbox.total, "kinds": list(inbox.kinds),
                    "alerts": [alert_json(r) for r in inbox.rows.to_dict("records")]})


def _act(alert_id: int, action: str):
    principal = need("acknowledge_alerts")
    params({})
    body = _json_body(("note",))
    try:
        change = act_on_alert(current_runtime().store, principal, alert_id, action, _field(body, "note"))
    except AlertStateError as exc:
        status = 404 if str(exc).startswith("no alert") else 409
        raise ApiError(status, "not_found" if status == 404 else "conflict", str(exc)) from None
    return jsonify({"alert": {"id": alert_id, "status": change["to"], "previous": change["from"]}})


@bp.post("/alerts/<int:alert_id>/acknowledge")
def acknowledge_alert(alert_id: int):
    return _act(alert_id, "acknowledge")


@bp.post("/alerts/<int:alert_id>/resolve")
def resolve_alert(alert_id: int):
    return _act(alert_id, "resolve")


# ---- warnings --------------------------------------------------------------------------------------------
def cap_url(warning_id: int) -> str:
    return f"/api/v1/warnings/{int(warning_id)}/cap.xml"


@bp.get("/warnings")
def warnings():
    principal = need("view_alerts")
    p = params({"approval": parse_text, "limit": parse_limit})
    rt = current_runtime()
    try:
        listed = warning_list(rt.store, rt.settings, principal, approval=p.get("approval"), limit=p.get("limit", 200))
    except WarningInputError as exc:
        raise ApiError(400, "bad_parameter", str(exc), exc.field) from None
    rows = []
    for r in listed.rows.to_dict("records"):
        issued = r["approval"] == "approved"
        rows.append({
            "id": int(r["warning_id"]), "identifier": r["identifier"], "status": r["status"],
            "msg_type": r["msg_type"], "approval": r["approval"], "sent": text(r["sent"]),
            "expires": text(r["expires"]), "headline": r["headline"], "event": r["event"],
            "urgency": r["urgency"], "severity": r["severity"], "certainty": r["certainty"], "rule": r["rule"],
            "references": number(r["references_id"]), "series": r["series_id"],
            "proposed": {"by": r["proposed_by"], "at": when(r["proposed_at"])},
            "decided": None if not isinstance(r["decided_by"], str) else {
                "by": r["decided_by"], "at": when(r["decided_at"]), "note": text(r["decision_note"])},
            "cap_url": cap_url(r["warning_id"]) if issued else None,
            "acknowledged": [{"recipient": a["recipient"], "at": when(a["at"]), "via": a["via"]}
                             for a in r["acknowledged"]],
            "not_acknowledged": list(r["not_acknowledged"]),
            "deliveries": [{**d, "delivered_at": when(d["delivered_at"]), "last_error": text(d["last_error"])}
                           for d in r["deliveries"]]})
    return jsonify({"exercise": listed.exercise, "warnings": rows,
                    "channels": channel_health(rt.store, principal)["channels"]})


@bp.get("/warnings/<int:warning_id>/cap.xml")
def warning_cap(warning_id: int):
    principal = need("view_alerts")
    params({})
    xml = cap_document(current_runtime().store, principal, warning_id)
    if xml is None:
        raise ApiError(404, "not_found", f"no issued warning {warning_id}")
    return Response(xml, mimetype="application/cap+xml")


def _warning_error(exc: Exception):
    if isinstance(exc, WarningInputError):
        return ApiError(400, "bad_parameter", str(exc), exc.field)
    if isinstance(exc, ExerciseOnly):
        return ApiError(409, "exercise_only", str(exc), "status")
    return ApiError(409, "conflict", str(exc))


@bp.post("/warnings")
def compose():
    principal = need("issue_warnings")
    params({})
    body = _json_body(("headline", "description", "instruction", "areas", "event", "urgency", "severity",
                       "certainty", "status"))
    rt = current_runtime()
    try:
        warning_id = compose_warning(
            rt.store, rt.settings, principal, headline=_field(body, "headline"),
            description=_field(body, "description"), instruction=_field(body, "instruction"),
            area_ids=_field(body, "areas", list), event=_field(body, "event") or "Public health warning",
            urgency=_field(body, "urgency") or "Expected", severity=_field(body, "severity") or "Moderate",
            certainty=_field(body, "certainty") or "Likely", status=_field(body, "status"))
    except (WarningInputError, ExerciseOnly) as exc:
        raise _warning_error(exc) from None
    return jsonify({"warning": {"id": warning_id, "approval": "proposed"}}), 201


@bp.post("/warnings/<int:warning_id>/approve")
def approve(warning_id: int):
    return _decide(warning_id, "approve")


@bp.post("/warnings/<int:warning_id>/reject")
def reject(warning_id: int):
    return _decide(warning_id, "reject")


@bp.post("/warnings/<int:warning_id>/cancel")
def cancel(warning_id: int):
    return _decide(warning_id, "cancel")


def _decide(warning_id: int, action: str):
    principal = need("issue_warnings")
    params({})
    body = _json_body(("note",))
    rt = current_runtime()
    note = _field(body, "note")
    try:
        if action == "approve":
            issued = approve_warning(rt.store, rt.settings, principal, warning_id, note)
            return jsonify({"warning": {"id": warning_id, "approval": "approved", "identifier": issued.identifier,
                                        "cap_url": cap_url(warning_id), "deliveries": len(issued.deliveries)}})
        if action == "reject":
            reject_warning(rt.store, principal, warning_id, note)
            return jsonify({"warning": {"id": warning_id, "approval": "rejected"}})
        cancel_id = cancel_warning(rt.store, rt.settings, principal, warning_id, note)
        return jsonify({"warning": {"id": cancel_id, "approval": "proposed", "msg_type": "Cancel"}}), 201
    except (WarningInputError, WarningStateError, ExerciseOnly) as exc:
        raise _warning_error(exc) from None


@bp.post("/warnings/<int:warning_id>/acknowledge")
def acknowledge(warning_id: int):
    principal = need("acknowledge_warnings")
    params({})
    body = _json_body(("recipient",))
    rt = current_runtime()
    try:
        new = acknowledge_warning(rt.store, rt.settings, principal, warning_id, _field(body, "recipient") or "")
    except (WarningInputError, WarningStateError) as exc:
        raise _warning_error(exc) from None
    return jsonify({"acknowledged": True, "new": new})


# ---- the signed link -------------------------------------------------------------------------------------
def _page(title: str, body: str, status: int = 200) -> Response:
    html = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            "<link rel='stylesheet' href='/assets/pheoc.css'></head><body class='plain-page'>"
            f"<main class='panel' style='max-width:40rem;margin:3rem auto'><h1>{escape(title)}</h1>{body}</main>"
            "</body></html>")
    return Response(html, status=status, mimetype="text/html")


@link_bp.route(ACK_PATH, methods=["GET", "POST"])
def acknowledge_link():
    rt = current_runtime()
    args = request.values
    try:
        warning_id, expires = int(args.get("w", "")), int(args.get("e", ""))
    except ValueError:
        return _page("Link not valid", "<p>This acknowledgement link is incomplete.</p>", 400)
    recipient, signature = str(args.get("r", ""))[:60], str(args.get("s", ""))[:100]
    if request.method == "GET":
        # A GET changes nothing (mail scanners open links); the button below posts the same link.
        query = escape(request.query_string.decode("ascii", "replace"))
        return _page("Acknowledge this warning",
                     f"<p>Warning {warning_id}, for <strong>{escape(recipient)}</strong>.</p>"
                     f"<form method='post' action='{ACK_PATH}?{query}'>"
                     "<button type='submit'>Acknowledge receipt</button></form>")
    try:
        new = acknowledge_by_link(rt.store, rt.settings, warning_id, recipient, expires, signature,
                                  datetime.now(timezone.utc))
    except WarningInputError as exc:
        return _page("Not acknowledged", f"<p>{escape(str(exc))}.</p>", 403)
    except WarningStateError as exc:
        return _page("Not acknowledged", f"<p>{escape(str(exc))}.</p>", 404)
    return _page("Acknowledged", "<p>Thank you: the command centre sees your acknowledgement"
                 + ("" if new else " (it had been recorded before)") + ".</p>")


def install_alert_routes(app: Flask) -> None:
    """The routes above on ``bp`` are registered with it; the signed link lives outside /api. On a drill
    database every response is marked (services.drill)."""
    app.register_blueprint(link_bp)
    app.after_request(_mark_exercise)


def _mark_exercise(response: Response) -> Response:
    """In a drill, every response says EXERCISE: a header on all, a field in every JSON object answered."""
    if request.path.startswith(("/assets/", "/_dash-component-suites/", "/_favicon")):
        return response
    banner = exercise_banner(current_runtime().store)
    if banner is None:
        return response
    response.headers["X-Pheoc-Exercise"] = BANNER
    if (request.path.startswith("/api/") and response.mimetype == "application/json"
            and not response.direct_passthrough):
        body = response.get_json(silent=True)
        if isinstance(body, dict) and "exercise" not in body:
            response.set_data(json.dumps({"exercise": banner, **body}, default=str))
    return response
