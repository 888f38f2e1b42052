"""`python app.py erase case ID`: afterwards a byte search of every file on disk finds the id nowhere.

The site is a copy of the demo city (database, inbox/processed) plus what real operation adds:
a quarantined correction and an unreadable file holding the id, an export, audit records of who
viewed it, and an alert that mentions it. Everything else must survive, and the audit chain must
still verify with the erasure recorded under a salted hash only.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.auth_helpers import FAST_AUTH
from tests.conftest import ROOT, write_config


def _files_containing(folder, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes())


def _db_mentions(db, identifier: str) -> list[str]:
    """Every table.column whose text (or blob) holds the id, by a full scan."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        hits = []
        columns = con.execute("SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
                              "JOIN information_schema.tables t USING (table_schema, table_name) "
                              "WHERE t.table_type = 'BASE TABLE'").fetchall()
        for table, column, dtype in columns:
            if dtype in ("VARCHAR", "BLOB") or dtype.endswith("[]") or dtype.startswith(("STRUCT", "MAP")):
                n = con.execute(f'SELECT count(*) FROM "{table}" WHERE contains(CAST("{column}" AS VARCHAR), ?)',
                                [identifier]).fetchone()[0]
                if n:
                    hits.append(f"{table}.{column}")
        return hits
    finally:
        con.close()


def _app(*args, cfg):
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args, "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def site(demo_city, tmp_path):
    """A copy of the demo city's files, with the traces a real week leaves of one case; returns (cfg, db, id)."""
    from ingest.context import ContextProvider
    from ingest.files import FileIngestor
    from settings import load_settings
    from store import Store
    from store import queries_access as qa

    dsettings, _ = demo_city
    folder = tmp_path / "site"
    shutil.copytree(dsettings.path(dsettings.store.path).parent, folder)
    db = folder / "pheoc-demo.duckdb"
    cfg = write_config(folder, store={"path": str(db)}, ingest={"inbox": str(folder / "inbox")},
                       auth={**FAST_AUTH, "erase_also": [str(folder / "exports")]})
    settings = load_settings(cfg)
    with Store(db) as store:
        case_id, reported, lat, lng = store.read_rows(
            "SELECT c.case_id, c.reported_date, c.lat, c.lng FROM cases c JOIN admissions a USING (case_id) "
            "ORDER BY c.case_id LIMIT 1")[0]
        inbox = folder / "inbox"
        (inbox / "cases-correction.csv").write_text(
            f"case_id,reported_date,lat,lng,status\n{case_id},{reported},{lat},{lng},not-a-status\n"
            f"LATE-000001,{reported},{lat},{lng},confirmed\n")
        (inbox / "cases-garbled.csv").write_bytes(b"case_id,status\n" + case_id.encode() + b",\xff\xfe\n")
        (inbox / "cases-feed.ndjson").write_text(
            json.dumps({"case_id": case_id, "reported_date": str(reported), "status": "bogus"}) + "\n")
        FileIngestor(store, ContextProvider(store, settings)).ingest_inbox(inbox)
        qa.submit_audit(store, "demo-data-manager", "data_access", f"case:{case_id}", {"level": "points"}).result()
        qa.submit_audit(store, "demo-data-manager", "export", "cases", {"purpose": "contact tracing",
                                                                        "ids": [case_id, "DC-999999"]}).result()
        store.write("INSERT INTO alerts (raised_at, severity, kind, title, detail) VALUES "
                    "(now(), 'warning', 'cluster', 'Cluster C-1', ?)", [f"index case {case_id}; 3 contacts"])
        counts = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in ("cases", "admissions", "quarantine")}
        own_admissions = store.scalar("SELECT count(*) FROM admissions WHERE case_id = ?", [case_id])
    exports = folder / "exports"
    exports.mkdir()
    (exports / "cases-2026-11-24.csv").write_text(f"case_id,area\n{case_id},C01\nDC-999999,C02\n")
    return cfg, db, case_id, counts, own_admissions


