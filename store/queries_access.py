"""Named queries of the access feature: users, sessions, login attempts, the audit chain, erasure.

Reads take the Store and run on the caller's cursor. Writes are functions of a connection (``..._in``)
meant to run inside a Store.submit job, so several of them commit together (a login writes the
attempt, the session and the audit record in one transaction).

Audit chain (tamper evidence, ISO/IEC 5153-1 §10; the construction of a hash chain as in
Schneier & Kelsey, "Secure audit logs to support computer forensics", 1999):

    content  = sha256(json([target, detail]))
    record   = canonical JSON of {seq, logged_at (UTC, µs), actor, action, content}
    hash_n   = sha256(hash_{n-1} + record_n),  hash_0 = 64 zeros

Hashing the *content digest* rather than target/detail themselves lets an erasure redact personal
identifiers from old records without breaking the chain: the redacted record keeps the digest
(``{"redacted": "erasure", "content": ...}``), and every detail carries a random nonce so that the
kept digest cannot be confirmed by guessing the identifier. The head of the chain is also written
to a small anchor file beside the database, so cutting records off the end is detected too.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from store.store import Store

T = TypeVar("T")
AUDIT_GENESIS = "0" * 64
REDACTED_MARK = "erasure"
ERASED_TEXT = "[erased]"


# ---- users -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    display_name: str | None
    role: str
    password_hash: str
    disabled: bool
    precincts: tuple[str, ...] = ()


_USER_COLUMNS = "username, display_name, role, password_hash, disabled"


def _precincts(store: Store, username: str) -> tuple[str, ...]:
    return tuple(r[0] for r in store.read_rows(
        "SELECT area_id FROM user_bindings WHERE username = ? AND area_kind = 'precinct' ORDER BY area_id",
        [username]))


def get_user(store: Store, username: str) -> UserRecord | None:
    rows = store.read_rows(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", [username])
    if not rows:
        return None
    r = rows[0]
    return UserRecord(r[0], r[1], r[2], r[3], bool(r[4]), _precincts(store, r[0]))


def list_users(store: Store) -> list[UserRecord]:
    return [UserRecord(r[0], r[1], r[2], r[3], bool(r[4]), _precincts(store, r[0]))
            for r in store.read_rows(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")]


def user_count(store: Store) -> int:
    return int(store.scalar("SELECT count(*) FROM users"))


def user_exists_in(con, username: str) -> bool:
    return con.execute("SELECT count(*) FROM users WHERE username = ?", [username]).fetchone()[0] > 0


def insert_user_in(con, username: str, role: str, password_hash: str, now: datetime,
                   display_name: str | None = None, precincts: Iterable[str] = ()) -> None:
    con.execute("INSERT INTO users (username, display_name, role, password_hash, disabled, created_at, updated_at,"
                " password_changed_at) VALUES (?, ?, ?, ?, FALSE, ?, ?, ?)",
                [username, display_name, role, password_hash, now, now, now])
    for area_id in precincts:
        con.execute("INSERT INTO user_bindings VALUES (?, 'precinct', ?) ON CONFLICT DO NOTHING", [username, area_id])


def set_password_in(con, username: str, password_hash: str, now: datetime) -> None:
    con.execute("UPDATE users SET password_hash = ?, updated_at = ?, password_changed_at = ? WHERE username = ?",
                [password_hash, now, now, username])


def set_disabled_in(con, username: str, disabled: bool, now: datetime) -> None:
    con.execute("UPDATE users SET disabled = ?, updated_at = ? WHERE username = ?", [disabled, now, username])


def area_ids_of_kind(store: Store, kind: str) -> set[str]:
    return {r[0] for r in store.read_rows("SELECT area_id FROM areas WHERE kind = ?", [kind])}


# ---- sessions ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_sha256: str
    username: str
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    user: UserRecord


def get_session(store: Store, token_sha256: str) -> SessionRecord | None:
    """The session and its user as they are now (role, disabled flag, bindings read live)."""
    # Microseconds since the epoch: far cheaper to hand to Python than TIMESTAMPTZ (runs on every request).
    rows = store.read_rows("SELECT username, epoch_us(created_at), epoch_us(last_seen_at), epoch_us(revoked_at) "
                           "FROM sessions WHERE token_sha256 = ?", [token_sha256])
    user = get_user(store, rows[0][0]) if rows else None
    if user is None:
        return None
    username, created, seen, revoked = rows[0]
    return SessionRecord(token_sha256, username, _from_us(created), _from_us(seen),
                         None if revoked is None else _from_us(revoked), user)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def insert_session_in(con, token_sha256: str, username: str, now: datetime, client_addr: str | None) -> None:
    con.execute("INSERT INTO sessions (token_sha256, username, created_at, last_seen_at, client_addr) "
                "VALUES (?, ?, ?, ?, ?)", [token_sha256, username, now, now, client_addr])


def touch_session_in(con, token_sha256: str, now: datetime) -> None:
    con.execute("UPDATE sessions SET last_seen_at = greatest(last_seen_at, ?) WHERE token_sha256 = ? "
                "AND revoked_at IS NULL", [now, token_sha256])


def revoke_session_in(con, token_sha256: str, now: datetime, reason: str) -> int:
    return _count(con.execute("UPDATE sessions SET revoked_at = ?, revoked_reason = ? "
                              "WHERE token_sha256 = ? AND revoked_at IS NULL", [now, reason, token_sha256]))


def revoke_user_sessions_in(con, username: str, now: datetime, reason: str) -> int:
    return _count(con.execute("UPDATE sessions SET revoked_at = ?, revoked_reason = ? "
                              "WHERE username = ? AND revoked_at IS NULL", [now, reason, username]))


def prune_sessions_in(con, before: datetime) -> None:
    """Forget sessions that ended (or went unused) before ``before``, and login attempts as old.

    Their logins and logouts stay in the audit log; nothing this old can still count towards a lock
    (lockout windows are at most 7 days) or be a live session (idle time-outs are at most 90 days).
    """
    con.execute("DELETE FROM sessions WHERE coalesce(revoked_at, last_seen_at) < ?", [before])
    con.execute("DELETE FROM login_attempts WHERE attempted_at < ?", [before])


def active_sessions(store: Store, username: str) -> int:
    return int(store.scalar("SELECT count(*) FROM sessions WHERE username = ? AND revoked_at IS NULL", [username]))


# ---- login attempts ----------------------------------------------------------------------------
def insert_attempt_in(con, now: datetime, name_sha256: str, client_addr: str, outcome: str) -> None:
    con.execute("INSERT INTO login_attempts VALUES (?, ?, ?, ?)", [now, name_sha256, client_addr, outcome])


def failures_since(store: Store, since: datetime, *, name_sha256: str | None = None,
                   client_addr: str | None = None) -> int:
    """Failed logins after ``since`` and after the last success, for one name or one client address."""
    column, value = ("name_sha256", name_sha256) if name_sha256 is not None else ("client_addr", client_addr)
    return int(store.scalar(
        f"""SELECT count(*) FROM login_attempts
            WHERE {column} = ? AND outcome = 'failure' AND attempted_at > ?
              AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                           WHERE {column} = ? AND outcome = 'success'), '-infinity'::TIMESTAMPTZ)""",
        [value, since, value]))


# ---- audit chain -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    logged_at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None
    prev_hash: str
    hash: str


def utc_iso(ts: datetime) -> str:
    """Microsecond UTC text of a timestamp: what DuckDB's TIMESTAMPTZ keeps, so it survives the round trip."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_content_digest(target: str | None, detail: str | None) -> str:
    return hashlib.sha256(json.dumps([target, detail], ensure_ascii=True, separators=(",", ":")).encode()).hexdigest()


