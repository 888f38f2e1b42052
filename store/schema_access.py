"""DDL for the access feature: users, their area bindings, server-side sessions and login attempts.

Applied by store.schema.apply_schema after the core tables. The audit log itself is a core table
(store.schema: audit_log); its hash chain is written by store.queries_access.

Secrets are never stored in clear: users keep an argon2id hash, sessions are stored under the
SHA-256 of the cookie's token (a copy of the database does not give anyone a live session), and
login attempts keep a SHA-256 of the name typed (people sometimes type a password into the name box).
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS users (
        username VARCHAR PRIMARY KEY, display_name VARCHAR, role VARCHAR NOT NULL,
        password_hash VARCHAR NOT NULL, disabled BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, password_changed_at TIMESTAMPTZ)""",
    # A police user may be bound to precincts (area_id of kind 'precinct'); no rows = the whole city.
    """CREATE TABLE IF NOT EXISTS user_bindings (
        username VARCHAR NOT NULL, area_kind VARCHAR NOT NULL, area_id VARCHAR NOT NULL,
        PRIMARY KEY (username, area_kind, area_id))""",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_sha256 VARCHAR PRIMARY KEY, username VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        last_seen_at TIMESTAMPTZ NOT NULL, client_addr VARCHAR, revoked_at TIMESTAMPTZ, revoked_reason VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS login_attempts (
        attempted_at TIMESTAMPTZ NOT NULL, name_sha256 VARCHAR NOT NULL, client_addr VARCHAR NOT NULL,
        outcome VARCHAR NOT NULL CHECK (outcome IN ('success', 'failure', 'blocked')))""",
)
