"""Server-side sessions: a random token in an HttpOnly cookie, its SHA-256 and state in DuckDB.

A session ends when the user logs out, when an admin disables the user or resets the password, after
``idle_timeout_s`` without activity and after ``absolute_timeout_s`` in any case (per-role overrides
in ``auth.role_timeouts``). Each request re-reads the session and the user's current role, so a
revocation or a role change applies to the very next request. Automatic refreshes (Dash Interval
ticks) are not activity: a screen left alone is signed out by the idle time-out all the same.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.principal import ROLE_BY_NAME, Principal, principal_for, public_principal
from settings import AuthConfig
from store import Store
from store import queries_access as qa

COOKIE_NAME = "pheoc_session"
TOKEN_BYTES = 32  # 256 bits from the OS CSPRNG (OWASP session management: at least 64 bits of entropy)
# last_seen_at is written at most this often per session: one write a minute, not one per callback.
MAX_TOUCH_INTERVAL_S = 60


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolved:
    """The principal a request acts as, and what became of the session cookie it brought."""
    principal: Principal
    status: str  # none | ok | unknown | revoked | disabled | idle | expired
    token_sha256: str | None = None


class SessionManager:
    def __init__(self, store: Store, cfg: AuthConfig, now: Callable[[], datetime]):
        self._store, self._cfg, self._now = store, cfg, now
        self._touched: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def limits(self, role: str) -> tuple[int, int]:
        """(idle, absolute) time-outs in seconds for a role."""
        override = self._cfg.role_timeouts.get(role)
        if override is not None:
            return override.idle_timeout_s, override.absolute_timeout_s
        return self._cfg.idle_timeout_s, self._cfg.absolute_timeout_s

    def resolve(self, token: str | None, *, activity: bool) -> Resolved:
        if not token:
            return Resolved(public_principal(), "none")
        digest = token_digest(token)
        record = qa.get_session(self._store, digest)
        if record is None:
            return Resolved(public_principal(), "unknown")
        if record.revoked_at is not None:
            return Resolved(public_principal(), "revoked", digest)
        now = self._now()
        user = record.user
        idle_s, absolute_s = self.limits(user.role)
        ended = ("disabled" if user.disabled or user.role not in ROLE_BY_NAME else
                 "expired" if now - record.created_at > timedelta(seconds=absolute_s) else
                 "idle" if now - record.last_seen_at > timedelta(seconds=idle_s) else None)
        if ended:
            self._store.submit(lambda con: qa.revoke_session_in(con, digest, now, ended))
            return Resolved(public_principal(), ended, digest)
        if activity:
            self._touch(digest, record.last_seen_at, now, idle_s)
        return Resolved(principal_for(user.username, user.role, user.precincts), "ok", digest)

    def _touch(self, digest: str, last_seen: datetime, now: datetime, idle_s: int) -> None:
        every = timedelta(seconds=min(MAX_TOUCH_INTERVAL_S, idle_s / 10))
        with self._lock:
            last = max(last_seen, self._touched.get(digest, last_seen))
            if now - last < every:
                return
            self._touched[digest] = now
            if len(self._touched) > 10_000:
                self._touched.clear()
        self._store.submit(lambda con: qa.touch_session_in(con, digest, now))