def redaction_digest(detail: str | None) -> str | None:
    """The content digest a redacted record kept, or None if the record is not redacted."""
    if not detail or not detail.startswith("{"):
        return None
    try:
        doc = json.loads(detail)
    except ValueError:
        return None
    if isinstance(doc, dict) and set(doc) == {"redacted", "content"} and doc["redacted"] == REDACTED_MARK:
        return str(doc["content"])
    return None


def canonical_audit_record(seq: int, logged_at: datetime, actor: str, action: str, content: str) -> str:
    return json.dumps({"seq": seq, "logged_at": utc_iso(logged_at), "actor": actor, "action": action,
                       "content": content}, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def audit_hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def expected_hash(row: AuditRow) -> str:
    """The hash a stored row should carry given its prev_hash (redacted rows use their kept digest)."""
    content = redaction_digest(row.detail) or audit_content_digest(row.target, row.detail)
    return audit_hash(row.prev_hash, canonical_audit_record(row.seq, row.logged_at, row.actor, row.action, content))


def encode_detail(detail: dict[str, Any] | None) -> str:
    """Detail as canonical JSON with a random nonce (so a redacted record's digest cannot be guessed)."""
    body = dict(detail or {})
    body["nonce"] = secrets.token_hex(8)
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def append_audit_in(con, actor: str, action: str, target: str | None, detail: dict[str, Any] | None,
                    now: datetime | None = None) -> tuple[int, str]:
    """Append one chained record inside the current writer transaction; returns (seq, hash)."""
    now = now or datetime.now(timezone.utc)
    head = con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, AUDIT_GENESIS)
    # Stored and hashed at the same precision (µs), whatever precision the clock gave.
    logged_at = now.astimezone(timezone.utc)
    text = encode_detail(detail)
    digest = audit_content_digest(target, text)
    h = audit_hash(prev, canonical_audit_record(seq, logged_at, actor, action, digest))
    con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, logged_at, actor, action, target, text, prev, h])
    return seq, h


