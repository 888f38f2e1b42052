"""KPI tiles for the wall screen: one read-model figure each, with its raw value on the element.

``data-indicator`` names the figure (a key of analytics.catalog, as GET /api/v1/indicators returns
it) and ``data-value`` holds its raw value ("" when unknown or withheld), so a test or a screen
reader compares the tile with the API without parsing the printed text.
"""
from __future__ import annotations

import math

from dash import html

from components.theme import STATUS_COLOURS


def raw_value(value) -> str:
    """The value for ``data-value``: repr of the float, "" when unknown or withheld."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(float(value))


def indicator_attributes(key: str, value) -> dict[str, str]:
    return {"data-indicator": key, "data-value": raw_value(value)}


def kpi_tile(figure, detail: str, status: str) -> html.Div:
    """A tile for a services.indicators.Figure: label, the figure as printed, a line of detail."""
    return html.Div(
        className=f"kpi kpi-{status}", id=f"kpi-{figure.key}", title=figure.definition,
        style={"borderTopColor": STATUS_COLOURS.get(status, STATUS_COLOURS["neutral"])},
        **indicator_attributes(figure.key, figure.value),
        children=[html.Div(figure.label, className="kpi-label"),
                  html.Div(figure.display, className="kpi-value"),
                  html.Div(detail, className="kpi-detail")])
