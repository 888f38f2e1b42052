"""The OpenAPI 3.1 description of /api/v1 (served at GET /api/v1/openapi.json)."""
from __future__ import annotations

from analytics.catalog import CATALOG

API_VERSION = "1.0.0"


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {"400": _error("A parameter is missing, unknown or malformed; error.parameter names it"),
          "401": _error("Credentials are needed (or the bearer token is unknown or revoked)"),
          "403": _error("The caller's role may not read this")}


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _get(summary: str, permission: str, response: str, parameters: tuple = (), extra: dict | None = None,
         public: bool = False) -> dict:
    op = {"summary": summary, "description": f"Permission: {permission}." + (
        " Without credentials: the public subset (area and city figures, small counts withheld)." if public else ""),
        "parameters": list(parameters),
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{response}"}}}}, **ERRORS, **(extra or {})}}
    if public:
        op["security"] = [{}, {"bearer": []}, {"session": []}]
    return {"get": op}


def document() -> dict:
    nullable_number = {"type": ["number", "null"]}
    indicator = {"type": "object", "required": ["value", "unit", "label", "definition", "suppressed", "display"],
                 "properties": {"value": {**nullable_number, "description": "null when unknown or withheld; "
                                                                          "fractions are 0..1"},
                                "unit": {"type": "string"}, "label": {"type": "string"},
                                "definition": {"type": "string"},
                                "suppressed": {"type": "boolean", "description": "withheld as a small count (or "
                                                                                 "derived from one)"},
                                "display": {"type": "string", "description": "the text exactly as printed"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "pheoc JSON API", "version": API_VERSION,
                 "description": "The figures of the pheoc dashboard: the same read models as the pages, cut to the "
                                "caller's role (detail level, small-count suppression, precinct scope)."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/indicators": _get("Indicators of an area (or the city) on a day", "view_overview", "Indicators", (
                _query("area", "an area id (GET /areas) or 'citywide' (default)", {"type": "string"}),
                _query("date", "YYYY-MM-DD; default: the latest day computed", {"type": "string", "format": "date"})),
                {"404": _error("Nothing is stored for that day")}, public=True),
            "/areas": _get("Every area: boundary, community areas, precincts", "view_overview", "Areas", public=True),
            "/capacity": _get("Facilities with the day's report, and days until the bed threshold", "view_capacity",
                              "Capacity"),
            "/clusters": _get("Significant clusters of the latest space-time scan", "view_clusters", "Clusters"),
            "/zones": _get("Containment zones in force", "view_clusters", "Zones"),
            "/alerts": _get("Alerts the jobs raised", "view_alerts", "Alerts", (
                _query("state", "open (default), active, acknowledged, resolved or all",
                       {"type": "string", "enum": ["open", "active", "acknowledged", "resolved", "all"]}),
                _query("kind", "alert kind, e.g. aberration, capacity_forecast, cluster_zone", {"type": "string"}),
                _query("area", "area id", {"type": "string"}),
                _query("limit", "at most this many (1-1000, default 200)", {"type": "integer", "minimum": 1,
                                                                              "maximum": 1000}))),
            "/audit": _get("The audit log, newest first", "read_audit", "Audit", (
                _query("action", "only this action, e.g. data_access, login_failed", {"type": "string"}),
                _query("user", "only this actor", {"type": "string"}),
                _query("since", "ISO 8601 time (UTC if no offset)", {"type": "string", "format": "date-time"}),
                _query("until", "ISO 8601 time (UTC if no offset)", {"type": "string", "format": "date-time"}),
                _query("limit", "at most this many (1-1000, default 100)", {"type": "integer", "minimum": 1,
                                                                              "maximum": 1000}))),
            "/openapi.json": {"get": {"summary": "This document", "security": [{}],
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}}}}},
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a token from `python app.py tokens add NAME --role ROLE`"},
                "session": {"type": "apiKey", "in": "cookie", "name": "pheoc_session",
                            "description": "the browser's session after /login"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                   "parameter": {"type": "string"}}}}},
                "Indicator": indicator,
                "Indicators": {"type": "object", "required": ["as_of", "area", "indicators"], "properties": {
                    "as_of": {"type": "string", "format": "date"}, "latest": {"type": "string", "format": "date"},
                    "area": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
                    "indicators": {"type": "object", "required": sorted(CATALOG),
                                   "properties": {k: {"$ref": "#/components/schemas/Indicator",
                                                      "description": s.definition} for k, s in CATALOG.items()}}}},
                "Areas": {"type": "object", "properties": {"areas": {"type": "array", "items": {
                    "type": "object", "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"},
                        "population": nullable_number,
                        "centroid": {"type": "object", "properties": {"lat": nullable_number,
                                                                      "lng": nullable_number}}}}}}},
                "Capacity": {"type": "object", "properties": {
                    "as_of": {"type": ["string", "null"]}, "reference_time": {"type": "string"},
                    "facilities": {"type": "array", "items": {"type": "object"}},
                    "outlook": {"type": "object", "properties": {s: {"type": "array", "items": {"type": "object"}}
                                                                 for s in ("city", "facility", "area")}}}},
                "Clusters": {"type": "object", "properties": {
                    "as_of": {"type": ["string", "null"]}, "method": {"type": ["string", "null"]},
                    "clusters": {"type": "array", "items": {"type": "object"}}}},
                "Zones": {"type": "object", "properties": {"zones": {"type": "array", "items": {"type": "object"}}}},
                "Alerts": {"type": "object", "properties": {"total": {"type": "integer"},
                                                            "alerts": {"type": "array", "items": {"type": "object"}}}},
                "Audit": {"type": "object", "properties": {"more": {"type": "boolean"},
                                                           "actions": {"type": "array", "items": {"type": "string"}},
                                                           "records": {"type": "array", "items": {"type": "object"}}}},
            },
        },
    }
