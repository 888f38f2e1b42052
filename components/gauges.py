"""Early-warning figures: indicator gauges coloured by a rulebook, the aligned Rockland-style view
(new infections, severity, hospital capacity on one shared time axis, with the forecast band), R(t)
with its credible interval, and the days-until-capacity tile.

Rockland County's "Early Warning Dashboard" (New York, 2020) put new infections, severity and hospital
capacity on one screen so that a rise in the first is seen next to what it will do to the last; the three
panels here share one x axis for that reason. Builders take plain data (DataFrames and the read-model
dataclasses of services.early_warning, imported for type checking only) and return figures (the gauges and
the aligned view as plain dicts, components.figdict: they are on the wall's refresh path) or Dash
components; they never read the store.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html

from components.charts import count_hover
from components.figdict import figure
from components.kpi import indicator_attributes
from components.text import plotly_text
from components.theme import MUTED, OKABE_ITO, PANEL, STATUS_COLOURS, STATUS_TEXT_COLOURS, TEXT, base_layout

if TYPE_CHECKING:  # types only: components do not depend on services at run time
    from services.early_warning import CapacityView, IndicatorGauge

GRID = "#2a323b"
# Colour steps of the gauge: the level the value is in at full strength, the others dimmed so the eye
# goes to the current level while every threshold stays visible.
CURRENT_STEP_ALPHA, OTHER_STEP_ALPHA = 0.95, 0.35
BAND_FILL = "rgba(86, 180, 233, 0.22)"  # sky blue, translucent: the 5-95 % forecast band
MAX_GAUGES_PER_ROW = 9  # one row on a 1920-pixel wall screen
LABEL_WRAP_CHARS = 20  # about the width of one of nine gauges at 14 px


# ---- gauges -----------------------------------------------------------------------------------------
def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _format_number(value: float, is_fraction: bool) -> str:
    if is_fraction:
        return f"{value:.0%}" if abs(value) >= 0.1 else f"{value:.1%}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


def gauge_steps(gauge: IndicatorGauge) -> list[dict]:
    """Coloured ranges between the threshold marks, the gauge's current level at full strength."""
    edges = [gauge.axis_min, *[m.value for m in gauge.thresholds], gauge.axis_max]
    colours = [gauge.lowest_colour, *[m.colour for m in gauge.thresholds]]
    steps = []
    for low, high, colour in zip(edges[:-1], edges[1:], colours):
        if high <= low:
            continue
        current = gauge.colour is not None and colour.upper() == gauge.colour.upper()
        steps.append({"range": [low, high], "color": _rgba(colour, CURRENT_STEP_ALPHA if current else OTHER_STEP_ALPHA),
                      "line": {"color": PANEL, "width": 2}})
    return steps


def _ticks(gauge: IndicatorGauge) -> list[float]:
    """Axis ticks: every threshold mark and the two ends (an end too close to a mark is left out)."""
    marks = sorted({m.value for m in gauge.thresholds})
    span = (gauge.axis_max - gauge.axis_min) or 1.0
    # A zero start goes without saying; a negative one (wastewater change) does not.
    ends = [v for v in (gauge.axis_min, gauge.axis_max) if v != 0 and all(abs(v - m) > 0.06 * span for m in marks)]
    return sorted({*marks, *ends})


def gauge_indicator(gauge: IndicatorGauge, x_domain: tuple[float, float], y_domain: tuple[float, float]) -> dict:
    """The dial as a plain Plotly trace (a dict: no validators on the wall's refresh path)."""
    tickvals = _ticks(gauge)
    ticktext = [_format_number(v, gauge.is_fraction) for v in tickvals]
    number = {"font": {"size": 26, "color": gauge.colour or TEXT}}
    if gauge.is_fraction:
        number["valueformat"] = ".1%"
    else:
        number["valueformat"] = ",.0f" if gauge.value is not None and abs(gauge.value) >= 100 else ",.2f"
    return {
        "type": "indicator",
        "mode": "gauge+number" if gauge.value is not None else "gauge",
        "value": gauge.value if gauge.value is not None else gauge.axis_min,
        "number": number,
        "gauge": {
            "shape": "angular",
            "axis": {"range": [gauge.axis_min, gauge.axis_max], "tickvals": tickvals, "ticktext": ticktext,
                     "tickfont": {"size": 13, "color": MUTED}, "tickwidth": 2, "tickcolor": TEXT},
            "bar": {"color": TEXT if gauge.value is not None else "rgba(0,0,0,0)", "thickness": 0.28},
            "bgcolor": PANEL, "borderwidth": 0,
            "steps": gauge_steps(gauge),
        },
        "domain": {"x": list(x_domain), "y": list(y_domain)},
    }


