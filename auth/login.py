"""The login procedure: lockout per account name and per client address, identical failures.

Every attempt costs one argon2 verification and one committed write (the attempt and its audit
record), whatever the reason it fails: unknown name, wrong password, disabled user, or a lock. So
neither the response nor its timing tells an attacker whether a name exists (OWASP Authentication
Cheat Sheet, "Authentication and error messages"). A lock lifts by itself once the failures that
caused it are older than ``lockout_window_s``; attempts made while locked do not extend it, so an
attacker cannot keep a colleague locked out for ever by guessing on their name.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from auth.sessions import new_token, token_digest
from store import queries_access as qa

if TYPE_CHECKING:
    from auth.service import AuthService

UNKNOWN_ACTOR = "(unknown user)"  # never log the typed name of an unknown user: it may be a password
# Sessions and attempts older than this are forgotten (longer than any configurable time-out or window).
PRUNE_AFTER_DAYS = 91


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    ok: bool
    token: str | None = None
    username: str | None = None
    role: str | None = None


def normalise_username(name: str) -> str:
    return (name or "").strip().lower()[:128]


def name_digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def attempt_login(svc: "AuthService", username: str, password: str, client_addr: str,
                  previous_token: str | None) -> LoginOutcome:
    cfg = svc.cfg
    now = svc.now()
    name = normalise_username(username)
    name_key = name_digest(name)
    since = now - timedelta(seconds=cfg.lockout_window_s)
    blocked = (qa.failures_since(svc.store, since, name_sha256=name_key) >= cfg.lockout_failures
               or qa.failures_since(svc.store, since, client_addr=client_addr) >= cfg.address_lockout_failures)
    user = qa.get_user(svc.store, name) if name else None
    password_ok = svc.passwords.verify(user.password_hash if user else None, password or "")
    ok = user is not None and password_ok and not user.disabled and not blocked
    reason = ("ok" if ok else "blocked" if blocked else "unknown_user" if user is None
              else "disabled" if user.disabled else "wrong_password")
    token = new_token() if ok else None
    rehash = svc.passwords.hash(password) if ok and svc.passwords.needs_rehash(user.password_hash) else None

    def job(con):
        qa.prune_sessions_in(con, now - timedelta(days=PRUNE_AFTER_DAYS))
        qa.insert_attempt_in(con, now, name_key, client_addr, "success" if ok else
                             "blocked" if blocked else "failure")
        if ok:
            if previous_token:  # session fixation: whatever id the browser had is ended, a new one issued
                qa.revoke_session_in(con, token_digest(previous_token), now, "rotated at login")
            qa.insert_session_in(con, token_digest(token), name, now, client_addr)
            if rehash:
                qa.set_password_in(con, name, rehash, now)
            qa.append_audit_in(con, name, "login", None, {"role": user.role, "addr": client_addr}, now)
        else:
            qa.append_audit_in(con, name if user else UNKNOWN_ACTOR, "login_failed", None,
                               {"reason": reason, "addr": client_addr}, now)
    qa.submit_audited(svc.store, job).result(timeout=30)
    if ok:
        return LoginOutcome(True, token, name, user.role)
    return LoginOutcome(False)


def logout(svc: "AuthService", token: str, username: str, client_addr: str | None) -> None:
    now = svc.now()

    def job(con):
        if qa.revoke_session_in(con, token_digest(token), now, "logout"):
            qa.append_audit_in(con, username, "logout", None, {"addr": client_addr}, now)
    qa.submit_audited(svc.store, job).result(timeout=30)
