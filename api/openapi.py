"""The OpenAPI 3.1 description of /api/v1 (served at GET /api/v1/openapi.json)."""
from __future__ import annotations

from analytics.catalog import CATALOG
from api.openapi_alerts import alert_paths, alert_schemas
from api.openapi_parts import error_response as _error
from api.openapi_parts import query_param as _query

API_VERSION = "1.0.0"


ERRORS = {"400": _error("A parameter is missing, unknown or malformed; error.parameter names it"),
          "401": _error("Credentials are needed (or the bearer token is unknown or revoked)"),
          "403": _error("The caller's role may not read this")}


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


def _open_data_path() -> dict:
    """The open-data tables: CSV or GeoJSON (not JSON), named in the path."""
    op = _get("Open data: daily new cases per area or per coarse H3 cell over briefing.open_data_days days, with "
              "row and column totals, cut to the public's detail level (small counts and their complements "
              "withheld); audited as an export with its purpose", "export_open_data", "OpenData", (
                  _query("date", "the last day, YYYY-MM-DD; default: the latest complete day",
                         {"type": "string", "format": "date"}),
                  _query("purpose", "why it is exported (kept in the audit log; default 'open data download')",
                         {"type": "string", "maxLength": 200})),
              {"404": _error("No such table or format, or nothing stored")})["get"]
    op["parameters"] = [*op["parameters"],
                        {"name": "name", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["areas", "cells"]}},
                        {"name": "fmt", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["csv", "geojson"]}}]
    op["responses"]["200"] = {"description": "The table as CSV (fmt csv) or GeoJSON (fmt geojson)",
                              "content": {"text/csv": {"schema": {"type": "string"}},
                                          "application/geo+json": {"schema": {"$ref": "#/components/schemas/OpenData"}}}}
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
            "/address-check": _get(
                "Check an address before entering: precinct, zone tier, active case (audited, rate-limited)",
                "check_address", "AddressCheck", (
                    _query("address", "the address as written (case, spacing and punctuation do not matter)",
                           {"type": "string"}),
                    _query("address_id", "a gazetteer id from GET /addresses, instead of address",
                           {"type": "string"}),
                    _query("lat", "latitude, with lng, instead of an address", {"type": "number"}),
                    _query("lng", "longitude, with lat", {"type": "number"}),
                    {**_query("purpose", "why the address is checked (required; kept in the audit log)",
                              {"type": "string", "minLength": 3, "maxLength": 200}), "required": True}),
                {"404": _error("No such address in the gazetteer; error.suggestions lists close ones"),
                 "409": _error("Several addresses read the same; error.suggestions lists them"),
                 "429": _error("Too many checks by this user, or of this address (auth.address_check_rate_per_min); "
                               "Retry-After says when to try again")}),
            "/addresses": _get("Addresses of the gazetteer matching what was typed so far", "check_address",
                               "Addresses", (
                                   {**_query("q", "the address typed so far", {"type": "string"}), "required": True},
                                   _query("limit", "at most this many (1-20, default 10)",
                                          {"type": "integer", "minimum": 1, "maximum": 20}))),
            "/precincts": _get("Risk per police precinct: cases and rates over 7 and 14 days, trend, zone shares, "
                               "tier, open alerts", "view_precincts", "Precincts"),
            "/precincts/{precinct_id}": {"get": {**_get("One precinct: its figures, daily cases over 56 days, zones inside it, "
                                               "open alerts", "view_precincts", "Precinct",
                                               extra={"404": _error("No such precinct, or not one of yours")})["get"],
                                        "parameters": [{"name": "precinct_id", "in": "path", "required": True,
                                                        "schema": {"type": "string"}}]}},
            "/briefing": _get("The daily briefing of a day: headline figures with their changes, the narrative and "
                              "the sections (level, capacity, hot spots, clusters, zones, precinct tiers, alerts of "
                              "24 h). Its A4 PDF is GET /briefing.pdf?date=D (outside /api/v1; purpose=TEXT is "
                              "audited)", "view_briefing", "Briefing", (
                _query("date", "YYYY-MM-DD; default: the latest complete day (the latest stored day that has "
                               "ended in the city's time zone)", {"type": "string", "format": "date"}),),
                {"404": _error("Nothing is stored for that day")}),
            "/open-data/{name}.{fmt}": _open_data_path(),
            "/openapi.json": {"get": {"summary": "This document", "security": [{}],
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}}}}},
            **alert_paths(),  # the alert inbox and CAP warnings (api/openapi_alerts.py)
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
                "AddressCheck": {
                    "type": "object", "additionalProperties": False,
                    "required": ["precinct", "zone_tier", "active_case_at_address", "precautions", "checked_at"],
                    "properties": {
                        "precinct": {"type": ["object", "null"], "description": "the precinct at the point (null: "
                                                                             "in none)",
                                     "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
                        "zone_tier": {"type": ["string", "null"], "description": "the strictest containment-zone "
                                                                               "tier in force there (null: none)"},
                        "active_case_at_address": {
                            "type": ["boolean", "null"],
                            "description": "a counted case reported within police.isolation_days is at the address; "
                                           "null: not available (outside the caller's precincts)"},
                        "precautions": {"type": "string", "description": "the sentence to act on"},
                        "checked_at": {"type": "string", "format": "date-time"}}},
                "Addresses": {"type": "object", "properties": {"addresses": {"type": "array", "items": {
                    "type": "object", "properties": {"id": {"type": "string"}, "text": {"type": "string"}}}}}},
                "Precincts": {"type": "object", "properties": {
                    "as_of": {"type": ["string", "null"], "format": "date"}, "tiers": {"type": "array"},
                    "scoped_to_your_precincts": {"type": "boolean"},
                    "precincts": {"type": "array", "items": {"$ref": "#/components/schemas/PrecinctRisk"}}}},
                "PrecinctRisk": {"type": "object", "description": "figures are {value, suppressed}; value null when "
                                                                 "withheld or unknown",
                                 "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                                "tier": {"type": ["string", "null"]},
                                                "zone_shares": {"type": "object"},
                                                "active_alerts": {"type": "integer"}}},
                "Precinct": {"type": "object", "properties": {
                    "precinct": {"$ref": "#/components/schemas/PrecinctRisk"},
                    "history": {"type": "array", "items": {"type": "object"}},
                    "zones": {"type": "array", "items": {"type": "object"}},
                    "alerts": {"type": "array", "items": {"type": "object"}}}},
                "Briefing": {"type": "object", "required": ["date", "complete", "headline", "narrative", "sections"],
                             "properties": {
                                 "date": {"type": "string", "format": "date"}, "complete": {"type": "boolean"},
                                 "latest_complete_day": {"type": ["string", "null"], "format": "date"},
                                 "headline": {"type": "array", "items": {
                                     "type": "object", "required": ["key", "label", "value", "display", "change_day",
                                                                    "change_week"],
                                     "properties": {"key": {"type": "string"}, "label": {"type": "string"},
                                                    "value": nullable_number,
                                                    "display": {"type": "string",
                                                                "description": "the text exactly as printed"},
                                                    "change_day": {"type": "object"},
                                                    "change_week": {"type": "object"}}}},
                                 "narrative": {"type": "array", "items": {"type": "string"}},
                                 "sections": {"type": "object"},
                                 "withheld": {"type": "array", "items": {"type": "string"}}}},
                "OpenData": {"type": "object", "description": "GeoJSON FeatureCollection of the table's rows "
                                                              "(the CSV has the same columns)",
                             "required": ["type", "features"],
                             "properties": {"type": {"const": "FeatureCollection"},
                                            "features": {"type": "array", "items": {"type": "object"}}}},
                "Audit": {"type": "object", "properties": {"more": {"type": "boolean"},
                                                           "actions": {"type": "array", "items": {"type": "string"}},
                                                           "records": {"type": "array", "items": {"type": "object"}}}},
                **alert_schemas(),
            },
        },
    }
