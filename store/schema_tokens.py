"""DDL of API tokens: credentials for machines calling the JSON API (``python app.py tokens add``).

A token is shown once when made and stored only as its SHA-256, like session tokens: a copy of the
database gives nobody a working token. A token acts with one role (and, for police, precincts),
is revoked rather than deleted so the audit log's mentions of it keep their meaning, and records
when it was last used.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS api_tokens (
        name VARCHAR PRIMARY KEY, token_sha256 VARCHAR NOT NULL UNIQUE, role VARCHAR NOT NULL,
        precincts VARCHAR[] NOT NULL, created_at TIMESTAMPTZ NOT NULL, created_by VARCHAR NOT NULL,
        revoked_at TIMESTAMPTZ, last_used_at TIMESTAMPTZ)""",
)