def gauge_status(gauge: IndicatorGauge) -> tuple[str, str]:
    """The text under a gauge's title and its colour: the level, or why there is none."""
    if gauge.suppressed:
        return "small count withheld", MUTED
    if gauge.value is None:
        return "no data", MUTED
    if not gauge.in_rulebook:
        return "not in this rulebook", MUTED
    return (gauge.level_label or "not assessed"), (gauge.colour or MUTED)


def gauge_figure(gauge: IndicatorGauge, height: int = 250) -> dict:
    """One gauge with its title and level above the dial (Plotly's own title would overlap a short dial)."""
    status, colour = gauge_status(gauge)
    label = "<br>".join(plotly_text(line) for line in textwrap.wrap(gauge.label, LABEL_WRAP_CHARS))
    title = {"x": 0.5, "y": 0.99, "xref": "paper", "yref": "paper", "yanchor": "top", "showarrow": False,
             "align": "center", "font": {"size": 14, "color": TEXT},
             "text": f"{label}<br><span style='color:{colour}'><b>{plotly_text(status)}</b></span>"}
    layout = base_layout(height=height, margin=dict(l=12, r=12, t=6, b=4))
    layout["annotations"] = [title]
    return {"data": [gauge_indicator(gauge, (0.04, 0.96), (0.02, 0.62))], "layout": layout}


def gauge_cards(gauges: Sequence[IndicatorGauge], graph_config: dict | None = None) -> list:
    """One card per gauge: the dial, with the figure's key and raw value on the card (as the API gives them)."""
    from dash import dcc

    if not gauges:
        return [html.P("No indicators yet: the indicators job has not run on this data.", className="empty")]
    return [html.Div(className="gauge-card", **indicator_attributes(g.indicator, g.value),
                     children=[dcc.Graph(figure=gauge_figure(g), config=graph_config or {"displayModeBar": False},
                                         style={"height": "250px"})])
            for g in gauges]


# ---- the aligned view ---------------------------------------------------------------------------------
ROWS = 3
ROW_GAP = 0.07  # of the plot's height between two rows


def _row_domains() -> list[list[float]]:
    """y domains of the three rows, top first (as plotly.subplots would lay them out)."""
    height = (1 - ROW_GAP * (ROWS - 1)) / ROWS
    return [[1 - (r + 1) * height - r * ROW_GAP, 1 - r * height - r * ROW_GAP] for r in range(ROWS)]


def _axis(row: int) -> str:
    return "" if row == 1 else str(row)


def _days(values) -> list[str]:
    return [f"{d:%Y-%m-%d}" for d in pd.to_datetime(values)]