def audit_rows(store: Store) -> list[AuditRow]:
    return [AuditRow(*r) for r in store.read_rows(
        "SELECT seq, logged_at, actor, action, target, detail, prev_hash, hash FROM audit_log ORDER BY seq")]


def audit_tail(store: Store, limit: int = 50, action: str | None = None) -> list[AuditRow]:
    where, params = ("WHERE action = ?", [action]) if action else ("", [])
    return [AuditRow(*r) for r in store.read_rows(
        f"SELECT seq, logged_at, actor, action, target, detail, prev_hash, hash FROM audit_log {where} "
        "ORDER BY seq DESC LIMIT ?", [*params, limit])]


def audit_head(store: Store) -> tuple[int, str] | None:
    rows = store.read_rows("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return (int(rows[0][0]), rows[0][1]) if rows else None


def audit_anchor_path(db_path: Path) -> Path:
    return Path(db_path).with_name(Path(db_path).name + ".audit-head")


_anchor_lock = threading.Lock()
_anchor_written: dict[Path, int] = {}


def write_anchor(store: Store) -> None:
    """Record the chain's head beside the database (never moving it backwards)."""
    head = audit_head(store)
    if head is None:
        return
    path = audit_anchor_path(store.path)
    with _anchor_lock:
        if _anchor_written.get(path, 0) >= head[0] and path.exists():
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"seq": head[0], "hash": head[1]}), encoding="utf-8")
        os.replace(tmp, path)
        _anchor_written[path] = head[0]


def read_anchor(db_path: Path) -> tuple[int, str] | None:
    path = audit_anchor_path(db_path)
    if not path.exists():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return int(doc["seq"]), str(doc["hash"])


def submit_audited(store: Store, job: Callable[[Any], T]) -> "Future[T]":
    """Store.submit for a job that appends audit records: the anchor follows each commit.

    The returned future completes once the anchor is written too, so whoever waits for the record
    also finds the anchor current.
    """
    done: Future = Future()

    def after(f: Future) -> None:
        if f.cancelled() or f.exception() is not None:
            done.set_exception(f.exception() or RuntimeError("audit job cancelled"))
            return
        try:
            write_anchor(store)
        except Exception:  # the anchor is a second line of defence; the chain itself is committed
            pass
        done.set_result(f.result())
    store.submit(job).add_done_callback(after)
    return done


def submit_audit(store: Store, actor: str, action: str, target: str | None = None,
                 detail: dict[str, Any] | None = None) -> "Future[tuple[int, str]]":
    """Append one audit record through the store's single writer (one chain, one writer)."""
    return submit_audited(store, lambda con: append_audit_in(con, actor, action, target, detail))


