"""Issue 11, files: nothing lost, nothing let in.

One bad record or file never stops the inbox; only finished regular files are read; a link's
target never reaches the database; /healthz says what the watcher is doing. Real files on
tmp_path, a real DuckDB file, a real watcher thread.
"""
from __future__ import annotations

import json
import os
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from app import create_app, main
from geo.cells import latlng_to_cell
from ingest.batch import BatchBuilder, commit_batch
from ingest.context import ContextProvider
from ingest.files import DONE_SUFFIX, FileIngestor, InboxTracker, InboxWatcher
from ingest.records import FIELD_SPECS, INT32_MAX, INT64_MAX, _count
from settings import ConfigError, load_settings, parse_settings
from store import Store
from store.schema import INGEST_TABLES
from store.store import IngestBatch
from tests.conftest import write_config

# The test city: a square around Putrajaya (lng 101.6-101.8, lat 2.9-3.0) with one community.
SQUARE = {"type": "Polygon", "coordinates": [[[101.6, 2.9], [101.8, 2.9], [101.8, 3.0], [101.6, 3.0], [101.6, 2.9]]]}
WEST = {"type": "Polygon", "coordinates": [[[101.6, 2.9], [101.7, 2.9], [101.7, 3.0], [101.6, 3.0], [101.6, 2.9]]]}
YESTERDAY = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
AN_HOUR_AGO = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")
CASES_HEADER = "case_id,reported_date,lat,lng,status\n"


def case_line(case_id: str, day: str = YESTERDAY) -> str:
    return f"{case_id},{day},2.95,101.65,confirmed"


def city_layers(*extra_features: dict) -> str:
    features = [
        {"type": "Feature", "properties": {"area_id": "city", "name": "City", "kind": "boundary"}, "geometry": SQUARE},
        {"type": "Feature", "properties": {"area_id": "W", "name": "West", "kind": "community"}, "geometry": WEST},
        *extra_features]
    return json.dumps({"type": "FeatureCollection", "features": features})


@pytest.fixture
def city(tmp_path):
    """(folder, inbox, store, ingestor) for a test city whose boundary and one facility are loaded."""
    settings = load_settings(write_config(tmp_path))
    store = Store(tmp_path / "pheoc.duckdb")
    files = FileIngestor(store, ContextProvider(store, settings), batch_rows=4)
    setup = tmp_path / "setup"
    setup.mkdir()
    (setup / "communities.geojson").write_text(city_layers())
    (setup / "facilities.csv").write_text("facility_id,name,kind,lat,lng,beds\nH1,General,hospital,2.95,101.65,400\n")
    assert not [r.error for r in files.ingest_paths([setup]) if r.error]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    yield tmp_path, inbox, store, files
    store.close()


def quarantined(store: Store) -> dict[bytes, list[str]]:
    """raw payload -> reason codes, for every quarantine row."""
    out: dict[bytes, list[str]] = {}
    for code, raw in store.read_rows("SELECT reason_code, raw_payload FROM quarantine ORDER BY quarantine_id"):
        out.setdefault(bytes(raw), []).append(code)
    return out


def database_bytes(store: Store) -> bytes:
    """Every value of every table, as bytes: to show that something is nowhere in the database."""
    parts = []
    for table in store.table_counts():
        for row in store.read_rows(f'SELECT * FROM "{table}"'):
            parts.extend(bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else str(v).encode() for v in row)
    return b"\x00".join(parts)


