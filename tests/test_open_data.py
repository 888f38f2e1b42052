"""Open data: small-count and complementary suppression on two-way tables with row and column totals
(services.privacy with Margins), checked against an independent linear-algebra attack; CSV cells
neutralised against formula injection; and the export of the computed demo city through the API, the
same figures as the public's /api/v1/indicators, audited with its purpose."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from auth.principal import principal_for, public_principal
from services.open_data import FORMULA_STARTS, OpenTable, neutralise, table_csv, table_geojson
from services.privacy import MARGIN_TOTAL, SUPPRESSED_SUFFIX, Disclosure, Margins, disclose

K = 5
SPEC = Disclosure("t", grain="area", counts=("n",), complementary=("n",), margins=Margins("place", "date"))


def two_way(table: dict[str, list[int]], days: list[str], released: dict | None = None) -> pd.DataFrame:
    """Places x days with row totals, column totals and the grand total, held long."""
    rows = []
    for place, values in table.items():
        rows += [(place, d, v) for d, v in zip(days, values)] + [(place, MARGIN_TOTAL, sum(values))]
    rows += [(MARGIN_TOTAL, d, sum(table[p][j] for p in table)) for j, d in enumerate(days)]
    rows.append((MARGIN_TOTAL, MARGIN_TOTAL, sum(map(sum, table.values()))))
    frame = pd.DataFrame(rows, columns=["place", "date", "n"])
    if released is not None:
        frame["released"] = [released.get((p, d)) for p, d in zip(frame["place"], frame["date"])]
    return frame


def solvable(frame: pd.DataFrame, hidden: np.ndarray) -> list[int]:
    """The attacker's view, written independently of services.privacy: the hidden entries that the sums
    of rows and columns fix exactly (e_i lies in the row space of the sums over the hidden entries)."""
    unknown = np.flatnonzero(hidden)
    equations = []
    for axis, other in (("place", "date"), ("date", "place")):
        for key, line in frame.groupby(axis):
            if (line[other] == MARGIN_TOTAL).sum() != 1:
                continue
            row = np.zeros(len(unknown))
            for index, entry in line.iterrows():
                if index in unknown:
                    row[list(unknown).index(index)] = -1.0 if entry[other] == MARGIN_TOTAL else 1.0
            equations.append(row)
    a = np.array(equations) if equations else np.zeros((0, len(unknown)))
    rank = np.linalg.matrix_rank(a) if a.size else 0
    exposed = []
    for j, index in enumerate(unknown):
        probe = np.zeros(len(unknown))
        probe[j] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, probe])) == rank:
            exposed.append(int(index))
    return exposed


def test_a_small_count_takes_a_rectangle_with_it_not_the_whole_table():
    days = ["d1", "d2", "d3"]
    frame = two_way({"A": [2, 10, 7], "B": [12, 9, 20], "C": [30, 1, 8]}, days)
    out = disclose(public_principal(), frame, SPEC, min_count=K)
    hidden = out["n" + SUPPRESSED_SUFFIX].to_numpy()
    assert sorted(zip(out.loc[hidden, "place"], out.loc[hidden, "date"])) == [
        ("A", "d1"), ("A", "d2"), ("C", "d1"), ("C", "d2")]
    assert solvable(frame, hidden) == []
    assert out.loc[~hidden, "n"].tolist() == frame.loc[~hidden, "n"].tolist()  # shown as they are
    # Without complementary suppression the row total and the column total would each give a count back.
    naive = frame["n"].between(1, K - 1).to_numpy()
    assert sorted(solvable(frame, naive)) == list(np.flatnonzero(naive))


def test_a_small_total_is_withheld_too_and_zeros_stay_shown():
    frame = two_way({"A": [1, 0, 0], "B": [0, 0, 3], "C": [40, 50, 60]}, ["d1", "d2", "d3"])
    out = disclose(public_principal(), frame, SPEC, min_count=K)
    hidden = dict(zip(zip(out["place"], out["date"]), out["n" + SUPPRESSED_SUFFIX]))
    assert hidden[("A", MARGIN_TOTAL)] and hidden[("B", MARGIN_TOTAL)]  # totals of 1 and 3 are small counts
    assert not any(hidden[(p, d)] for p in ("A", "B") for d in ("d1", "d2", "d3")
                   if frame.set_index(["place", "date"]).loc[(p, d), "n"] == 0)
    assert solvable(frame, out["n" + SUPPRESSED_SUFFIX].to_numpy()) == []


@pytest.mark.parametrize("seed", range(25))
def test_no_withheld_entry_can_be_solved_from_the_totals(seed):
    rng = np.random.default_rng(seed)
    places, n_days = int(rng.integers(2, 9)), int(rng.integers(2, 12))
    table = {f"P{i}": list(rng.choice([0, 0, 1, 2, 3, 4, 5, 7, 12, 30], n_days)) for i in range(places)}
    frame = two_way(table, [f"d{j}" for j in range(n_days)])
    out = disclose(public_principal(), frame, SPEC, min_count=K)
    hidden = out["n" + SUPPRESSED_SUFFIX].to_numpy()
    assert solvable(frame, hidden) == [], frame[hidden]
    assert hidden[frame["n"].between(1, K - 1).to_numpy()].all()  # every small count is withheld
    shown = out.loc[~hidden, "n"]
    assert not shown.between(1, K - 1).any()


def test_entries_published_elsewhere_are_known_and_those_withheld_there_stay_withheld():
    days = ["d1", "d2"]
    table = {"A": [2, 30], "B": [12, 40], "C": [9, 50]}
    # Another release showed B on d1 and withheld C on d1 (its own complement of A).
    released = {("A", "d1"): False, ("B", "d1"): True, ("C", "d1"): False, ("A", "d2"): True, ("B", "d2"): True,
                ("C", "d2"): True}
    frame = two_way(table, days, released)
    spec = Disclosure("t", grain="area", counts=("n",), complementary=("n",),
                      margins=Margins("place", "date", released="released"))
    out = disclose(public_principal(), frame, spec, min_count=K)
    hidden = dict(zip(zip(out["place"], out["date"]), out["n" + SUPPRESSED_SUFFIX]))
    assert hidden[("C", "d1")] and hidden[("A", "d1")] and not hidden[("B", "d1")]
    assert not any(hidden[k] for k, v in released.items() if v)
    # The row totals of A and C would give A.d1 and C.d1 back (their d2 is public): withheld.
    assert hidden[("A", MARGIN_TOTAL)] and hidden[("C", MARGIN_TOTAL)]
    assert solvable(frame, out["n" + SUPPRESSED_SUFFIX].to_numpy()) == []


def test_case_level_principals_see_every_count():
    frame = two_way({"A": [2, 10], "B": [12, 1]}, ["d1", "d2"])
    out = disclose(principal_for("dm", "data_manager"), frame, SPEC, min_count=K)
    assert not out["n" + SUPPRESSED_SUFFIX].any()


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_csv_cells_cannot_start_a_formula(start):
    payload = f"{start}HYPERLINK(\"http://example.invalid\",\"x\")"
    assert neutralise(payload) == "'" + payload
    rows = pd.DataFrame({"place": ["A", MARGIN_TOTAL], "name": [payload, "City"], "date": ["2026-01-01", "total"],
                         "cases": [12.0, np.nan], "suppressed": [False, True]})
    table = OpenTable("areas", date(2026, 1, 1), date(2026, 1, 1), rows, {}, K, None)
    parsed = list(csv.reader(io.StringIO(table_csv(table))))
    assert parsed[1][1] == "'" + payload
    for row in parsed:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell
    assert parsed[2][3] == "" and parsed[2][4] == "true"  # withheld: empty, flagged
    for harmless in ("Presint 9", "'quoted", "12", ""):
        assert neutralise(harmless) == harmless


# ---- the export of the demo city --------------------------------------------------------------------
@pytest.fixture(scope="module")
def exporter(computed_city, tmp_path_factory):
    from tests.app_helpers import app_on_copy, close_app
    settings, _manifest, today = computed_city
    app, store, settings = app_on_copy(settings, tmp_path_factory.mktemp("open_data"), (("od-dm", "data_manager"),))
    yield app, store, settings, today
    close_app(app, store)


@pytest.mark.slow
def test_open_data_is_the_public_api_cut_and_audited_with_its_purpose(exporter):
    from store import queries_access as qa
    from tests.auth_helpers import sign_in_client

    app, store, settings, today = exporter
    client = app.server.test_client()
    assert sign_in_client(client, "od-dm").status_code == 303
    end = today - timedelta(days=1)
    response = client.get(f"/api/v1/open-data/areas.csv?date={end}&purpose=portal%20upload")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    days = sorted({r["date"] for r in rows} - {MARGIN_TOTAL})
    assert len(days) == settings.briefing.open_data_days and days[-1] == end.isoformat()
    public = app.server.test_client()  # the public's own view of the same days, through the API
    for day in (days[-1], days[-5]):
        for r in [r for r in rows if r["date"] == day and r["place"] != MARGIN_TOTAL][:6]:
            api = public.get(f"/api/v1/indicators?area={r['place']}&date={day}").get_json()["indicators"]
            if api["new_cases_24h"]["suppressed"]:
                assert r["suppressed"] == "true" and r["cases"] == ""  # withheld there: withheld here
            elif r["suppressed"] == "false":
                assert float(r["cases"]) == api["new_cases_24h"]["value"]
    shown = [int(r["cases"]) for r in rows if r["suppressed"] == "false"]
    assert not [n for n in shown if 0 < n < settings.privacy.min_count]
    frame = pd.DataFrame(rows).assign(n=lambda f: pd.to_numeric(f["cases"], errors="coerce"))
    hidden = (frame["suppressed"] == "true").to_numpy()
    assert solvable(frame.rename(columns={"n": "n"}).reset_index(drop=True), hidden) == []
    cells = client.get(f"/api/v1/open-data/cells.geojson?date={end}").get_json()
    assert cells["type"] == "FeatureCollection" and cells["metadata"]["h3_resolution"] == 7
    from geo.cells import cell_resolution
    assert cells["features"] and all(cell_resolution(f["id"]) == 7 for f in cells["features"])
    for f in cells["features"]:
        assert f["geometry"]["type"] == "Polygon" and len(f["properties"]["daily"]) == len(days)
        assert not [d for d in f["properties"]["daily"] if d["cases"] is not None and 0 < d["cases"] < 5]
    exports = [json.loads(r.detail) for r in qa.audit_tail(store, 20, action="export")
               if r.target and r.target.startswith("open_data:")]
    assert any(e["purpose"] == "portal upload" for e in exports)
    assert any(e["purpose"] == "open data download" for e in exports)  # the default when none is given
    assert client.get("/api/v1/open-data/people.csv").status_code == 404
    assert client.get("/api/v1/open-data/areas.xlsx").status_code == 404


def test_geojson_features_carry_daily_counts_and_totals():
    rows = pd.DataFrame({"place": ["A", "A", "A", MARGIN_TOTAL, MARGIN_TOTAL],
                         "name": ["Alpha", "Alpha", "Alpha", "City", "City"],
                         "date": ["2026-01-01", "2026-01-02", MARGIN_TOTAL, "2026-01-01", MARGIN_TOTAL],
                         "cases": [np.nan, 9.0, np.nan, 12.0, 21.0], "suppressed": [True, False, True, False, False]})
    doc = table_geojson(OpenTable("areas", date(2026, 1, 1), date(2026, 1, 2), rows,
                                  {"A": {"type": "Point", "coordinates": [101.7, 2.9]}}, K, None))
    (feature,) = doc["features"]
    assert feature["properties"]["daily"] == [{"date": "2026-01-01", "cases": None, "suppressed": True},
                                              {"date": "2026-01-02", "cases": 9, "suppressed": False}]
    assert feature["properties"]["total"] is None and feature["properties"]["total_suppressed"]
    assert doc["metadata"]["min_count"] == K
