"""The login procedure: back-off per account name, a limit per client address, identical failures.

Every attempt costs one argon2 verification and one committed write (the attempt and its audit
record), whatever the reason it fails: unknown name, wrong password, disabled user, a wait or a
block. So neither the response nor its timing tells an attacker whether a name exists (OWASP
Authentication Cheat Sheet, "Authentication and error messages").

Per name there is no lock, only a wait: after ``lockout_failures`` failures within
``lockout_window_s`` the next attempt must come ``lockout_backoff_s`` after the latest failure, and
each further failure doubles that, up to ``lockout_backoff_max_s``. Attempts made during a wait are
refused without being verified as failures, so they do not lengthen it. A browser holding a valid
device cookie for the name (auth.devices: it signed in as that user before) does not wait at all,
so an attacker failing on a colleague's name cannot keep the colleague out (OWASP "Slow down
online guessing attacks with device cookies"). Per client address, ``address_lockout_failures``
failures within the window block the address until they age out; that limit applies to every
browser. Failures are counted from the latest successful sign-in on the name (or from the address),
as store.queries_access.failures_since counts them: a sign-in ends a run of failures.
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
    from settings import AuthConfig

UNKNOWN_ACTOR = "(unknown user)"  # never log the typed name of an unknown user: it may be a password
# Sessions and attempts older than this are forgotten (longer than any configurable time-out or window).
PRUNE_AFTER_DAYS = 91


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    ok: bool
    token: str | None = None
    username: str | None = None
    role: str | None = None
    device_cookie: str | None = None  # the browser's new device cookie after a success


def normalise_username(name: str) -> str:
    return (name or "").strip().lower()[:128]


def name_digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def backoff_s(cfg: "AuthConfig", failures: int) -> float:
    """How long after its latest failure a name's next attempt must wait, given its recent failures."""
    if failures < cfg.lockout_failures:
        return 0.0
    doublings = min(failures - cfg.lockout_failures, 30)  # 2**30 s is past any cap: no huge integers
    return float(min(cfg.lockout_backoff_max_s, cfg.lockout_backoff_s * 2 ** doublings))


def _name_must_wait(svc: "AuthService", name_key: str, now) -> bool:
    window_start = now - timedelta(seconds=svc.cfg.lockout_window_s)
    wait = backoff_s(svc.cfg, qa.failures_since(svc.store, window_start, name_sha256=name_key))
    # Both queries run for every attempt, waiting or not: the same work for every name.
    return qa.failures_since(svc.store, now - timedelta(seconds=wait), name_sha256=name_key) > 0 and wait > 0


def attempt_login(svc: "AuthService", username: str, password: str, client_addr: str,
                  previous_token: str | None, device_cookie: str | None = None) -> LoginOutcome:
    cfg = svc.cfg
    now = svc.now()
    name = normalise_username(username)
    name_key = name_digest(name)
    device = svc.devices.trusted(device_cookie, name_key, now)
    name_waits = _name_must_wait(svc, name_key, now) and device is None
    address_blocked = qa.failures_since(svc.store, now - timedelta(seconds=cfg.lockout_window_s),
                                        client_addr=client_addr) >= cfg.address_lockout_failures
    blocked = name_waits or address_blocked
    user = qa.get_user(svc.store, name) if name else None
    password_ok = svc.passwords.verify(user.password_hash if user else None, password or "")
    ok = user is not None and password_ok and not user.disabled and not blocked
    reason = ("ok" if ok else "address_blocked" if address_blocked else "backoff" if name_waits
              else "unknown_user" if user is None else "disabled" if user.disabled else "wrong_password")
    if device is not None and not ok and not blocked:
        svc.devices.failed(device, now)
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
        return LoginOutcome(True, token, name, user.role, svc.devices.issue(device_cookie, name_key, now))
    return LoginOutcome(False)


def logout(svc: "AuthService", token: str, username: str, client_addr: str | None) -> None:
    now = svc.now()

    def job(con):
        if qa.revoke_session_in(con, token_digest(token), now, "logout"):
            qa.append_audit_in(con, username, "logout", None, {"addr": client_addr}, now)
    qa.submit_audited(svc.store, job).result(timeout=30)
