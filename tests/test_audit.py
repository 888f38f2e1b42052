"""The audit trail: what the app records, one chain from many threads, and `audit verify` against tampering.

Tampering is done the way an intruder with the file would: opening the DuckDB file directly,
after the app has closed it, and editing rows (some cases recompute hashes like a careful forger).
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timezone

import duckdb
import pytest

from tests.auth_helpers import FAST_AUTH, TEST_PASSWORD, sign_in_client
from tests.conftest import ROOT

DENIED_CALLBACK = {
    "output": "..rejected-by-reason.children...rejected-latest.children..",
    "outputs": [{"id": "rejected-by-reason", "property": "children"}, {"id": "rejected-latest", "property": "children"}],
    "inputs": [{"id": "rejected-refresh", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["rejected-refresh.n_intervals"], "state": []}


@pytest.fixture
def chain(settings_factory):
    """A database whose audit log holds a morning's worth of real events, closed again; returns (settings, cfg)."""
    from app import create_app
    from auth.users import add_user, set_disabled
    from store import Store

    settings = settings_factory(auth=FAST_AUTH)
    with Store(settings.path(settings.store.path)) as store:
        app = create_app(settings, store)
        svc = app.server.extensions["pheoc.auth"]
        add_user(store, svc.passwords, "ana", "analyst", TEST_PASSWORD, actor="cli:root")
        add_user(store, svc.passwords, "exec", "executive", TEST_PASSWORD, actor="cli:root")
        client = app.server.test_client()
        assert b"Sign-in failed" in sign_in_client(client, "ana", "not my password").get_data()
        assert sign_in_client(client, "ana").status_code == 303
        assert client.post("/_dash-update-component", json=DENIED_CALLBACK).status_code == 403
        assert client.get("/logout").status_code == 200
        boss = app.server.test_client()
        sign_in_client(boss, "exec")
        assert boss.get("/rejected").status_code == 403
        set_disabled(store, "exec", True, actor="cli:root")
        store.flush()
    return settings, str(settings.base_dir / "config.yaml")


def _rows(con):
    return con.execute("SELECT seq, logged_at, actor, action, target, detail, prev_hash, hash FROM audit_log "
                       "ORDER BY seq").fetchall()


def _rewrite(con, rows):
    con.execute("DELETE FROM audit_log")
    con.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _forge(seq, prev_hash, actor="intruder", action="login", detail='{"nonce":"00"}'):
    """A record built exactly as pheoc builds one: the chain alone cannot tell it from a real one."""
    from store import queries_access as qa
    at = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
    h = qa.audit_hash(prev_hash, qa.canonical_audit_record(seq, at, actor, action, qa.audit_content_digest(None, detail)))
    return (seq, at, actor, action, None, detail, prev_hash, h)


def _rechain(rows, start):
    """Recompute every hash from index ``start`` on, as a careful forger would."""
    from store import queries_access as qa
    from store.queries_access import AuditRow
    out = list(rows[:start])
    prev = out[-1][7] if out else qa.AUDIT_GENESIS
    for r in rows[start:]:
        fixed = AuditRow(*r[:6], prev, "")
        out.append((*r[:6], prev, qa.expected_hash(fixed)))
        prev = out[-1][7]
    return out


def alter_detail(con):
    con.execute("UPDATE audit_log SET detail = replace(detail, 'wrong_password', 'ok') WHERE action = 'login_failed'")


def alter_actor(con):
    con.execute("UPDATE audit_log SET actor = 'someone-else' WHERE action = 'policy_denied'")


def remove_middle(con):
    con.execute("DELETE FROM audit_log WHERE seq = 3")


def remove_last(con):
    con.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")


def insert_middle(con):
    rows = _rows(con)
    forged = _forge(3, rows[1][7])
    _rewrite(con, rows[:2] + [forged] + [(r[0] + 1, *r[1:]) for r in rows[2:]])


def append_forged(con):
    rows = _rows(con)
    con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _forge(rows[-1][0] + 1, rows[-1][7]))


def rewrite_from_the_middle(con):
    rows = _rows(con)
    rows[2] = (*rows[2][:5], rows[2][5].replace("wrong_password", "ok"), *rows[2][6:])
    _rewrite(con, _rechain(rows, 2))


def fake_redaction(con):
    from store import queries_access as qa
    seq, target, detail = con.execute("SELECT seq, target, detail FROM audit_log WHERE action = 'policy_denied' "
                                      "LIMIT 1").fetchone()
    mark = json.dumps({"redacted": "erasure", "content": qa.audit_content_digest(target, detail)})
    con.execute("UPDATE audit_log SET target = '[erased]', detail = ? WHERE seq = ?", [mark, seq])