@pytest.mark.slow
def test_erased_case_is_found_nowhere_on_disk(site, capsys):
    from app import main
    cfg, db, case_id, before, own_admissions = site
    folder = cfg.parent
    needle = case_id.encode()
    found_before = _files_containing(folder, needle)
    assert db.name in found_before, "the test must start with the id in the database file"
    assert {"inbox/processed/cases.csv", "inbox/processed/cases-correction.csv", "inbox/processed/cases-feed.ndjson",
            "inbox/rejected/cases-garbled.csv", "exports/cases-2026-11-24.csv"} <= set(found_before)
    assert {"cases.case_id", "admissions.case_id", "quarantine.raw_payload", "audit_log.target",
            "alerts.detail"} <= set(_db_mentions(db, case_id))

    result = _app("erase", "case", case_id, "--yes", cfg=cfg)
    assert result.returncode == 0, result.stdout + result.stderr

    assert _files_containing(folder, needle) == [], "the id's bytes are still on disk"
    assert not list(folder.rglob("*.wal"))
    assert _db_mentions(db, case_id) == []
    salt = re.search(r"salt = ([0-9a-f]{32})", result.stdout).group(1)
    digest = hashlib.sha256((salt + case_id).encode()).hexdigest()
    con = duckdb.connect(str(db), read_only=True)
    try:
        after = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
        erasure = con.execute("SELECT target, detail FROM audit_log WHERE action = 'erasure'").fetchone()
        alert = con.execute("SELECT detail FROM alerts WHERE title = 'Cluster C-1'").fetchone()[0]
        late = con.execute("SELECT count(*) FROM cases WHERE case_id = 'LATE-000001'").fetchone()[0]
    finally:
        con.close()
    assert after["cases"] == before["cases"] - 1 and late == 1  # only that case went
    assert after["admissions"] == before["admissions"] - own_admissions
    assert after["quarantine"] == before["quarantine"] - 3  # the bad correction, the NDJSON line, the garbled file
    assert alert == "index case [erased]; 3 contacts"
    assert erasure[0] == f"case:{digest}" and len(json.loads(erasure[1])["redacted_seqs"]) == 2
    processed = (folder / "inbox" / "processed" / "cases.csv").read_text()
    assert processed.startswith("case_id,") and processed.count("\n") > 10  # the other cases' lines stay
    assert "DC-999999" in (folder / "exports" / "cases-2026-11-24.csv").read_text()
    capsys.readouterr()
    assert main(["audit", "verify", "--config", str(cfg)]) == 0, capsys.readouterr().err


@pytest.mark.slow
def test_erasure_refuses_while_another_process_holds_the_database(site):
    from store import Store
    cfg, db, case_id, *_ = site
    with Store(db):
        result = _app("erase", "case", case_id, "--yes", cfg=cfg)
    assert result.returncode != 0 and "stop it first" in (result.stdout + result.stderr)


@pytest.mark.parametrize("name, data, expected", [
    ("cases.csv", b"case_id,x\nDC-1,a\nDC-12,b\n", b"case_id,x\nDC-12,b\n"),
    ("cases.ndjson", b'{"case_id":"DC-1"}\n{"case_id":"DC-2"}\n', b'{"case_id":"DC-2"}\n'),
    ("cases.json", b'{"records":[{"case_id":"DC-1"},{"case_id":"DC-2"}]}', b'{"records":[{"case_id":"DC-2"}]}'),
    ("cases.json", b'[{"case_id":"DC-1"}]', b"[]"),
    ("cases-broken.csv", b"keep DC-12\n\xffDC-1,\xfe\n", b"keep DC-12\n"),
    ("notes.json", b'{"note": "DC-1 called"}', b""),
    ("cases.csv", b"case_id,x\nDC-2,a\n", b"case_id,x\nDC-2,a\n"),
])
def test_landed_files_lose_only_the_records_that_hold_the_id(name, data, expected):
    from auth.erasure import scrub_bytes
    assert scrub_bytes(data, name, "DC-1") == expected
