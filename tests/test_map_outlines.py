"""City maps at scale: cells of a colour class dissolved into outlines, figures carried by a thin layer.

geo.outlines: the fills of a class's rings cover exactly its cells — nothing more (a hole stays empty),
nothing less, nothing twice. Through the real app, as the public and as a police user bound to one
precinct: the overview's and the clusters page's maps hover no count of people from 1 to
privacy.min_count - 1, and no cell outside what the caller may see, in any layer (the outlines are
drawn from the disclosed rows only).
"""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from shapely.geometry import Point, Polygon
from shapely.ops import unary_union

from geo.buffers import cells_to_grid_disk
from geo.cells import cell_to_boundary_lnglat, cell_to_latlng, latlng_to_cell
from geo.outlines import cells_to_fill_rings_lnglat
from tests.app_helpers import app_on_copy, close_app
from tests.auth_helpers import TEST_PASSWORD, sign_in_client
from tests.test_callback_authz import _body, _components
from tests.test_clusters_page import hover_shown

CENTRE = latlng_to_cell(2.93, 101.72, 9)


def _area(cells) -> Polygon:
    return unary_union([Polygon(cell_to_boundary_lnglat(c)) for c in cells])


def test_merged_outlines_cover_exactly_the_cells_and_leave_holes_empty():
    disk = cells_to_grid_disk([CENTRE], 3)
    ring = disk - cells_to_grid_disk([CENTRE], 1)  # a ring of cells around an empty middle: a hole
    far = cells_to_grid_disk([latlng_to_cell(2.99, 101.80, 9)], 1)  # a second, separate piece
    cells = sorted(ring | far)
    rings = cells_to_fill_rings_lnglat(cells)
    parts = [Polygon(r) for r in rings]
    assert all(p.is_valid and not p.interiors for p in parts)
    covered, wanted = unary_union(parts), _area(cells)
    assert covered.symmetric_difference(wanted).area < 1e-9 * wanted.area
    assert abs(sum(p.area for p in parts) - covered.area) < 1e-9 * covered.area  # no part over another
    lat, lng = cell_to_latlng(CENTRE)
    assert not any(p.contains(Point(lng, lat)) for p in parts), "the hole was filled"
    assert sum(len(r) for r in rings) < sum(len(cell_to_boundary_lnglat(c)) for c in cells) / 2
    assert cells_to_fill_rings_lnglat(reversed(cells)) is rings  # cached per set of cells
    assert cells_to_fill_rings_lnglat([]) == []


def test_a_cut_that_misses_its_hole_falls_back_to_triangles(monkeypatch):
    """Should the north-south cut ever leave a part with its hole, the fill is the polygon's triangles:
    the same area, no part with a hole, the hole still empty."""
    import geo.outlines as outlines
    square = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]
    hole = [(1.0, 1.0), (1.0, 3.0), (3.0, 3.0), (3.0, 1.0), (1.0, 1.0)]
    polygon = Polygon(square, [hole])
    monkeypatch.setattr(outlines, "split", lambda geom, _lines: geom)  # a cut that cuts nothing
    rings = outlines._without_holes(polygon)
    parts = [Polygon(r) for r in rings]
    assert len(parts) > 1 and all(p.is_valid and not p.interiors for p in parts)
    assert unary_union(parts).symmetric_difference(polygon).area < 1e-9
    assert abs(sum(p.area for p in parts) - polygon.area) < 1e-9  # no triangle over another
    assert not any(p.contains(Point(2.0, 2.0)) for p in parts), "the hole was filled"


def _numbers(spec) -> np.ndarray:
    """A coordinate array as sent: a plotly.js typed-array spec, or a list."""
    if isinstance(spec, dict):
        return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]).newbyteorder("<"))
    return np.asarray([np.nan if v is None else v for v in spec], dtype=float)


@pytest.fixture(scope="module")
def app_city(computed_city, tmp_path_factory):
    from auth.users import add_user

    settings, _, _ = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("map_outlines"))
    precinct = store.scalar("SELECT min(area_id) FROM areas WHERE kind = 'precinct'")
    add_user(store, app.server.extensions["pheoc.auth"].passwords, "cop-map", "police", TEST_PASSWORD,
             actor="test", precincts=(precinct,))
    yield app, store, settings, precinct
    close_app(app, store)


def _map(app, client, components, output: str) -> dict:
    key = next(k for k, e in app.callback_map.items() if "callback" in e and output in k)
    response = client.post("/_dash-update-component", json=_body(key, app.callback_map[key], components))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()["response"][output.split(".")[0]]["figure"]


@pytest.mark.parametrize("who", [None, "cop-map"], ids=["public", "police-one-precinct"])
def test_no_small_count_and_no_cell_beyond_the_callers_view_in_either_map(app_city, who):
    from services.privacy import jurisdiction

    app, store, settings, precinct = app_city
    k = settings.privacy.min_count
    client = app.server.test_client()
    if who:
        assert sign_in_client(client, who).status_code == 303
    components = _components(app)
    overview = _map(app, client, components, "overview-map.figure")
    places = next(t for t in overview["data"] if t.get("name") == "places")
    hovers = [f"{t}" for t in places["text"]]
    hovered_cells = list(places["customdata"]) if "cell %{customdata}" in places["hovertemplate"] else []
    assert len(_numbers(places["x"])) == len(hovers)
    if who is None:
        assert not hovered_cells and "cell" not in places["hovertemplate"]  # the public sees areas
    else:
        assert hovered_cells, "the police user sees cells inside the precinct"
        clusters = _map(app, client, components, "clusters-map.figure")
        for trace in (t for t in clusters["data"] if t.get("name") == "cells"):
            for point in trace["customdata"]:
                hovered_cells.append(point[1])
                hovers.append(point[2])
                if point[2].startswith("<"):
                    assert "per 100k" not in hover_shown(trace["hovertemplate"], point)  # a rate gives it back
        outside = [c for c, p in jurisdiction(store).precinct_of_cells(set(hovered_cells)).items() if p != precinct]
        assert not outside, outside[:3]
        assert f"<{k}" in hovers, "the demo city has small cells: they must read <k"
    small = [h for h in hovers if h.replace(",", "").isdigit() and 0 < int(h.replace(",", "")) < k]
    assert not small, small[:5]
    # Every cell is in some class's outline only through a disclosed row: the classes' fills cover
    # exactly the cells hovered (a withheld cell is drawn, in the lowest class, never as a number).
    if who:
        classed = [t for t in overview["data"] if t.get("fill") == "toself" and t.get("name", "").endswith(" cases")]
        covered = unary_union([Polygon(np.column_stack([x, y])[s]) for t in classed
                               for x, y in [(_numbers(t["x"]), _numbers(t["y"]))]
                               for s in _segments(x)])
        for cell in places["customdata"]:
            lat, lng = cell_to_latlng(cell)
            assert covered.contains(Point(lng, lat)), cell
        # Off by float32's metre along the edges, not by a cell: no cell more, none less.
        one_cell = Polygon(cell_to_boundary_lnglat(places["customdata"][0])).area
        assert covered.symmetric_difference(_area(places["customdata"])).area < one_cell / 2
    assert json.dumps(overview)  # the figure is plain JSON


def _segments(xs: np.ndarray) -> list[slice]:
    """Slices of the rings in a NaN-broken coordinate array."""
    breaks = [-1, *np.flatnonzero(np.isnan(xs)), len(xs)]
    return [slice(a + 1, b) for a, b in zip(breaks, breaks[1:]) if b - a > 3]