# ---- erasure -----------------------------------------------------------------------------------
def _count(cursor) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def blob_text(value: str) -> str:
    """How DuckDB spells a string's UTF-8 bytes when a BLOB is cast to VARCHAR (for substring search)."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02X}" for b in value.encode())


# An identifier is matched as a whole token: erasing "DC-1" must not touch "DC-12". In a BLOB cast
# to VARCHAR a non-ASCII byte before the id reads "\xFF", which also counts as a boundary.
_BEFORE = r"(^|[^A-Za-z0-9_-]|\\x[0-9A-F]{2})"
_AFTER = r"([^A-Za-z0-9_-]|$)"


def token_regex(identifier: str) -> str:
    """An RE2 pattern (DuckDB's regexp_*) for the identifier as a whole token."""
    return _BEFORE + re.escape(identifier) + _AFTER


def erase_identifier_in(con, identifier: str, now: datetime) -> dict[str, int]:
    """Remove a case and every trace of its identifier from every table except the audit log.

    Rows that belong to the case (cases, admissions, quarantined records, any row whose column *is*
    the identifier) are deleted; free text that merely mentions it is rewritten to "[erased]".
    Returns rows changed per table.
    """
    changed: dict[str, int] = {}

    def add(table: str, n: int) -> None:
        if n:
            changed[table] = changed.get(table, 0) + n

    add("cases", _count(con.execute("DELETE FROM cases WHERE case_id = ?", [identifier])))
    add("admissions", _count(con.execute("DELETE FROM admissions WHERE case_id = ?", [identifier])))
    columns = con.execute(
        """SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE' AND c.table_name <> 'audit_log'
           ORDER BY c.table_name, c.ordinal_position""").fetchall()
    text_token, blob_token = token_regex(identifier), token_regex(blob_text(identifier))
    for table, column, dtype in columns:
        t, c = f'"{table}"', f'"{column}"'
        if dtype == "VARCHAR":
            add(table, _count(con.execute(f"DELETE FROM {t} WHERE {c} = ?", [identifier])))
            # A quarantined record is personal data as a whole; elsewhere only the mention goes.
            if table == "quarantine":
                add(table, _count(con.execute(f"DELETE FROM {t} WHERE regexp_matches({c}, ?)", [text_token])))
                continue
            for _ in range(3):  # adjacent mentions share a boundary character: repeat until none is left
                n = _count(con.execute(f"UPDATE {t} SET {c} = regexp_replace({c}, ?, ?, 'g') "
                                       f"WHERE regexp_matches({c}, ?)",
                                       [text_token, "\\1" + ERASED_TEXT + "\\2", text_token]))
                add(table, n)
                if not n:
                    break
        elif dtype == "BLOB":
            add(table, _count(con.execute(f"DELETE FROM {t} WHERE regexp_matches(CAST({c} AS VARCHAR), ?)",
                                          [blob_token])))
        elif dtype == "VARCHAR[]":
            add(table, _count(con.execute(
                f"UPDATE {t} SET {c} = list_filter({c}, lambda x: x IS DISTINCT FROM ?) WHERE list_contains({c}, ?)",
                [identifier, identifier])))
            add(table, _count(con.execute(
                f"DELETE FROM {t} WHERE regexp_matches(CAST({c} AS VARCHAR), ?)", [text_token])))
        elif not dtype.startswith(("BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "SMALLINT",
                                   "TINYINT", "HUGEINT", "FLOAT", "DECIMAL", "UBIGINT", "UINTEGER", "TIME")):
            # Nested or unusual types (STRUCT, MAP, JSON...): no safe partial edit, so the row goes.
            add(table, _count(con.execute(f"DELETE FROM {t} WHERE regexp_matches(CAST({c} AS VARCHAR), ?)",
                                          [text_token])))
    return changed


def redact_audit_in(con, identifier: str) -> list[int]:
    """Replace audit records that mention the identifier by redaction marks that keep their digest."""
    token = token_regex(identifier)
    rows = con.execute("SELECT seq, actor, target, detail FROM audit_log WHERE regexp_matches(coalesce(target, ''), ?)"
                       " OR regexp_matches(coalesce(detail, ''), ?) ORDER BY seq", [token, token]).fetchall()
    seqs = []
    for seq, actor, target, detail in rows:
        kept = redaction_digest(detail) or audit_content_digest(target, detail)
        mark = json.dumps({"redacted": REDACTED_MARK, "content": kept}, sort_keys=True, separators=(",", ":"))
        # The actor is part of the hashed record; a case id never is an actor, so it is left alone.
        con.execute("UPDATE audit_log SET target = ?, detail = ? WHERE seq = ?", [ERASED_TEXT, mark, seq])
        seqs.append(int(seq))
    return seqs


def compact_database(path: Path) -> None:
    """Rewrite the database into a fresh file (no free blocks holding deleted rows), swap it in, drop the WAL.

    Must run with no other connection open on ``path`` (the CLI runs it with the server stopped).
    """
    path = Path(path)
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        name = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"ATTACH '{_sql_text(fresh)}' AS compacted")
        con.execute(f'COPY FROM DATABASE "{name}" TO compacted')
        con.execute("DETACH compacted")
    finally:
        con.close()
    os.replace(fresh, path)
    for wal in (path.with_name(path.name + ".wal"), fresh.with_name(fresh.name + ".wal")):
        wal.unlink(missing_ok=True)


def _sql_text(p: Path) -> str:
    return str(p).replace("'", "''")
