"""The daily briefing and the open data over HTTP: GET /api/v1/briefing, GET /briefing.pdf and
GET /api/v1/open-data/<table>.<format>.

The JSON routes sit on the /api/v1 blueprint (api.v1 imports this module before registering it), so
bearer tokens, JSON errors and the parameter rules are the same as everywhere in the API. /briefing.pdf
is the page's download link, outside /api/v1, with the same credentials and errors. Every download of
a file (the PDF, an open-data table) is an export: it writes an ``export`` audit record with its purpose
before the file leaves.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify

from api.v1 import ApiError, _api_error, _bearer_token, _denied, bp, need, params, parse_date, parse_text
from auth.policy import PolicyDenied, audit
from auth.runtime import current_runtime
from services.briefing import NoBriefing, briefing_json, daily_briefing
from services.open_data import FORMATS, TABLES, open_table, table_csv, table_geojson

DEFAULT_PDF_PURPOSE = "daily briefing"
DEFAULT_OPEN_DATA_PURPOSE = "open data download"
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "geojson": "application/geo+json"}
pdf_bp = Blueprint("briefing_pdf", __name__)
pdf_bp.before_request(_bearer_token)
pdf_bp.register_error_handler(ApiError, _api_error)
pdf_bp.register_error_handler(PolicyDenied, _denied)


def _briefing(principal, day):
    rt = current_runtime()
    try:
        return daily_briefing(rt.store, rt.settings, principal, day)
    except NoBriefing as exc:
        raise ApiError(404, "no_data", str(exc), "date" if day else None) from None


@bp.get("/briefing")
def briefing():
    principal = need("view_briefing")
    p = params({"date": parse_date})
    return jsonify(briefing_json(_briefing(principal, p.get("date"))))


@pdf_bp.get("/briefing.pdf")
def briefing_pdf():
    from reports.briefing_pdf import RendererUnavailable, RenderError, render_briefing_pdf
    from services.mapdata import area_outlines

    principal = need("view_briefing")
    p = params({"date": parse_date, "purpose": parse_text})
    rt = current_runtime()
    b = _briefing(principal, p.get("date"))
    try:
        printed = render_briefing_pdf(b, area_outlines(rt.store), rt.settings)
    except RendererUnavailable as exc:
        raise ApiError(503, "renderer_unavailable", str(exc)) from None
    except RenderError as exc:
        raise ApiError(500, "render_failed", str(exc).splitlines()[0]) from None
    audit("export", "briefing_pdf", principal=principal, wait=True, purpose=p.get("purpose", DEFAULT_PDF_PURPOSE),
          date=b.day.isoformat(), bytes=len(printed.pdf))
    response = Response(printed.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="briefing-{b.day.isoformat()}.pdf"'
    return response


@bp.get("/open-data/<name>.<fmt>")
def open_data(name: str, fmt: str):
    principal = need("export_open_data")
    if name not in TABLES:
        raise ApiError(404, "not_found", f"no open-data table {name!r} (tables: {', '.join(TABLES)})")
    if fmt not in FORMATS:
        raise ApiError(404, "not_found", f"no format {fmt!r} (formats: {', '.join(FORMATS)})")
    p = params({"date": parse_date, "purpose": parse_text})
    rt = current_runtime()
    try:
        table = open_table(rt.store, rt.settings, name, p.get("date"))
    except LookupError as exc:
        raise ApiError(404, "no_data", str(exc)) from None
    body = table_csv(table) if fmt == "csv" else jsonify(table_geojson(table)).get_data(as_text=True)
    audit("export", f"open_data:{name}.{fmt}", principal=principal, wait=True,
          purpose=p.get("purpose", DEFAULT_OPEN_DATA_PURPOSE), start=table.start.isoformat(), end=table.end.isoformat())
    response = Response(body, content_type=MEDIA_TYPES[fmt])
    response.headers["Content-Disposition"] = (f'attachment; filename="{name}_daily_cases_{table.end.isoformat()}.'
                                               f'{fmt}"')
    return response


def install_briefing_routes(app: Flask) -> None:
    """/briefing.pdf (the /api/v1 routes of this module are on api.v1's blueprint)."""
    app.register_blueprint(pdf_bp)