TAMPERING = {
    "altered detail": (alter_detail, "does not match its hash"),
    "altered actor": (alter_actor, "does not match its hash"),
    "removed record": (remove_middle, "expected sequence number 3"),
    "removed last record": (remove_last, "ends before the anchored head"),
    "inserted record": (insert_middle, "does not follow the record before it"),
    "forged record appended": (append_forged, "appended after the anchored head"),
    "chain rewritten by a forger": (rewrite_from_the_middle, "differs from the anchored head"),
    "record blanked as if erased": (fake_redaction, "redacted without an erasure record"),
}


def test_the_log_records_logins_failures_denials_logouts_and_admin_changes(chain):
    from auth.audit import verify_audit
    from store import Store
    from store import queries_access as qa
    settings, _ = chain
    with Store(settings.path(settings.store.path)) as store:
        rows = qa.audit_rows(store)
        report = verify_audit(store)
    assert report.ok and report.records == len(rows) and report.anchor == report.head
    events = [(r.actor, r.action, r.target) for r in rows]
    assert ("cli:root", "user_added", "user:ana") in events
    assert ("ana", "login_failed", None) in events and ("ana", "login", None) in events
    assert ("ana", "policy_denied", "view_quarantine") in events and ("ana", "logout", None) in events
    assert ("exec", "policy_denied", "page:/rejected") in events
    assert ("cli:root", "user_disabled", "user:exec") in events
    failed = next(r for r in rows if r.action == "login_failed")
    assert json.loads(failed.detail)["reason"] == "wrong_password" and TEST_PASSWORD not in failed.detail


def test_verify_passes_on_an_untouched_log(chain, capsys):
    from app import main
    _, cfg = chain
    assert main(["audit", "verify", "--config", cfg]) == 0
    assert "audit log OK" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(TAMPERING))
def test_verify_detects_tampering(chain, capsys, name):
    from app import main
    settings, cfg = chain
    tamper, expected = TAMPERING[name]
    con = duckdb.connect(str(settings.path(settings.store.path)))
    try:
        tamper(con)
    finally:
        con.close()
    assert main(["audit", "verify", "--config", cfg]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and expected in err, err


@pytest.mark.slow
def test_audit_verify_command_in_its_own_process(chain):
    settings, cfg = chain

    def verify():
        return subprocess.run([sys.executable, str(ROOT / "app.py"), "audit", "verify", "--config", cfg],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    ok = verify()
    assert ok.returncode == 0, ok.stderr
    con = duckdb.connect(str(settings.path(settings.store.path)))
    alter_detail(con)
    con.close()
    bad = verify()
    assert bad.returncode == 1 and "altered" in bad.stderr


def test_one_chain_from_many_threads(settings_factory):
    """Every writer goes through the store's single writer thread, so concurrent appends never fork the chain."""
    from auth.audit import verify_audit
    from store import Store
    from store import queries_access as qa
    settings = settings_factory()
    with Store(settings.path(settings.store.path)) as store:
        def worker(i):
            futures = [qa.submit_audit(store, f"user{i}", "data_access", f"cell:{j}", {"n": j}) for j in range(25)]
            for f in futures:
                f.result()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = verify_audit(store)
        assert report.ok, report.problems
        assert [r.seq for r in qa.audit_rows(store)] == list(range(1, 201))


def test_erasure_redaction_keeps_the_chain_verifiable():
    from auth.audit import verify_chain
    from store import queries_access as qa
    from store.queries_access import AuditRow

    rows: list[AuditRow] = []

    def append(actor, action, target, detail):
        prev = rows[-1].hash if rows else qa.AUDIT_GENESIS
        at = datetime(2026, 11, 24, 9, len(rows), tzinfo=timezone.utc)
        text = qa.encode_detail(detail)
        h = qa.audit_hash(prev, qa.canonical_audit_record(len(rows) + 1, at, actor, action,
                                                          qa.audit_content_digest(target, text)))
        rows.append(AuditRow(len(rows) + 1, at, actor, action, target, text, prev, h))
    append("dm", "data_access", "case:DC-000042", {"level": "points"})
    append("dm", "export", "cases", {"purpose": "contact tracing", "ids": ["DC-000042", "DC-000043"]})
    append("ana", "login", None, {})
    redacted = []
    for i, r in enumerate(rows):
        if "DC-000042" in (r.target or "") + (r.detail or ""):
            mark = json.dumps({"redacted": "erasure", "content": qa.audit_content_digest(r.target, r.detail)})
            rows[i] = AuditRow(r.seq, r.logged_at, r.actor, r.action, "[erased]", mark, r.prev_hash, r.hash)
            redacted.append(r.seq)
    assert not verify_chain(rows, None).ok  # a redaction no erasure record accounts for
    append("cli:root", "erasure", "case:0f0f", {"redacted_seqs": redacted})
    report = verify_chain(rows, (rows[-1].seq, rows[-1].hash))
    assert report.ok, report.problems
    assert report.redacted == (1, 2) and not any("DC-000042" in (r.detail or "") for r in rows)