def _floats(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def _band_traces(bands: pd.DataFrame, series: str, row: int, name: str, colour: str, scale: float = 1.0,
                 show_legend: bool = True) -> list[dict]:
    band = bands[bands["series"] == series].sort_values("day") if not bands.empty else bands
    if band.empty:
        return []
    x, axes = _days(band["day"]), {"xaxis": f"x{_axis(row)}", "yaxis": f"y{_axis(row)}"}
    return [
        {"type": "scatter", "x": x, "y": _floats(band["q95"]) / scale, "mode": "lines", "line": {"width": 0},
         "hoverinfo": "skip", "showlegend": False, "legendgroup": f"band-{series}", **axes},
        {"type": "scatter", "x": x, "y": _floats(band["q05"]) / scale, "mode": "lines", "line": {"width": 0},
         "fill": "tonexty", "fillcolor": BAND_FILL, "name": "forecast 5–95 %", "legendgroup": "band",
         "showlegend": show_legend, "hoverinfo": "skip", **axes},
        {"type": "scatter", "x": x, "y": _floats(band["median"]) / scale, "mode": "lines", "name": name,
         "line": {"color": colour, "width": 2, "dash": "dash"}, "legendgroup": f"band-{series}",
         "hovertemplate": "%{x|%d %b}: %{y:,.2f}<extra>" + name + "</extra>", **axes},
    ]


def aligned_view_figure(timeline: pd.DataFrame, bands: pd.DataFrame, min_count: int, capacity_threshold: float,
                        as_of=None, height: int | None = None) -> dict:
    """New infections / severity / hospital capacity, three rows on one shared date axis, with forecasts,
    as a figure dict (components.figdict).

    ``timeline``: services.series.daily_view (date, cases, cases_7d_avg, admissions, admissions_7d_avg,
    icu_admissions with ``__suppressed`` flags, and the city's census). ``bands``: series (cases, admissions, beds_occupied, icu_occupied), day,
    median, q05, q95. Occupancy is drawn as a share of capacity so beds and ICU share one axis with the
    threshold line.
    """
    domains = _row_domains()
    titles = ("New infections (cases per day)", "Severity: admissions per day", "Hospital capacity (citywide occupancy)")
    layout = base_layout(height=height, barmode="overlay", bargap=0.1,
                         legend=dict(orientation="h", y=-0.06, font={"size": 14}), margin=dict(l=60, r=20, t=40, b=40))
    annotations = [{"text": title, "x": 0.5, "y": domains[r][1], "xref": "paper", "yref": "paper", "xanchor": "center",
                    "yanchor": "bottom", "showarrow": False} for r, title in enumerate(titles)]
    shapes: list[dict] = []
    for row in range(1, ROWS + 1):
        a = _axis(row)
        layout[f"xaxis{a}"] = {"anchor": f"y{a}", "domain": [0.0, 1.0], "gridcolor": GRID,
                               **({"matches": f"x{ROWS}", "showticklabels": False} if row < ROWS else {})}
        layout[f"yaxis{a}"] = {"anchor": f"x{a}", "domain": domains[row - 1], "gridcolor": GRID, "rangemode": "tozero"}
    data: list[dict] = []
    if timeline.empty:
        layout["annotations"] = [{**an, "font": {"size": 16, "color": TEXT}} for an in annotations]
        return figure(data, layout)
    x = _days(timeline["date"])
    row1, row2, row3 = ({"xaxis": f"x{_axis(r)}", "yaxis": f"y{_axis(r)}"} for r in (1, 2, 3))
    case_text = count_hover(timeline["cases"], timeline.get("cases__suppressed"), min_count)
    data.append({"type": "bar", "x": x, "y": _floats(timeline["cases"]), "name": "cases / day",
                 "marker": {"color": OKABE_ITO["sky"]}, "opacity": 0.5, "customdata": case_text,
                 "hovertemplate": "%{x|%d %b}: %{customdata} cases<extra></extra>", **row1})
    data.append({"type": "scatter", "x": x, "y": _floats(timeline["cases_7d_avg"]), "name": "cases, 7-day avg",
                 "line": {"color": OKABE_ITO["sky"], "width": 3}, **row1})
    data.extend(_band_traces(bands, "cases", 1, "cases, forecast median", OKABE_ITO["sky"]))

    adm_text = count_hover(timeline["admissions"], timeline.get("admissions__suppressed"), min_count)
    icu_text = count_hover(timeline["icu_admissions"], timeline.get("icu_admissions__suppressed"), min_count)
    data.append({"type": "bar", "x": x, "y": _floats(timeline["admissions"]), "name": "admissions / day",
                 "marker": {"color": OKABE_ITO["orange"]}, "opacity": 0.55, "customdata": adm_text,
                 "hovertemplate": "%{x|%d %b}: %{customdata} admitted<extra></extra>", **row2})
    data.append({"type": "bar", "x": x, "y": _floats(timeline["icu_admissions"]), "name": "ICU admissions / day",
                 "marker": {"color": OKABE_ITO["vermillion"]}, "opacity": 0.8, "customdata": icu_text,
                 "hovertemplate": "%{x|%d %b}: %{customdata} to ICU<extra></extra>", **row2})
    data.append({"type": "scatter", "x": x, "y": _floats(timeline["admissions_7d_avg"]),
                 "name": "admissions, 7-day avg", "line": {"color": OKABE_ITO["orange"], "width": 3}, **row2})
    data.extend(_band_traces(bands, "admissions", 2, "admissions, forecast median", OKABE_ITO["orange"],
                             show_legend=False))

    for share_column, total, series, name, colour in (
            ("bed_occupancy", "beds_total", "beds_occupied", "beds occupied", OKABE_ITO["purple"]),
            ("icu_occupancy", "icu_total", "icu_occupied", "ICU occupied", OKABE_ITO["vermillion"])):
        data.append({"type": "scatter", "x": x, "y": _floats(timeline[share_column]), "name": name,
                     "line": {"color": colour, "width": 3},
                     "hovertemplate": "%{x|%d %b}: %{y:.0%}<extra>" + name + "</extra>", **row3})
        capacity = timeline[total].dropna()
        if len(capacity):
            data.extend(_band_traces(bands, series, 3, f"{name}, forecast median", colour,
                                     scale=float(capacity.iloc[-1]), show_legend=False))
    # The capacity threshold across the bottom row, labelled at its left end.
    bad = STATUS_COLOURS["bad"]
    shapes.append({"type": "line", "xref": f"x{ROWS} domain", "x0": 0, "x1": 1, "yref": f"y{ROWS}",
                   "y0": capacity_threshold, "y1": capacity_threshold, "line": {"color": bad, "width": 2, "dash": "dot"}})
    annotations.append({"text": f"{capacity_threshold:.0%} of capacity", "xref": f"x{ROWS} domain", "x": 0,
                        "yref": f"y{ROWS}", "y": capacity_threshold, "xanchor": "left", "yanchor": "bottom",
                        "showarrow": False})
    if as_of is not None:
        when = pd.Timestamp(as_of).timestamp() * 1000
        for row in range(1, ROWS + 1):
            shapes.append({"type": "line", "xref": f"x{_axis(row)}", "x0": when, "x1": when,
                           "yref": f"y{_axis(row)} domain", "y0": 0, "y1": 1,
                           "line": {"color": MUTED, "width": 1, "dash": "dot"}})
    layout["annotations"] = [{**an, "font": {"size": 16, "color": TEXT}} for an in annotations]
    layout["shapes"] = shapes
    for row, observed, series in ((1, timeline["cases"], "cases"), (2, timeline["admissions"], "admissions")):
        layout[f"yaxis{_axis(row)}"]["range"] = [0, _visible_top(observed, bands, series)]
    layout[f"yaxis{ROWS}"].update(tickformat=".0%", range=[0, 1.05])
    return figure(data, layout)


def _visible_top(observed: pd.Series, bands: pd.DataFrame, series: str) -> float:
    """Upper end of a row's y axis: the history and the forecast median fit, the 95th percentile may not.

    A growing epidemic's upper band reaches many times today's counts within four weeks; scaling the axis
    to it would flatten the history the eye compares against, so the band runs off the top instead.
    """
    top = float(np.nanmax(observed.to_numpy(dtype=float))) if observed.notna().any() else 0.0
    if not bands.empty:
        median = bands.loc[bands["series"] == series, "median"]
        if len(median):
            top = max(top, float(median.max()))
    return max(top * 1.25, 1.0)


def rt_figure(rt: pd.DataFrame, note: str = "", height: int | None = None) -> go.Figure:
    """R(t) (posterior mean) with its 95 % credible interval, and the line R = 1."""
    fig = go.Figure()
    usable = rt.dropna(subset=["mean"]) if not rt.empty else rt
    if not usable.empty:
        # Windows with too few cases stay NaN (not dropped) so the line and band break there.
        usable_all = rt.iloc[rt["mean"].notna().to_numpy().argmax():]
        x = pd.to_datetime(usable_all["date"])
        fig.add_trace(go.Scatter(x=x, y=usable_all["q975"], mode="lines", line={"width": 0}, hoverinfo="skip",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=usable_all["q025"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor="rgba(204, 121, 167, 0.3)", name="95 % credible interval",
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=usable_all["mean"], mode="lines", name="R(t), 7-day window",
                                 line={"color": OKABE_ITO["purple"], "width": 3},
                                 customdata=np.stack([usable_all["q025"], usable_all["q975"]], axis=-1),
                                 hovertemplate="%{x|%d %b}: R = %{y:.2f} (%{customdata[0]:.2f}–%{customdata[1]:.2f})"
                                               "<extra></extra>"))
    fig.add_hline(y=1.0, line={"color": TEXT, "width": 1, "dash": "dash"})
    if usable.empty:
        fig.add_annotation(text=note or "not enough cases to estimate R(t)", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"size": 16, "color": MUTED})
    top = float(np.nanmax(usable["q975"])) if not usable.empty else 2.0
    fig.update_layout(**base_layout(height=height, margin=dict(l=50, r=20, t=10, b=30),
                                    legend=dict(orientation="h", y=-0.2, font={"size": 13})))
    fig.update_yaxes(range=[0, max(2.0, min(top, 6.0)) * 1.05], gridcolor=GRID, title_text="R(t)")
    fig.update_xaxes(gridcolor=GRID)
    return fig


def capacity_tile(capacity: CapacityView | None, red_days: int) -> html.Div:
    """Days until the citywide bed (and ICU) census reaches the threshold; red at or under ``red_days``."""
    if capacity is None or capacity.beds is None:
        return html.Div("No forecast yet: the early-warning job has not run on this data.", className="empty")

    def block(label: str, outlook) -> html.Div:
        median, upper = outlook.days_median, outlook.days_upper
        red = median is not None and median <= red_days
        amber = not red and upper is not None and upper <= red_days
        status = "bad" if red else "warn" if amber else "ok" if outlook.projected else "neutral"
        upper_text = "–" if not outlook.projected else (f"> {capacity.horizon_days} d" if upper is None else
                                                         "now" if upper == 0 else f"{upper} d")
        total = f"{outlook.capacity:,.0f}" if outlook.capacity else "–"
        return html.Div(className=f"kpi kpi-{status}", id=f"ew-capacity-{outlook.resource}",
                        style={"borderTopColor": STATUS_COLOURS[status]},
                        **indicator_attributes(outlook.figure.key, outlook.figure.value), children=[
            html.Div(f"{label}: days until {capacity.threshold:.0%} of {total}", className="kpi-label"),
            html.Div(outlook.figure.display, className="kpi-value"),
            html.Div(f"median projection; 95th percentile: {upper_text}" if outlook.projected else outlook.note,
                     className="kpi-detail")])

    blocks = [block("Hospital beds", capacity.beds)]
    if capacity.icu is not None and capacity.icu.capacity:
        blocks.append(block("ICU beds", capacity.icu))
    verdict = (f"RED TRIGGER: within {red_days} days of {capacity.threshold:.0%} hospital capacity"
               if capacity.trigger else f"Not within {red_days} days of {capacity.threshold:.0%} capacity")
    return html.Div([
        html.Div(blocks, className="kpi-row"),
        html.Div(verdict, id="ew-capacity-verdict",
                 style={"color": STATUS_TEXT_COLOURS["bad"] if capacity.trigger else MUTED, "fontWeight": 700,
                        "marginTop": "0.3rem"}),
        html.Div(f"New York State, December 2020: a region {red_days} days from {capacity.threshold:.0%} of "
                 "hospital capacity at its current growth goes red.", className="kpi-detail"),
    ])
