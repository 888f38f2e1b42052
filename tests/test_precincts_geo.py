"""Point-in-precinct on real precincts: NYC's police precinct layers (NYC Open Data, 2021 and 2013).

Landmarks from the data's README (Empire State Building in the 14th, Times Square in the 18th, JFK in
the 113th), and 200 random points inside the city, each compared with shapely's own point-in-polygon
test on the same file's polygons as published — for the file read directly and for the file named in
``city.area_layers`` (with its own property names) and loaded through the ingest path into DuckDB (the 2021 file's 61st and 113th are invalid polygons:
the index repairs them, the reference does not, and both must agree).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from geo.areas import repaired_polygonal
from geo.precincts import PrecinctIndex, cell_cover_shares, precincts_from_geojson, precincts_from_rows
from tests.conftest import shared_data, write_config

FILES = {"2021": ("nyc_police_precincts_2021.geojson", "precinct"),
         "2013": ("nyc_police_precincts_2013.geojson", "Precinct")}
# (name, lat, lng, precinct) from shared/data/nyc-police-precincts/README.md
LANDMARKS = (("Empire State Building", 40.7484, -73.9857, "14"), ("Times Square", 40.7580, -73.9855, "18"),
             ("JFK Terminal 4", 40.6441, -73.7822, "113"), ("City Hall", 40.7127, -74.0060, "1"),
             ("St George ferry terminal", 40.6437, -74.0735, "120"), ("Stony Brook (Suffolk)", 40.9126, -73.1235, None))


def _layer(vintage: str):
    name, id_property = FILES[vintage]
    doc = json.loads(shared_data("nyc-police-precincts", name).read_text())
    return doc, id_property


def _loaded_through_config(vintage: str, folder) -> PrecinctIndex:
    """The layer as a deployment loads it: named in city.area_layers, ingested through the file path
    into a real DuckDB file, read back as stored (how the address check and the privacy scope see it)."""
    from app import ingest_city_layers
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor
    from settings import load_settings
    from store import Store
    from store import queries as q

    name, id_property = FILES[vintage]
    layer = {"kind": "precinct", "label": "Precinct", "id_property": id_property,
             "file": str(shared_data("nyc-police-precincts", name))}
    settings = load_settings(write_config(folder, city={"name": "New York City", "slug": "nyc",
                                                        "boundary_file": None, "area_layers": [layer]}))
    with Store(settings.path(settings.store.path)) as store:
        ingest_city_layers(settings, FileIngestor(store, ContextProvider(store, settings)))
        store.flush()
        assert store.scalar("SELECT count(*) FROM quarantine") == 0  # 61 and 113 repaired, not refused
        return PrecinctIndex(precincts_from_rows(q.areas(store, ("precinct",))))


@pytest.fixture(scope="module", params=[(v, how) for v in sorted(FILES) for how in ("file", "config")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def nyc(request, tmp_path_factory):
    vintage, how = request.param
    doc, id_property = _layer(vintage)
    if how == "config":
        index = _loaded_through_config(vintage, tmp_path_factory.mktemp(f"nyc-{vintage}"))
    else:
        index = PrecinctIndex(precincts_from_geojson(doc, id_property=id_property))
    return vintage, doc, id_property, index


def test_every_precinct_of_the_file_is_indexed(nyc):
    vintage, doc, _, index = nyc
    assert len(index) == len(doc["features"]) == {"2021": 77, "2013": 76}[vintage]


def test_landmarks(nyc):
    _, _, _, index = nyc
    lat = [p[1] for p in LANDMARKS]
    lng = [p[2] for p in LANDMARKS]
    found = list(index.locate(lat, lng))
    assert found == [p[3] for p in LANDMARKS]
    assert index.locate_one(40.7484, -73.9857) == "14"


def test_200_random_points_agree_with_shapely_point_in_polygon(nyc):
    """Random points inside NYC (the union of the precincts), against shapely.contains_xy on each published
    polygon. Where a point lies in two published polygons (an overlap sliver) the index's answer must be
    one of them; where in one, exactly it; where in none, none."""
    _, doc, id_property, index = nyc
    published = [(str(f["properties"][id_property]), shape(f["geometry"])) for f in doc["features"]]
    city = shapely.union_all([repaired_polygonal(g) for _, g in published])
    shapely.prepare(city)
    rng = np.random.default_rng(20260101)
    minx, miny, maxx, maxy = city.bounds
    lat, lng = [], []
    while len(lat) < 200:
        x, y = rng.uniform(minx, maxx, 400), rng.uniform(miny, maxy, 400)
        inside = shapely.contains_xy(city, x, y)
        lng.extend(x[inside][: 200 - len(lng)])
        lat.extend(y[inside][: 200 - len(lat)])
    got = index.locate(lat, lng)
    mismatches = []
    for la, ln, answer in zip(lat, lng, got):
        holding = {pid for pid, g in published if shapely.contains_xy(g, ln, la)}
        if (not holding and answer is not None) or (holding and answer not in holding):
            mismatches.append((la, ln, answer, sorted(holding)))
    assert not mismatches, mismatches[:5]
    assert sum(a is not None for a in got) >= 195  # inside the city almost every point is in some precinct


def test_points_outside_and_unknown_coordinates_are_in_no_precinct(nyc):
    _, _, _, index = nyc
    assert list(index.locate([40.9126, float("nan"), 0.0], [-73.1235, -73.98, 0.0])) == [None, None, None]
    assert len(index.locate([], [])) == 0


def test_invalid_published_polygons_are_repaired_without_losing_ground():
    doc, id_property = _layer("2021")
    for feature in doc["features"]:
        if str(feature["properties"][id_property]) in ("61", "113"):
            published = shape(feature["geometry"])
            assert not published.is_valid
            repaired = repaired_polygonal(published)
            assert repaired.is_valid and abs(repaired.area - published.area) < 1e-9 * max(published.area, 1)


def test_share_of_a_precinct_under_h3_cells():
    """The cells covering the Empire State Building's block cover a sliver of the 14th, none of the 113th."""
    from geo.cells import geometry_to_overlapping_cells, latlng_to_cell

    doc, id_property = _layer("2021")
    precincts = [p for p in precincts_from_geojson(doc, id_property=id_property) if p.area_id in ("14", "113")]
    cell = latlng_to_cell(40.7484, -73.9857, 9)
    shares = cell_cover_shares([cell], precincts)
    assert 0 < shares["14"] < 0.2 and shares["113"] == 0.0
    whole = cell_cover_shares(geometry_to_overlapping_cells(precincts[0].geometry, 9), precincts[:1])
    assert whole[precincts[0].area_id] == pytest.approx(1.0, abs=1e-6)
