"""File ingest: inbox folders, idempotency, quarantine of bad records and files, the `ingest` command."""
from __future__ import annotations

import json

import pytest

from app import main
from ingest.context import ContextProvider
from ingest.files import FileIngestor, kind_from_name
from settings import load_settings
from store import Store
from tests.conftest import write_config

SQUARE = {"type": "Polygon", "coordinates": [[[101.6, 2.9], [101.8, 2.9], [101.8, 3.0], [101.6, 3.0], [101.6, 2.9]]]}
WEST = {"type": "Polygon", "coordinates": [[[101.6, 2.9], [101.7, 2.9], [101.7, 3.0], [101.6, 3.0], [101.6, 2.9]]]}


def areas_geojson():
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"area_id": "city", "name": "City", "kind": "boundary", "population": 1000},
         "geometry": SQUARE},
        {"type": "Feature", "properties": {"area_id": "W", "name": "West", "population": 400}, "geometry": WEST}]})


@pytest.fixture
def env(tmp_path):
    settings = load_settings(write_config(tmp_path))
    store = Store(tmp_path / "pheoc.duckdb")
    contexts = ContextProvider(store, settings)
    yield tmp_path, store, FileIngestor(store, contexts, batch_rows=3)
    store.close()


def test_kind_from_name():
    assert kind_from_name("cases-2026-11-01.csv") == "case"
    assert kind_from_name("readings_north.ndjson") == "reading"
    assert kind_from_name("communities.geojson") == "area"
    assert kind_from_name("notes.txt") is None


def test_inbox_moves_files_and_second_drop_changes_nothing(env):
    folder, store, files = env
    inbox = folder / "inbox"
    inbox.mkdir()
    (inbox / "communities.geojson").write_text(areas_geojson())
    cases = "case_id,reported_date,lat,lng,status\n" + "".join(
        f"K{i},2026-11-01,2.95,101.65,confirmed\n" for i in range(7)) + "BAD,2026-11-01,2.95,150.0,confirmed\n"
    (inbox / "cases-a.csv").write_text(cases)
    (inbox / "garbage.csv").write_text("x,y\n1,2\n")
    results = {r.path.name: r for r in files.ingest_inbox(inbox)}
    assert results["communities.geojson"].result.accepted == 2
    r = results["cases-a.csv"].result
    assert (r.accepted, r.rejected) == (7, 1)  # batches of 3: all committed, the bad one quarantined
    assert store.scalar("SELECT count(*) FROM cases WHERE area_id = 'W'") == 7  # located in the community
    assert results["garbage.csv"].error.startswith("unknown_kind")
    assert (inbox / "processed" / "cases-a.csv").exists()
    assert (inbox / "rejected" / "garbage.csv").exists()
    assert "unknown_kind" in (inbox / "rejected" / "garbage.csv.reason.txt").read_text()
    assert store.scalar("SELECT reason_code FROM quarantine WHERE source = 'file:cases-a.csv'") == "outside_city"

    before = store.table_counts()
    (inbox / "cases-a.csv").write_text(cases)  # the same file dropped again
    again = files.ingest_inbox(inbox)
    assert again[0].result.skipped_file
    assert store.table_counts() == before
    assert (inbox / "processed" / "cases-a.1.csv").exists()  # the earlier copy is not overwritten


def test_unreadable_files_are_rejected_whole_with_raw_bytes(env):
    folder, store, files = env
    (folder / "cases-latin1.csv").write_bytes("case_id,reported_date,status\nA,2026-11-01,confirmé\n".encode("latin-1"))
    (folder / "tests-broken.json").write_text("[{")
    r1 = files.ingest_file(folder / "cases-latin1.csv")
    r2 = files.ingest_file(folder / "tests-broken.json")
    assert r1.error.startswith("not_utf8") and r2.error.startswith("malformed_json")
    raw = store.read_rows("SELECT raw_payload FROM quarantine WHERE reason_code = 'not_utf8'")[0][0]
    assert raw.startswith(b"case_id")


def test_ragged_csv_rows_and_bad_ndjson_lines_are_quarantined_individually(env):
    folder, store, files = env
    files.ingest_file(_write(folder / "communities.geojson", areas_geojson()))
    r = files.ingest_file(_write(folder / "cases.csv",
                                 "case_id,reported_date,status\nA,2026-11-01,confirmed\nB,2026-11-01\n"))
    assert (r.result.accepted, r.result.rejected) == (1, 1)
    r = files.ingest_file(_write(folder / "cases.ndjson",
                                 '{"case_id":"C","reported_date":"2026-11-01","status":"confirmed"}\n{oops\n'))
    assert (r.result.accepted, r.result.rejected) == (1, 1)
    codes = sorted(x[0] for x in store.read_rows("SELECT reason_code FROM quarantine"))
    assert codes == ["malformed_csv", "malformed_json"]


def test_cli_ingest_reports_and_is_idempotent(tmp_path, capsys):
    cfg = write_config(tmp_path)
    data = tmp_path / "drop"
    data.mkdir()
    _write(data / "communities.geojson", areas_geojson())
    _write(data / "cases.json", json.dumps({"records": [
        {"case_id": "J1", "reported_date": "2026-11-02", "status": "confirmed", "lat": 2.95, "lng": 101.75}]}))
    assert main(["ingest", "--config", str(cfg), str(data)]) == 0
    out = capsys.readouterr().out
    assert "cases.json: 1 stored" in out
    assert main(["ingest", "--config", str(cfg), str(data)]) == 0
    assert "already ingested" in capsys.readouterr().out
    assert main(["ingest", "--config", str(cfg), str(tmp_path / "missing.csv")]) == 2


def _write(path, text):
    path.write_text(text)
    return path
