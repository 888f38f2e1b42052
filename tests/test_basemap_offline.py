"""The offline basemap: context layers (the demo city's roads, lake and landmarks) under every map, and a local
MBTiles file's raster tiles served by pheoc itself, with nothing asked of any other machine."""
from __future__ import annotations

import json
import sqlite3

import pytest

from geo.context import context_layer_from_geojson, read_context_layer
from geo.mbtiles import MbtilesError, read_tile, tile_format
from settings import ConfigError
from tests.test_tile_basemap import grey_png


def test_context_layers_split_lines_areas_and_named_points(tmp_path):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Jalan A"},
         "geometry": {"type": "LineString", "coordinates": [[101.6, 2.9], [101.7, 2.95]]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[101.6, 2.9], [101.61, 2.9], [101.61, 2.91], [101.6, 2.9]]]]}},
        {"type": "Feature", "properties": {"name": "Masjid"}, "geometry": {"type": "Point", "coordinates": [101.65, 2.93]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "GeometryCollection", "geometries": []}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": ["x"]}},
    ]}
    layer = context_layer_from_geojson("x", "X", doc)
    assert len(layer.lines) == 1 and len(layer.areas) == 1 and layer.points == [(101.65, 2.93, "Masjid")]
    assert layer.skipped == 2  # counted, never fatal
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_context_layer("bad", "Bad", bad)


def test_the_demo_city_generates_roads_water_and_landmarks(demo_city):
    dsettings, _ = demo_city
    ids = [layer.id for layer in dsettings.map.context_layers]
    assert ids == ["water", "roads", "landmarks"]
    layers = {layer.id: read_context_layer(layer.id, layer.label, dsettings.path(layer.file))
              for layer in dsettings.map.context_layers}
    assert len(layers["roads"].lines) >= 10 and layers["water"].areas
    names = [p[2] for p in layers["landmarks"].points]
    assert any(n.startswith("Hospital") for n in names) and "Dataran (city square)" in names


def test_every_map_draws_the_context_layers(demo_city, tmp_path):
    from tests.app_helpers import app_on_copy, close_app
    from tests.auth_helpers import sign_in_client

    dsettings, _ = demo_city
    app, store, settings = app_on_copy(dsettings, tmp_path, users=[("op", "operator")])
    try:
        client = app.server.test_client()
        sign_in_client(client, "op")
        body = {"output": next(k for k in app.callback_map if "overview-map.figure" in k), "outputs": [],
                "inputs": [{"id": "overview-refresh", "property": "n_intervals", "value": 1}],
                "state": [{"id": "overview-drawn", "property": "data", "value": None}],
                "changedPropIds": ["overview-refresh.n_intervals"]}
        body["outputs"] = [dict(zip(("id", "property"), o.split("."))) for o in body["output"].strip(".").split("...")]
        response = client.post("/_dash-update-component", json=body)
        assert response.status_code == 200
        figure = json.loads(response.get_data(as_text=True))["response"]["overview-map"]["figure"]
        names = [t.get("name") for t in figure["data"]]
        assert "Main roads" in names and "Water" in names and "Landmarks" in names
        assert names.index("Water") < names.index("cell") if "cell" in names else names.index("Water") == 0
    finally:
        close_app(app, store)


def _mbtiles(path, tiles: dict[tuple[int, int, int], bytes], fmt: str = "png") -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    con.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    con.execute("INSERT INTO metadata VALUES ('format', ?)", [fmt])
    for (z, x, tms_y), data in tiles.items():
        con.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", [z, x, tms_y, data])
    con.commit()
    con.close()


def test_mbtiles_rows_are_flipped_and_bad_files_refused(tmp_path):
    png = grey_png(8)
    path = tmp_path / "city.mbtiles"
    _mbtiles(path, {(1, 0, 1): png})  # TMS row 1 at zoom 1 is XYZ row 0 (the northern half)
    assert tile_format(path) == "png"
    assert read_tile(path, 1, 0, 0) == png and read_tile(path, 1, 0, 1) is None and read_tile(path, 1, 5, 0) is None
    vector = tmp_path / "vector.mbtiles"
    _mbtiles(vector, {}, fmt="pbf")
    with pytest.raises(MbtilesError, match="not raster"):
        tile_format(vector)
    junk = tmp_path / "junk.mbtiles"
    junk.write_bytes(b"not sqlite at all")
    with pytest.raises(MbtilesError):
        tile_format(junk)


def test_pheoc_serves_its_own_tiles_and_the_maps_draw_on_them(demo_city, tmp_path):
    from tests.app_helpers import app_on_copy, close_app
    from tests.auth_helpers import sign_in_client

    dsettings, _ = demo_city
    png = grey_png(8)
    path = tmp_path / "city.mbtiles"
    _mbtiles(path, {(12, 3253, 4095 - 2014): png})
    mapc = dsettings.map.model_copy(update={"basemap": "mbtiles", "tile_file": path})
    app, store, _ = app_on_copy(dsettings, tmp_path, users=[("op", "operator")], map=mapc)
    try:
        client = app.server.test_client()
        tile = client.get("/basemap/tiles/12/3253/2014")
        assert tile.status_code == 200 and tile.mimetype == "image/png" and tile.data == png
        assert client.get("/basemap/tiles/12/3253/2015").status_code == 204
        csp = tile.headers["Content-Security-Policy"]
        assert "img-src 'self' data: blob:;" in csp  # nothing outside this origin
        sign_in_client(client, "op")
        body = {"output": next(k for k in app.callback_map if "overview-map.figure" in k),
                "inputs": [{"id": "overview-refresh", "property": "n_intervals", "value": 1}],
                "state": [{"id": "overview-drawn", "property": "data", "value": None}],
                "changedPropIds": ["overview-refresh.n_intervals"]}
        body["outputs"] = [dict(zip(("id", "property"), o.split("."))) for o in body["output"].strip(".").split("...")]
        figure = json.loads(client.post("/_dash-update-component", json=body).get_data(as_text=True))
        sources = figure["response"]["overview-map"]["figure"]["layout"]["map"]["style"]["sources"]
        assert sources["basemap"]["tiles"] == ["http://localhost/basemap/tiles/{z}/{x}/{y}"]
    finally:
        close_app(app, store)
    with pytest.raises(ConfigError, match=r"map\.tile_file"):
        bad = dsettings.map.model_copy(update={"basemap": "mbtiles", "tile_file": tmp_path / "missing.mbtiles"})
        (tmp_path / "again").mkdir()
        app_on_copy(dsettings, tmp_path / "again", map=bad)
