"""Plotly figures as plain dicts: what Dash sends to the browser, without Plotly's validators.

Building a go.Figure validates every property and copies every array (the early-warning page spent a
third of its refresh there), and converting it for JSON walks it again. The builders on the wall's
refresh path write the dict Plotly.js reads instead: {"data": [traces], "layout": {...}}.

Coordinates go out as float arrays rounded to ``MAP_DECIMALS`` with NaN between rings (sent as null,
which Plotly.js reads as a break, like None): one array per trace instead of a Python list walked
value by value when the response is encoded. The cell layers of the city maps, whose coordinates are most
of a map's bytes, go as float32 typed arrays instead (``float32_array``).
"""
from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

import numpy as np
import plotly.io as pio

# Seven decimals of a degree is about 1 cm on the ground: far below anything a map can show, and half the
# digits of a full-precision float. Not fewer: a stored case location has six decimals (geocoders give
# about 10 cm), so a map vertex printed with six or fewer could read as a case's position — to a reader of
# the response and to the leak tests (tests/app_helpers.shows_coordinates). At six decimals a few of the
# demo city's cell corners coincide with cases by chance; so values are rounded to seven, and a value
# whose seventh decimal is 0 (which would print with six) is moved by one unit of the seventh (1 cm).
MAP_DECIMALS = 7

# The part of Plotly's default template the figures rely on (automargin, grid and zero-line colours, the
# colourway, hover behaviour) — about 1.5 KB, where the whole template is 9 KB sent with every figure.
_DEFAULT = pio.templates[pio.templates.default].layout.to_plotly_json()
TEMPLATE = {"layout": {k: _DEFAULT[k] for k in ("xaxis", "yaxis", "colorway", "hovermode", "hoverlabel",
                                                "colorscale", "autotypenumbers", "shapedefaults",
                                                "annotationdefaults") if k in _DEFAULT}}


def _rounded(values: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded to ``decimals``, none printing with fewer (see MAP_DECIMALS); NaN stays NaN."""
    out = np.round(values, decimals)
    unit = 10.0 ** -decimals
    short = np.isfinite(out) & (np.round(out / unit) % 10 == 0)
    out[short] = np.round(out[short] + unit, decimals)
    return out


# Cell layers (the many rings and centres of a city's H3 map) go out as plotly.js typed arrays of
# float32 instead: 4 bytes a value (5⅓ in base64) where a decimal of seven places takes 10 to 12. A float32
# longitude steps 2^-17 of a degree (0.85 m) between 64° and 128°, 2^-16 (1.7 m) beyond: under two metres,
# where an H3 resolution-10 edge is 66 m and one pixel of a city-wide view tens of metres. Not a decimal
# text either, so no vertex reads as a case's six-decimal position.
def float32_array(values) -> dict:
    """Numbers (NaN for a break in a line) as a plotly.js typed-array spec: base64 of little-endian float32."""
    array = np.ascontiguousarray(np.asarray(values, dtype=float), dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def coords(values: Iterable, decimals: int = MAP_DECIMALS) -> np.ndarray:
    """Longitudes or latitudes (None for a break) as a rounded float array (NaN for a break)."""
    return _rounded(np.array([np.nan if v is None else v for v in values], dtype=float), decimals)


def rings_arrays(rings: Sequence[Sequence[Sequence[float]]], decimals: int = MAP_DECIMALS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """x and y arrays drawing many rings as one trace, a NaN break after each (lng, lat order)."""
    total = sum(len(r) + 1 for r in rings)
    xs = np.full(total, np.nan)
    ys = np.full(total, np.nan)
    at = 0
    for ring in rings:
        n = len(ring)
        if n:
            pts = np.asarray(ring, dtype=float)[:, :2]
            xs[at:at + n], ys[at:at + n] = pts[:, 0], pts[:, 1]
        at += n + 1
    return _rounded(xs, decimals), _rounded(ys, decimals)


def packed(trace: dict) -> dict:
    """A trace whose long lists (coordinates, hover texts, customdata) are numpy arrays.

    Dash encodes a response holding components by walking it value by value (plotly.io.json); an array
    of numbers or strings is one step of that walk instead of one per value (a city's cell layer holds
    tens of thousands). The JSON is the same: NaN goes out as null, a break in a line as before.
    """
    out = dict(trace)
    for key, value in trace.items():
        if not isinstance(value, (list, tuple)) or len(value) < 2:
            continue
        try:
            array = np.asarray(value)
        except ValueError:  # ragged
            continue
        flat = [v for row in value for v in row] if array.ndim == 2 else list(value)
        kinds = {type(v) for v in flat}
        # Only arrays that encode as the list did: all strings, all numbers, or all booleans (numpy would
        # turn a mix into strings or numbers).
        same = ((array.dtype.kind == "U" and kinds == {str}) or (array.dtype.kind == "b" and kinds == {bool})
                or (array.dtype.kind in "iuf" and bool not in kinds))
        if same:
            out[key] = array
        elif array.dtype.kind == "O" and array.ndim == 1:
            try:  # numbers with None (breaks between rings)
                out[key] = np.array([np.nan if v is None else v for v in value], dtype=float)
            except (TypeError, ValueError):
                pass
    return out


def figure(data: Sequence[dict], layout: dict) -> dict:
    """A figure dict with the compact template (layout keys given win over it)."""
    return {"data": [packed(t) for t in data], "layout": {"template": TEMPLATE, **layout}}


def from_go(fig) -> dict:
    """A go.Figure as the dict Dash sends, its template cut to the compact one."""
    out = fig.to_plotly_json()
    return figure(out.get("data", []), {k: v for k, v in out.get("layout", {}).items() if k != "template"})
