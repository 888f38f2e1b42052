"""One picture of the city, cut to each caller.

Every Dash callback and every API endpoint, sent with no credentials and as a police user bound to
one precinct (through the real app, with a real session): nothing that comes back holds an H3 cell
id the caller may not see, a case's id or coordinates, or a count of people from 1 to
privacy.min_count - 1. The same request gives the API's numbers and the page's; and suspected cases
are counted nowhere: not by the indicators, not by the scan, not on the map.
"""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone

import dash
import pytest

from tests.app_helpers import app_on_copy, close_app, decimals_in, points_in, shows_coordinates, shows_point
from tests.auth_helpers import TEST_PASSWORD, sign_in_client
from tests.test_callback_authz import ROUTER_OUTPUT, _body, _components

pytestmark = pytest.mark.slow
H3_ID = re.compile(r"\b8[0-9a-f]{14}\b")
# "<count> <what>" in the text of a response (hovers, tables, tiles, details); what precedes a "<"
# (a withheld "<5") or a digit is not a count's start.
COUNT_IN_TEXT = re.compile(r"(?<![\d.,<])(\d{1,3}(?:,\d{3})*)\s+(cases|admitted|to ICU|patients|tests)\b")
API_PATHS = ("/api/v1/indicators", "/api/v1/indicators?area={area}", "/api/v1/areas", "/api/v1/capacity",
             "/api/v1/clusters", "/api/v1/zones", "/api/v1/alerts", "/api/v1/audit", "/api/v1/openapi.json")


@pytest.fixture(scope="module")
def city(computed_city, tmp_path_factory):
    """The computed demo city with its cluster scan run too, served by a real app (test client)."""
    from auth.users import add_user
    from jobs import clusters

    settings, manifest, today = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("one_picture"), (("op-one", "operator"),),
                                       clusters=settings.clusters.model_copy(update={"replications": 99}))
    assert clusters.run(store, settings, today)["status"] in ("computed", "unchanged")
    precinct = store.scalar("SELECT min(area_id) FROM areas WHERE kind = 'precinct'")
    svc = app.server.extensions["pheoc.auth"]
    add_user(store, svc.passwords, "cop-one", "police", TEST_PASSWORD, actor="test", precincts=(precinct,))
    yield app, store, settings, precinct
    close_app(app, store)


def _client(app, user: str | None):
    client = app.server.test_client()
    if user:
        assert sign_in_client(client, user).status_code == 303
    return client


def _responses(app, client) -> list[tuple[str, int, str]]:
    """(what, status, body) of every callback (every page through the router) and every API path."""
    components = _components(app)
    out = []
    area = next(a for a, *_ in app.server.extensions["pheoc"].store.read_rows(
        "SELECT area_id FROM areas WHERE kind = 'community' ORDER BY area_id"))
    for key, entry in app.callback_map.items():
        if "callback" not in entry:
            continue
        overrides = [{"pathname": p["path"], "search": ""} for p in dash.page_registry.values()] \
            if ROUTER_OUTPUT in key else [None]
        for override in overrides:
            response = client.post("/_dash-update-component", json=_body(key, entry, components, override))
            out.append((f"callback {key} {override or ''}", response.status_code, response.get_data(as_text=True)))
    # The history of a cell and a zone, as a click would ask for them.
    store = app.server.extensions["pheoc"].store
    some_cell = store.scalar("SELECT h3_cell FROM counted_cases WHERE h3_cell IS NOT NULL LIMIT 1")
    some_zone = store.scalar("SELECT zone_id FROM zones LIMIT 1")
    history = next(k for k, e in app.callback_map.items() if "callback" in e and "clusters-detail" in k)
    for selected in ({"kind": "cell", "key": some_cell}, {"kind": "zone", "key": some_zone}):
        body = _body(history, app.callback_map[history], components)
        body["inputs"][0]["value"] = selected
        response = client.post("/_dash-update-component", json=body)
        out.append((f"history {selected}", response.status_code, response.get_data(as_text=True)))
    for path in API_PATHS:
        response = client.get(path.format(area=area))
        out.append((f"GET {path}", response.status_code, response.get_data(as_text=True)))
    return out


def _cells_in(text: str) -> set[str]:
    from geo.cells import is_valid_cell
    return {c for c in H3_ID.findall(text) if is_valid_cell(c)}


def _check_counts(what: str, body: str, k: int) -> list[str]:
    problems = []
    for number, unit in COUNT_IN_TEXT.findall(body):
        n = int(number.replace(",", ""))
        if 0 < n < k:
            problems.append(f"{what}: '{number} {unit}'")
    try:
        doc = json.loads(body)
    except ValueError:
        return problems
    problems += [f"{what}: {p}" for p in _small_numbers_in_json(doc, k)]
    return problems


