"""The OpenAPI description of the alert and warning endpoints (api/alerts.py), merged into api.openapi."""
from __future__ import annotations

from api.openapi_parts import error_response as _error
from api.openapi_parts import query_param as _query

_ERRORS = {"400": _error("A parameter or body field is missing, unknown or malformed; error.parameter names it"),
           "401": _error("Credentials are needed (or the bearer token is unknown or revoked)"),
           "403": _error("The caller's role may not do this (or a browser post came from another site)")}


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _ok(schema: str, media: str = "application/json") -> dict:
    return {"description": "OK", "content": {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _post(summary: str, permission: str, fields: dict, path_id: str | None, extra: dict | None = None) -> dict:
    op = {"summary": summary,
          "description": f"Permission: {permission}. With a browser session: a JSON body, from this site only.",
          "parameters": [_path_id(path_id)] if path_id else [],
          "requestBody": {"required": False, "content": {"application/json": {"schema": {
              "type": "object", "additionalProperties": False, "properties": fields}}}},
          "responses": {"200": _ok("Result"), **_ERRORS, **(extra or {})}}
    return {"post": op}


_CONFLICT = {"409": _error("Not in a state that allows this (e.g. already acknowledged, or not a proposal)")}
_NOT_FOUND = {"404": _error("No such alert or warning")}


def alert_paths() -> dict:
    note = {"note": {"type": "string", "maxLength": 500}}
    return {
        "/alerts": {"get": {
            "summary": "The alert inbox: one row per series and area with its latest episode",
            "description": "Permission: view_alerts.",
            "parameters": [
                _query("state", "open (default), active, acknowledged, resolved or all",
                       {"type": "string", "enum": ["open", "active", "acknowledged", "resolved", "all"]}),
                _query("kind", "alert kind, e.g. aberration, capacity_forecast, cluster_zone", {"type": "string"}),
                _query("area", "area id", {"type": "string"}),
                _query("severity", "info, warning or critical", {"type": "string",
                                                                  "enum": ["info", "warning", "critical"]}),
                _query("limit", "at most this many (1-1000, default 200)",
                       {"type": "integer", "minimum": 1, "maximum": 1000})],
            "responses": {"200": _ok("Alerts"), **_ERRORS}}},
        "/alerts/{alert_id}/acknowledge": _post("Acknowledge an active alert, with a note", "acknowledge_alerts",
                                                note, "alert_id", {**_CONFLICT, **_NOT_FOUND}),
        "/alerts/{alert_id}/resolve": _post("Resolve an open alert, with a note", "acknowledge_alerts", note,
                                            "alert_id", {**_CONFLICT, **_NOT_FOUND}),
        "/warnings": {
            "get": {"summary": "CAP warnings: proposed, issued (with cap_url) and rejected, with acknowledgements and "
                               "deliveries", "description": "Permission: view_alerts.",
                    "parameters": [_query("approval", "proposed, approved or rejected",
                                          {"type": "string", "enum": ["proposed", "approved", "rejected"]}),
                                   _query("limit", "at most this many (1-1000, default 200)",
                                          {"type": "integer", "minimum": 1, "maximum": 1000})],
                    "responses": {"200": _ok("Warnings"), **_ERRORS}},
            **_post("Compose a warning (stored as proposed; sent once approved)", "issue_warnings", {
                "headline": {"type": "string"}, "description": {"type": "string"},
                "instruction": {"type": "string"}, "areas": {"type": "array", "items": {"type": "string"}},
                "event": {"type": "string"}, "urgency": {"type": "string"}, "severity": {"type": "string"},
                "certainty": {"type": "string"}, "status": {"type": "string", "enum": ["Actual", "Exercise", "Test"]}},
                None, {"409": _error("A drill takes status Exercise only")})},
        "/warnings/{warning_id}/cap.xml": {"get": {
            "summary": "The CAP 1.2 document of an issued warning, as it was sent",
            "description": "Permission: view_alerts.", "parameters": [_path_id("warning_id")],
            "responses": {"200": {"description": "CAP 1.2 XML", "content": {"application/cap+xml": {}}},
                          **_ERRORS, **_NOT_FOUND}}},
        "/warnings/{warning_id}/approve": _post("Approve a proposal: build its CAP document and send it",
                                                "issue_warnings", note, "warning_id", _CONFLICT),
        "/warnings/{warning_id}/reject": _post("Reject a proposal", "issue_warnings", note, "warning_id", _CONFLICT),
        "/warnings/{warning_id}/cancel": _post("Propose a Cancel of an issued warning's series", "issue_warnings",
                                               note, "warning_id", _CONFLICT),
        "/warnings/{warning_id}/acknowledge": _post(
            "Acknowledge an issued warning for a recipient agency", "acknowledge_warnings",
            {"recipient": {"type": "string"}}, "warning_id", _CONFLICT),
    }


def alert_schemas() -> dict:
    return {
        "Alerts": {"type": "object", "properties": {
            "total": {"type": "integer", "description": "series matching the filters"},
            "kinds": {"type": "array", "items": {"type": "string"}},
            "alerts": {"type": "array", "items": {"type": "object"}}}},
        "Warnings": {"type": "object", "properties": {
            "exercise": {"type": ["boolean", "string"]},
            "warnings": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "status": {"type": "string"}, "msg_type": {"type": "string"},
                "sent": {"type": ["string", "null"]}, "headline": {"type": "string"},
                "cap_url": {"type": ["string", "null"]}}}},
            "channels": {"type": "object"}}},
        "Result": {"type": "object"},
    }
