"""Named queries of API tokens (store/schema_tokens.py). Writes are ``..._in`` functions for Store.submit."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from store.store import Store


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    role: str
    precincts: tuple[str, ...]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


_COLUMNS = "name, role, precincts, created_at, created_by, revoked_at, last_used_at"


def _record(row) -> TokenRecord:
    return TokenRecord(row[0], row[1], tuple(row[2] or ()), row[3], row[4], row[5], row[6])


def token_by_digest(store: Store, token_sha256: str) -> TokenRecord | None:
    rows = store.read_rows(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_sha256 = ?", [token_sha256])
    return _record(rows[0]) if rows else None


def token_by_name(store: Store, name: str) -> TokenRecord | None:
    rows = store.read_rows(f"SELECT {_COLUMNS} FROM api_tokens WHERE name = ?", [name])
    return _record(rows[0]) if rows else None


def list_tokens(store: Store) -> list[TokenRecord]:
    return [_record(r) for r in store.read_rows(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY name")]


def insert_token_in(con, name: str, token_sha256: str, role: str, precincts: Iterable[str], now: datetime,
                    created_by: str) -> None:
    con.execute("INSERT INTO api_tokens (name, token_sha256, role, precincts, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?)", [name, token_sha256, role, list(precincts), now, created_by])


def revoke_token_in(con, name: str, now: datetime) -> int:
    rows = con.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING 1",
                       [now, name]).fetchall()
    return len(rows)


def touch_token_in(con, name: str, now: datetime) -> None:
    con.execute("UPDATE api_tokens SET last_used_at = greatest(coalesce(last_used_at, ?), ?) WHERE name = ?",
                [now, now, name])