# ---- one bad record or file never stops the pass ----------------------------------------------------
def test_the_pass_goes_on_past_each_bad_file_and_keeps_the_good_rows(city):
    folder, inbox, store, files = city
    no_coordinates = {"type": "Feature", "properties": {"area_id": "X", "name": "Broken", "kind": "community"},
                      "geometry": {"type": "Polygon"}}
    (inbox / "districts.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"area_id": "D1", "name": "D1"}, "geometry": WEST}, no_coordinates]}))
    year_one = "H1,0001-01-01T00:00:00+08:00,400,310"
    (inbox / "capacity-today.csv").write_text(
        f"facility_id,reported_at,beds_total,beds_occupied\nH1,{AN_HOUR_AGO},400,300\n{year_one}\n")
    too_many = f"{YESTERDAY},W,3000000000,12"
    (inbox / "tests-areas.csv").write_text(f"test_date,area_id,tested,positive\n{too_many}\n{YESTERDAY},W,100,7\n")
    continent = latlng_to_cell(2.95, 101.65, 0)
    new_york = latlng_to_cell(40.7128, -74.0060, 9)
    in_city = latlng_to_cell(2.95, 101.65, 9)
    (inbox / "tests-cells.csv").write_text(f"test_date,h3_cell,tested,positive\n{YESTERDAY},{continent},10,1\n"
                                           f"{YESTERDAY},{new_york},10,1\n{YESTERDAY},{in_city},10,1\n")
    (inbox / "cases-old.csv").write_text(CASES_HEADER + "\n".join(
        [case_line("OLD-1", "0001-01-01"), case_line("OLD-2", "1900-01-01"), case_line("NEW-1")]) + "\n")
    wide = case_line("W" * 1_000_000)
    (inbox / "cases-wide.csv").write_text(CASES_HEADER + f"{case_line('WIDE-1')}\n{wide}\n{case_line('WIDE-2')}\n")
    twice = f'{{"case_id": "DUP-1", "reported_date": "{YESTERDAY}", "status": "suspected", "status": "confirmed"}}'
    once = f'{{"case_id": "DUP-2", "reported_date": "{YESTERDAY}", "status": "confirmed"}}'
    (inbox / "cases-dupkey.ndjson").write_text(f"{twice}\n{once}\n")
    (inbox / "admissions-last.csv").write_text(
        f"admission_id,facility_id,admitted_on\nA-1,H1,{YESTERDAY}\n")  # registry-last: proves the pass went on
    os.mkfifo(inbox / "cases-fifo.csv")
    (inbox / "readings-folder.csv").mkdir()

    results = {r.path.name: r for r in files.ingest_inbox(inbox)}  # a FIFO, if opened, would hang here

    got = quarantined(store)
    assert got[json.dumps(no_coordinates, separators=(",", ":")).encode()] == ["invalid_geometry"]
    assert got[year_one.encode()] == ["date_too_old"]
    assert got[too_many.encode()] == ["value_out_of_range"]
    assert got[f"{YESTERDAY},{continent},10,1".encode()] == ["wrong_h3_resolution"]
    assert got[f"{YESTERDAY},{new_york},10,1".encode()] == ["outside_city"]
    assert got[case_line("OLD-1", "0001-01-01").encode()] == ["date_too_old"]
    assert got[case_line("OLD-2", "1900-01-01").encode()] == ["date_too_old"]
    assert got[wide.encode()[:65_536]] == ["payload_too_large"]  # its first ingest.max_payload_bytes are kept
    assert got[twice.encode()] == ["duplicate_key"]
    # the good rows beside the bad ones are stored
    assert store.scalar("SELECT count(*) FROM areas WHERE area_id = 'D1'") == 1
    assert store.scalar("SELECT count(*) FROM capacity_reports") == 1
    assert store.scalar("SELECT count(*) FROM tests") == 2
    assert store.scalar(f"SELECT count(*) FROM tests WHERE h3_cell = '{in_city}'") == 1
    assert sorted(r[0] for r in store.read_rows("SELECT case_id FROM cases")) == ["DUP-2", "NEW-1", "WIDE-1", "WIDE-2"]
    assert store.scalar("SELECT count(*) FROM admissions") == 1
    # each readable file went to processed/, each non-file to rejected/ as itself, unread
    for name in ("districts.geojson", "capacity-today.csv", "tests-areas.csv", "tests-cells.csv", "cases-old.csv",
                 "cases-wide.csv", "cases-dupkey.ndjson", "admissions-last.csv"):
        assert results[name].error is None and (inbox / "processed" / name).exists(), name
    assert results["cases-fifo.csv"].error.startswith("not_regular_file: cases-fifo.csv is a FIFO")
    assert (inbox / "rejected" / "cases-fifo.csv").is_fifo()
    assert (inbox / "rejected" / "readings-folder.csv").is_dir()
    assert "not_regular_file" in (inbox / "rejected" / "readings-folder.csv.reason.txt").read_text()
    assert sorted(p.name for p in inbox.iterdir()) == ["processed", "rejected"]


def test_unforeseen_errors_quarantine_the_record_or_the_file_and_the_pass_goes_on(city):
    folder, inbox, store, files = city
    report = {"resourceType": "MeasureReport", "id": "r-ok", "status": "complete", "date": AN_HOUR_AGO,
              "subject": {"reference": "Location/H1"}, "group": [{"population": [
                  {"code": {"coding": [{"code": "numTotBeds"}]}, "count": 400},
                  {"code": {"coding": [{"code": "numBedsOcc"}]}, "count": 250}]}]}
    odd = {**report, "id": "r-odd", "subject": "Location/H1"}  # a string where a Reference object belongs
    (inbox / "saner-a.json").write_text(json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": report}, {"resource": odd}]}))
    # an Organization id that is a list: the bundle cannot even be indexed, so the whole file is put aside
    (inbox / "saner-b.json").write_text(json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Organization", "id": ["o"]}}]}))
    (inbox / "cases-after.csv").write_text(CASES_HEADER + case_line("AFTER-1") + "\n")

    results = {r.path.name: r for r in files.ingest_inbox(inbox)}

    assert quarantined(store)[json.dumps(odd, separators=(",", ":")).encode()] == ["unexpected_error"]
    assert store.scalar("SELECT beds_occupied FROM capacity_reports") == 250
    assert results["saner-b.json"].error.startswith("unexpected_error: TypeError")
    assert (inbox / "rejected" / "saner-b.json").exists()
    assert store.scalar("SELECT count(*) FROM quarantine WHERE record_key = 'saner-b.json'") == 1
    # not marked as ingested: once the bug is fixed, the same file dropped again is read
    assert store.scalar("SELECT count(*) FROM ingested_files WHERE name = 'saner-b.json'") == 0
    assert store.scalar("SELECT count(*) FROM cases WHERE case_id = 'AFTER-1'") == 1


def test_a_batch_the_store_refuses_is_stored_row_by_row(city):
    folder, inbox, store, files = city
    ctx = ContextProvider(store, load_settings(folder / "config.yaml")).get()
    builder = BatchBuilder("file:tests-x.csv", "file")
    for day in range(1, 4):
        assert builder.add("test", {"test_date": f"2026-01-0{day}", "area_id": "W", "tested": 10, "positive": 1},
                           f"row {day}".encode(), ctx)
    batch = builder.build()
    frame = batch.rows_by_kind["test"].copy()
    frame.loc[1, "tested"] = -5  # what validation would refuse, so that only the store's CHECK catches it
    result = commit_batch(store, IngestBatch(batch.source, batch.channel, {"test": frame}))
    assert (result.accepted, result.rejected) == (2, 1)
    assert store.scalar("SELECT count(*) FROM tests") == 2
    assert quarantined(store)[b"row 2"] == ["store_refused"]


# ---- links and other non-files are never read ----------------------------------------------------------
def test_a_symlinks_target_never_reaches_the_database(city, capsys):
    folder, inbox, store, files = city
    secret = folder / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(CASES_HEADER + case_line("SECRET-TARGET-BYTES") + "\n")  # would be a valid case file
    (inbox / "cases-x.csv").symlink_to(secret)
    (inbox / "cases-passwd.csv").symlink_to("/etc/passwd")
    (inbox / "cases-dangling.csv").symlink_to(folder / "nothing-here.csv")

    results = {r.path.name: r for r in files.ingest_inbox(inbox)}

    for name in ("cases-x.csv", "cases-passwd.csv", "cases-dangling.csv"):
        assert results[name].error.startswith(f"not_regular_file: {name} is a symbolic link")
        assert (inbox / "rejected" / name).is_symlink()  # the link itself was moved, its target left alone
    assert secret.read_text().startswith(CASES_HEADER)
    assert os.readlink(inbox / "rejected" / "cases-passwd.csv") == "/etc/passwd"
    everything = database_bytes(store)
    assert b"SECRET-TARGET-BYTES" not in everything
    assert b"root:" not in everything
    assert store.scalar("SELECT count(*) FROM cases") == 0

    # the one-shot command refuses links too, named or inside a folder (its own database: one owner per file)
    cli = folder / "cli"
    (cli / "drop").mkdir(parents=True)
    (cli / "drop" / "cases-y.csv").symlink_to(secret)
    assert main(["ingest", "--config", str(write_config(cli)), str(cli / "drop"),
                 str(inbox / "rejected" / "cases-x.csv")]) == 1
    assert capsys.readouterr().out.count("not_regular_file") == 2
    with Store(cli / "pheoc.duckdb") as cli_store:
        assert b"SECRET-TARGET-BYTES" not in database_bytes(cli_store)


# ---- only finished files are taken -------------------------------------------------------------------
def test_part_files_wait_and_a_done_marker_takes_a_file_at_once(city):
    folder, inbox, store, files = city
    tracker = InboxTracker(settle_s=3600)  # nothing settles within the test: only the conventions count
    (inbox / "cases-a.csv.part").write_text(CASES_HEADER + case_line("PART-1") + "\n")
    (inbox / "cases-b.csv").write_text(CASES_HEADER + case_line("UNMARKED-1") + "\n")
    (inbox / "cases-c.csv").write_text(CASES_HEADER + case_line("MARKED-1") + "\n")
    (inbox / ("cases-c.csv" + DONE_SUFFIX)).touch()

    first = files.run_inbox_pass(inbox, tracker)
    assert [r.path.name for r in first.results] == ["cases-c.csv"]
    assert sorted(p.name for p in first.waiting) == ["cases-a.csv.part", "cases-b.csv"]
    assert not (inbox / ("cases-c.csv" + DONE_SUFFIX)).exists()  # the marker is removed with its file

    (inbox / "cases-a.csv.part").rename(inbox / "cases-a.csv")  # the writer is done: rename, then mark
    (inbox / ("cases-a.csv" + DONE_SUFFIX)).touch()
    second = files.run_inbox_pass(inbox, tracker)
    assert [r.path.name for r in second.results] == ["cases-a.csv"]
    assert sorted(r[0] for r in store.read_rows("SELECT case_id FROM cases")) == ["MARKED-1", "PART-1"]


def test_an_unmarked_file_is_taken_once_it_stays_the_same_over_two_passes(city):
    folder, inbox, store, files = city
    tracker = InboxTracker(settle_s=0)  # the bare rule: seen identical on the previous pass
    path = inbox / "cases-growing.csv"
    path.write_text(CASES_HEADER + case_line("G-1") + "\n")
    assert files.run_inbox_pass(inbox, tracker).results == []  # first seen
    with path.open("a") as f:
        f.write(case_line("G-2") + "\n")
    assert files.run_inbox_pass(inbox, tracker).results == []  # changed since: seen anew
    taken = files.run_inbox_pass(inbox, tracker).results
    assert [r.result.accepted for r in taken] == [2]


def test_a_file_that_changes_while_it_is_read_is_read_again(city):
    folder, inbox, store, files = city  # batches of 4 rows: progress is reported after each
    path = inbox / "cases-live.csv"
    path.write_text(CASES_HEADER + "".join(case_line(f"L-{i}") + "\n" for i in range(6)))

    appended = []

    def writer_still_at_work(name, done, total):  # called after the first batch is committed
        if not appended:
            with path.open("a") as f:
                f.write(case_line("L-late") + "\n")
            appended.append(True)

    first = files.ingest_file(path, move_to=inbox, progress=writer_still_at_work)
    assert first.changed_while_read and first.moved_to is None and path.exists()
    assert store.scalar("SELECT count(*) FROM ingested_files WHERE name = 'cases-live.csv'") == 0
    again = files.ingest_file(path, move_to=inbox)
    assert not again.changed_while_read and (inbox / "processed" / "cases-live.csv").exists()
    # whatever the first read saw is stored once; the second read finds it as duplicates
    assert store.scalar("SELECT count(*) FROM cases") == 7
    assert again.result.accepted + again.result.duplicate == 7 and again.result.duplicate >= 6


@pytest.mark.slow
def test_a_file_written_in_two_parts_7_s_apart_is_stored_whole(city):
    folder, inbox, store, files = city
    watcher = InboxWatcher(files, inbox, interval_s=2).start()  # ingest.settle_s at its default
    try:
        with (inbox / "cases-slow.csv").open("w") as f:
            f.write(CASES_HEADER + "".join(case_line(f"S-{i}") + "\n" for i in range(1, 6)))
            f.flush()
            time.sleep(7)
            f.write("".join(case_line(f"S-{i}") + "\n" for i in range(6, 11)))
        deadline = time.monotonic() + 40
        while not (inbox / "processed" / "cases-slow.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        watcher.stop()
    assert store.scalar("SELECT count(*) FROM cases") == 10
    assert store.scalar("SELECT count(*) FROM quarantine") == 0


# ---- size caps -----------------------------------------------------------------------------------------
def test_files_over_the_caps_are_refused_whole_and_unread(tmp_path):
    settings = load_settings(write_config(tmp_path, ingest={"max_file_bytes": 4096, "max_document_bytes": 1024}))
    with Store(tmp_path / "pheoc.duckdb") as store:
        files = FileIngestor(store, ContextProvider(store, settings))
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        (inbox / "cases-big.csv").write_text(CASES_HEADER + "".join(case_line(f"B-{i}") + "\n" for i in range(200)))
        records = [{"case_id": f"J-{i}", "reported_date": YESTERDAY, "status": "confirmed"} for i in range(40)]
        (inbox / "cases-big.json").write_text(json.dumps(records))
        results = {r.path.name: r for r in files.ingest_inbox(inbox)}
        assert results["cases-big.csv"].error.startswith("file_too_large")
        assert "ingest.max_document_bytes" in results["cases-big.json"].error
        assert (inbox / "rejected" / "cases-big.csv").exists() and (inbox / "rejected" / "cases-big.json").exists()
        assert store.scalar("SELECT count(*) FROM quarantine WHERE reason_code = 'file_too_large'") == 2
        assert store.scalar("SELECT count(*) FROM cases") == 0


def test_an_over_long_ndjson_line_is_one_rejected_record(city):
    folder, inbox, store, files = city
    good = f'{{"case_id": "N-1", "reported_date": "{YESTERDAY}", "status": "confirmed"}}'
    huge = '{"case_id": "' + "x" * 1_500_000 + '"}'
    path = inbox / "cases-long.ndjson"
    path.write_text(f"{huge}\n{good}\n")
    r = files.ingest_file(path)
    assert (r.result.accepted, r.result.rejected) == (1, 1)
    raw, code = store.read_rows("SELECT raw_payload, reason_code FROM quarantine")[0]
    assert code == "payload_too_large" and bytes(raw) == huge.encode()[:65_536]  # its start is kept


# ---- duplicate keys ------------------------------------------------------------------------------------
def test_duplicate_keys_in_a_json_document_or_a_csv_header_refuse_the_file(city):
    folder, inbox, store, files = city
    (inbox / "cases-twice.json").write_text(
        f'[{{"case_id": "T-1", "reported_date": "{YESTERDAY}", "status": "suspected", "status": "confirmed"}}]')
    (inbox / "cases-header.csv").write_text("case_id,reported_date,status,status\nH-1,2026-01-01,suspected,confirmed\n")
    results = {r.path.name: r for r in files.ingest_inbox(inbox)}
    assert results["cases-twice.json"].error == "duplicate_key: key 'status' appears twice in one object"
    assert results["cases-header.csv"].error == "duplicate_key: the header names 'status' twice"
    assert store.scalar("SELECT count(*) FROM cases") == 0


# ---- health --------------------------------------------------------------------------------------------
def test_healthz_reports_the_watchers_state_last_error_and_waiting_files(city):
    folder, inbox, store, files = city
    settings = load_settings(folder / "config.yaml")
    watcher = InboxWatcher(files, inbox, interval_s=0.1, settle_s=0)
    app = create_app(settings, store, {"InboxWatcher": watcher})
    client = app.server.test_client()
    assert watcher.health()["state"] == "not started"
    watcher.start()
    try:
        (inbox / "cases-a.csv").write_text(CASES_HEADER + case_line("H-1") + "\n")
        (inbox / "cases-b.csv.part").write_text(CASES_HEADER)
        _wait_until(lambda: watcher.health()["files_done"] == 1)
        body = client.get("/healthz").get_json()
        inbox_health = body["components"]["InboxWatcher"]
        assert body["status"] == "ok" and inbox_health["ok"]
        assert inbox_health["state"] == "watching" and inbox_health["files_waiting"] == 1
        assert inbox_health["last_pass_at"] and inbox_health["last_error"] is None

        # rejected/ is not a folder, so a link cannot be moved aside: the watcher says so and goes on
        (inbox / "rejected").write_text("in the way")
        (inbox / "cases-link.csv").symlink_to(inbox / "processed" / "cases-a.csv")
        (inbox / "cases-c.csv").write_text(CASES_HEADER + case_line("H-2") + "\n")
        _wait_until(lambda: watcher.health()["files_stuck"] == 1 and watcher.health()["files_done"] == 2)
        body = client.get("/healthz").get_json()
        inbox_health = body["components"]["InboxWatcher"]
        assert body["status"] == "degraded" and not inbox_health["ok"]
        assert inbox_health["last_error"].startswith("cases-link.csv: ")
    finally:
        watcher.stop()
    assert watcher.health()["state"] == "stopped" and not watcher.health()["ok"]


def _wait_until(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---- validation against the store's columns, and the new settings -------------------------------------------
def test_integer_maxima_match_the_store_columns(tmp_path):
    bound = {"INTEGER": INT32_MAX, "BIGINT": INT64_MAX}
    with Store(tmp_path / "pheoc.duckdb") as store:
        types = dict(((t, c), d) for t, c, d in store.read_rows(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"))
    for kind, specs in FIELD_SPECS.items():
        for name, spec in specs.items():
            if spec.parse is _count:
                assert spec.maximum == bound[types[(INGEST_TABLES[kind].table, name)]], (kind, name)


def test_earliest_date_is_configurable_and_checked(tmp_path):
    settings = load_settings(write_config(tmp_path, ingest={"earliest_date": "2020-01-01"}))
    assert settings.ingest.earliest_date == date(2020, 1, 1)
    with Store(tmp_path / "pheoc.duckdb") as store:
        path = tmp_path / "cases-2019.csv"
        path.write_text(CASES_HEADER.replace(",lat,lng", "") + "C-1,2019-12-31,confirmed\nC-2,2020-01-01,confirmed\n")
        r = FileIngestor(store, ContextProvider(store, settings)).ingest_file(path)
        assert (r.result.accepted, r.result.rejected) == (1, 1)
    with pytest.raises(ConfigError, match="'ingest.earliest_date'"):
        parse_settings({"city": {"name": "X", "slug": "x"}, "ingest": {"earliest_date": "2999-01-01"}})
    with pytest.raises(ConfigError, match="unknown key 'ingest.max_file_size'"):
        parse_settings({"city": {"name": "X", "slug": "x"}, "ingest": {"max_file_size": 1}})