def _small_numbers_in_json(doc, k: int, path: str = "") -> list[str]:
    """Counts of people in the JSON API's shapes and in figures' per-day bars."""
    from analytics.catalog import CATALOG, COUNT

    found = []
    if isinstance(doc, dict):
        if "indicators" in doc and isinstance(doc["indicators"], dict):
            for key, figure in doc["indicators"].items():
                value = figure.get("value") if isinstance(figure, dict) else None
                if CATALOG.get(key) and CATALOG[key].kind == COUNT and isinstance(value, (int, float)) \
                        and 0 < value < k:
                    found.append(f"{path}.indicators.{key} = {value}")
        for field in ("beds_occupied", "icu_occupied", "ventilators_in_use", "covid_patients", "observed"):
            value = doc.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < k:
                found.append(f"{path}.{field} = {value}")
        name = str(doc.get("name", ""))
        if doc.get("type") == "bar" and ("/ day" in name) and isinstance(doc.get("y"), list):
            small = [v for v in doc["y"] if isinstance(v, (int, float)) and 0 < v < k]
            if small:
                found.append(f"{path} bar '{name}' shows {small[:5]}")
        if "data-value" in doc and "data-indicator" in doc:
            key, raw = doc["data-indicator"], doc["data-value"]
            if CATALOG.get(key) and CATALOG[key].kind == COUNT and raw not in ("", None) and 0 < float(raw) < k:
                found.append(f"{path} tile {key} = {raw}")
        for key, value in doc.items():
            found += _small_numbers_in_json(value, k, f"{path}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _small_numbers_in_json(value, k, f"{path}[{i}]")
    return found


def _case_leaks(store, body: str) -> list[str]:
    """Case ids and case coordinates (as stored, or to 5 decimals, or a drawn point within 1 m) in a response."""
    leaks, numbers, points = [], decimals_in(body), points_in(body)
    for case_id, lat, lng in store.read_rows("SELECT case_id, lat, lng FROM cases WHERE lat IS NOT NULL LIMIT 400"):
        if case_id in body:
            leaks.append(f"case id {case_id}")
        if shows_coordinates(numbers, lat, lng) or shows_point(points, lat, lng):
            leaks.append(f"coordinates of {case_id}")
    return leaks


@pytest.mark.parametrize("who", [None, "cop-one"], ids=["no-credentials", "police-bound-to-one-precinct"])
def test_no_cell_no_point_no_small_count_where_the_caller_may_not_see_it(city, who):
    from services.privacy import jurisdiction

    app, store, settings, precinct = city
    k = settings.privacy.min_count
    responses = _responses(app, _client(app, who))
    assert any(status == 200 for _, status, _ in responses)
    problems = []
    place = jurisdiction(store)
    for what, status, body in responses:
        if status >= 400:
            assert status in (401, 403, 404), f"{what}: {status} {body[:200]}"
            continue
        cells = _cells_in(body)
        if who is None:
            if cells:
                problems.append(f"{what}: the public received cells {sorted(cells)[:3]}")
        else:
            outside = [c for c, p in place.precinct_of_cells(cells).items() if p != precinct]
            if outside:
                problems.append(f"{what}: {len(outside)} cells outside {precinct}, e.g. {outside[:3]}")
        problems += [f"{what}: {leak}" for leak in _case_leaks(store, body)]
        problems += _check_counts(what, body, k)
    assert not problems, "\n".join(problems[:40])
    # The police user sees cells inside the precinct: the cut is a cut, not a blackout.
    if who:
        seen = set().union(*(_cells_in(b) for _, s, b in responses if s == 200))
        assert seen and all(p == precinct for p in place.precinct_of_cells(seen).values())


def test_the_api_and_the_page_give_the_same_numbers(city):
    """The overview's tiles are the API's indicators, value for value and text for text."""
    app, store, settings, _ = city
    client = _client(app, "op-one")
    api = client.get("/api/v1/indicators").get_json()["indicators"]
    components = _components(app)
    key = next(k for k, e in app.callback_map.items() if "callback" in e and "overview-kpis" in k)
    body = client.post("/_dash-update-component", json=_body(key, app.callback_map[key], components)).get_json()
    tiles = body["response"]["overview-kpis"]["children"]
    assert len(tiles) >= 8
    for tile in tiles:
        props = tile["props"]
        figure = api[props["data-indicator"]]
        raw = props["data-value"]
        assert (None if raw == "" else float(raw)) == figure["value"], props["data-indicator"]
        assert _text_of_class(tile, "kpi-value") == figure["display"], props["data-indicator"]


def _text_of_class(node, class_name: str):
    """The children of the first component in a serialised tree whose className includes ``class_name``
    (a tile may wrap its parts, e.g. in a link)."""
    if isinstance(node, list):
        for child in node:
            found = _text_of_class(child, class_name)
            if found is not None:
                return found
        return None
    if not isinstance(node, dict):
        return None
    props = node.get("props", {})
    if class_name in str(props.get("className", "")).split():
        return props.get("children")
    return _text_of_class(props.get("children"), class_name)


def test_suspected_cases_are_counted_nowhere(city, tmp_path):
    """Suspected cases added to a copy: the indicators, the scan's input and the map do not change."""
    from app import build_demo  # noqa: F401  (the demo city's files are the city's boundary)
    from auth.principal import principal_for
    from ingest.batch import BatchBuilder
    from ingest.context import ContextProvider
    from jobs import indicators
    from services.clusters import cases_by_cell_day
    from services.overview import map_layer
    from store import Store
    from store import queries_indicators as qi

    _, store, settings, _ = city
    db = tmp_path / "copy.duckdb"
    store.flush()
    store.write("CHECKPOINT")
    shutil.copy(store.path, db)
    copy_settings = settings.with_overrides(store=settings.store.model_copy(update={"path": db}))
    operator = principal_for("op", "operator")
    with Store(db) as copy:
        as_of = qi.latest_indicator_day(copy)
        # Both runs at one moment: whether a hospital's report is stale depends on the clock, and
        # that is not what this test is about.
        now = datetime.now(timezone.utc)
        copy.write("DELETE FROM job_runs")
        indicators.run(copy, copy_settings, as_of, now)
        before_values = qi.indicator_table(copy, as_of)
        before_cells, _ = cases_by_cell_day(copy, as_of, as_of, settings.clusters.resolution)
        before_map = map_layer(copy, copy_settings, operator, as_of).rows
        lat, lng = copy.read_rows("SELECT lat, lng FROM cases WHERE lat IS NOT NULL LIMIT 1")[0]
        builder = BatchBuilder("test-suspected", "file")
        ctx = ContextProvider(copy, copy_settings).get()
        for i in range(25):
            assert builder.add("case", {"case_id": f"SUSPECT-{i}", "reported_date": as_of.isoformat(), "lat": lat,
                                        "lng": lng, "status": "suspected"}, b"s", ctx)
        assert copy.write_batch(builder.build()).result().accepted == 25
        copy.write("DELETE FROM job_runs")
        indicators.run(copy, copy_settings, as_of, now)
        after_values = qi.indicator_table(copy, as_of)
        assert after_values["citywide"]["new_cases_24h"] == before_values["citywide"]["new_cases_24h"]
        # Equal to the last bits is too strict: DuckDB's parallel sums of sensor readings (untouched by
        # cases) differ in the 15th digit from run to run.
        changed = {(area, key): (before_values[area].get(key), value) for area, row in after_values.items()
                   for key, value in row.items() if not _same(before_values.get(area, {}).get(key), value)}
        assert not changed and after_values.keys() == before_values.keys(), changed
        after_cells, _ = cases_by_cell_day(copy, as_of, as_of, settings.clusters.resolution)
        assert after_cells.equals(before_cells)
        after_map = map_layer(copy, copy_settings, operator, as_of).rows
        # Row order among equal counts is not part of the contract; the content is.
        assert _sorted_by_cell(after_map).equals(_sorted_by_cell(before_map))


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, nan_ok=True)
    return a == b


def _sorted_by_cell(frame):
    return frame.sort_values("h3_cell").reset_index(drop=True)


def test_the_point_check_reads_plotly_typed_arrays_as_well_as_lists() -> None:
    """The leak check above must see a point however a figure carries it: float32 typed arrays (the maps'
    cell outlines and centres) are base64, invisible to a search for decimals."""
    import base64
    import json

    import numpy as np

    lat, lng = 2.9264321, 101.6964123
    def f4(values) -> dict:
        return {"dtype": "f4", "bdata": base64.b64encode(np.float32(values).tobytes()).decode()}

    typed = {"type": "scatter", "x": f4([101.5, lng]), "y": f4([2.5, lat])}
    listed = {"type": "scattermap", "lon": [101.5, None, lng], "lat": [2.5, None, lat]}
    for trace in (typed, listed):
        body = json.dumps({"response": {"map": {"figure": {"data": [trace]}}}})
        assert shows_point(points_in(body), lat, lng)
        assert not shows_point(points_in(body), lat + 0.001, lng)
    assert points_in("not json").size == 0
