"""API tokens: ``Authorization: Bearer <token>`` for machines calling the JSON API.

Made by ``python app.py tokens add NAME --role ROLE [--precinct ID]`` (shown once, stored as its
SHA-256), listed by ``tokens list``, revoked by ``tokens revoke NAME``; each change is audited. A
request with a token acts as ``token:NAME`` with the token's role and precincts; every request
made with a token is audited (``api_token_used``, through the audit buffer), and a revoked or
unknown token is answered 401 without looking further.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from auth.principal import ROLE_BY_NAME, Principal, principal_for
from store import Store
from store import queries_access as qa
from store import queries_tokens as qt

TOKEN_PREFIX = "pheoc_"  # lets secret scanners and people recognise a leaked pheoc token
TOKEN_BYTES = 32  # 256 bits from the OS CSPRNG, as session tokens
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# last_used_at is written at most this often per token: one write a minute, not one per request.
TOUCH_INTERVAL = timedelta(seconds=60)


class TokenError(ValueError):
    """A token could not be made or revoked; the message says why."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def actor_of(name: str) -> str:
    return f"token:{name}"


def create_token(store: Store, name: str, role: str, precincts: tuple[str, ...], created_by: str,
                 now: datetime | None = None) -> str:
    """Make a token and return it (the only time it is seen in clear)."""
    name = (name or "").strip().lower()
    if not NAME_PATTERN.match(name):
        raise TokenError("a token name is 1-64 lower-case letters, digits, '.', '_' or '-'")
    spec = ROLE_BY_NAME.get(role)
    if spec is None or role == "public":
        raise TokenError(f"no role {role!r} (roles: {', '.join(r for r in ROLE_BY_NAME if r != 'public')})")
    if precincts and not spec.bindable_to_precincts:
        raise TokenError("only police tokens may be bound to precincts")
    unknown = sorted(set(precincts) - qa.area_ids_of_kind(store, "precinct"))
    if unknown:
        raise TokenError(f"no precinct {unknown[0]!r}")
    if qt.token_by_name(store, name) is not None:
        raise TokenError(f"a token named {name!r} already exists (revoke it, or choose another name)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    now = now or datetime.now(timezone.utc)

    def job(con):
        qt.insert_token_in(con, name, digest(token), role, precincts, now, created_by)
        qa.append_audit_in(con, created_by, "token_added", actor_of(name), {"role": role, "precincts": list(precincts)},
                           now)
    qa.submit_audited(store, job).result(timeout=30)
    return token


def revoke_token(store: Store, name: str, revoked_by: str, now: datetime | None = None) -> bool:
    now = now or datetime.now(timezone.utc)

    def job(con) -> int:
        n = qt.revoke_token_in(con, name, now)
        if n:
            qa.append_audit_in(con, revoked_by, "token_revoked", actor_of(name), {}, now)
        return n
    return bool(qa.submit_audited(store, job).result(timeout=30))


@dataclass(frozen=True, slots=True)
class BearerResult:
    principal: Principal | None
    status: str  # ok | unknown | revoked | malformed
    name: str | None = None


def bearer_of(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1), or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class TokenResolver:
    """Turns a bearer token into the principal it acts as; notes use at most once a minute per token."""

    def __init__(self, store: Store):
        self._store = store
        self._touched: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def resolve(self, token: str, now: datetime | None = None) -> BearerResult:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return BearerResult(None, "malformed")
        record = qt.token_by_digest(self._store, digest(token))
        if record is None:
            return BearerResult(None, "unknown")
        if record.revoked_at is not None or record.role not in ROLE_BY_NAME:
            return BearerResult(None, "revoked", record.name)
        now = now or datetime.now(timezone.utc)
        with self._lock:
            due = now - self._touched.get(record.name, datetime.min.replace(tzinfo=timezone.utc)) >= TOUCH_INTERVAL
            if due:
                self._touched[record.name] = now
        if due:
            self._store.submit(lambda con: qt.touch_token_in(con, record.name, now))
        return BearerResult(principal_for(actor_of(record.name), record.role, record.precincts, via="token"), "ok",
                            record.name)
