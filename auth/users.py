"""User administration: add, disable/enable, reset a password, and the first admin at set-up.

Each change and its audit record commit in one transaction; disabling a user or resetting a
password also ends the user's sessions at once (they are re-checked on every request).
"""
from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timezone

from auth.passwords import Passwords, check_new_password
from auth.principal import ROLE_BY_NAME
from settings import Settings
from store import Store
from store import queries_access as qa

log = logging.getLogger(__name__)
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


class UserError(ValueError):
    """A user change that cannot be made; the message says why."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def valid_username(name: str) -> str:
    name = (name or "").strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise UserError(f"user name {name!r}: 2-64 characters, lower-case letters, digits and . _ @ -")
    return name


def add_user(store: Store, passwords: Passwords, username: str, role: str, password: str, *, actor: str,
             display_name: str | None = None, precincts: tuple[str, ...] = ()) -> str:
    name = valid_username(username)
    if role not in ROLE_BY_NAME or role == "public":
        raise UserError(f"role {role!r}: one of {', '.join(r for r in ROLE_BY_NAME if r != 'public')}")
    if precincts:
        if not ROLE_BY_NAME[role].bindable_to_precincts:
            raise UserError(f"only police users can be bound to precincts, not {role}")
        unknown = sorted(set(precincts) - qa.area_ids_of_kind(store, "precinct"))
        if unknown:
            raise UserError(f"no precinct area with id {', '.join(unknown)} (load the city's precinct layer first)")
    check_new_password(password, name)
    hashed = passwords.hash(password)
    now = _now()

    def job(con):
        if qa.user_exists_in(con, name):
            raise UserError(f"user {name!r} already exists")
        qa.insert_user_in(con, name, role, hashed, now, display_name, precincts)
        qa.append_audit_in(con, actor, "user_added", f"user:{name}",
                           {"role": role, "precincts": list(precincts)}, now)
    qa.submit_audited(store, job).result(timeout=30)
    return name


def _existing(store: Store, username: str):
    user = qa.get_user(store, (username or "").strip().lower())
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def reset_password(store: Store, passwords: Passwords, username: str, password: str, *, actor: str) -> None:
    user = _existing(store, username)
    check_new_password(password, user.username)
    hashed = passwords.hash(password)
    now = _now()

    def job(con):
        qa.set_password_in(con, user.username, hashed, now)
        ended = qa.revoke_user_sessions_in(con, user.username, now, "password reset")
        qa.append_audit_in(con, actor, "password_reset", f"user:{user.username}", {"sessions_ended": ended}, now)
    qa.submit_audited(store, job).result(timeout=30)


def set_disabled(store: Store, username: str, disabled: bool, *, actor: str) -> int:
    """Disable (ending every session) or enable a user; returns the number of sessions ended."""
    user = _existing(store, username)
    now = _now()

    def job(con):
        qa.set_disabled_in(con, user.username, disabled, now)
        ended = qa.revoke_user_sessions_in(con, user.username, now, "user disabled") if disabled else 0
        qa.append_audit_in(con, actor, "user_disabled" if disabled else "user_enabled", f"user:{user.username}",
                           {"sessions_ended": ended}, now)
        return ended
    return qa.submit_audited(store, job).result(timeout=30)


def end_sessions(store: Store, username: str, *, actor: str) -> int:
    """End every open session of a user (they sign in again); returns how many were ended."""
    user = _existing(store, username)
    now = _now()

    def job(con):
        ended = qa.revoke_user_sessions_in(con, user.username, now, "ended by an administrator")
        qa.append_audit_in(con, actor, "sessions_ended", f"user:{user.username}", {"sessions_ended": ended}, now)
        return ended
    return qa.submit_audited(store, job).result(timeout=30)


def ensure_first_admin(store: Store, settings: Settings, passwords: Passwords) -> str | None:
    """With no users yet, create the admin named by the configured environment variables."""
    if qa.user_count(store):
        return None
    cfg = settings.auth
    name, password = os.environ.get(cfg.first_admin_user_env), os.environ.get(cfg.first_admin_password_env)
    if not name or not password:
        log.warning("no users yet: set %s and %s to create the first admin at start, or run "
                    "`python app.py users add NAME --role admin`", cfg.first_admin_user_env,
                    cfg.first_admin_password_env)
        return None
    return add_user(store, passwords, name, "admin", password, actor="setup")
