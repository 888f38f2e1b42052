"""KPI tiles for the wall screen."""
from __future__ import annotations

from dash import html

from components.theme import STATUS_COLOURS


def kpi_tile(key: str, label: str, display: str, detail: str, status: str, query: str) -> html.Div:
    return html.Div(
        className=f"kpi kpi-{status}", id=f"kpi-{key}", title=f"from query: {query}",
        style={"borderTopColor": STATUS_COLOURS.get(status, STATUS_COLOURS["neutral"])},
        children=[html.Div(label, className="kpi-label"),
                  html.Div(display, className="kpi-value", **{"data-kpi": key}),
                  html.Div(detail, className="kpi-detail")])
