"""DDL of the alert inbox, CAP warnings and their delivery; applied by store.schema.apply_schema.

* ``alert_actions``: who acknowledged or resolved an alert, when, with what note (append-only; the
  alert's own ``status`` in ``alerts`` is the current state, changed in the same transaction).
* ``warnings``: CAP 1.2 warnings, proposed (by a rule or a person), then approved (issued) or
  rejected. An issued warning keeps the CAP document exactly as it was sent (``cap_xml``); an Update
  or Cancel is a new row whose ``references_id`` names the warning it replaces, all sharing
  ``series_id`` (the retained MQTT topic of the series). ``source_key`` makes automatic proposals
  idempotent (one per zone event or level change).
* ``warning_acks``: an agency's acknowledgement of an issued warning (on /alerts or by signed link).
* ``delivery_outbox``: one row per message, recipient and channel, written in the same transaction
  as what caused it (an approval, a briefing), so a restart loses nothing; the worker sends what is
  due and records each attempt in ``delivery_attempts``.
* ``inbound_alerts``: other agencies' CAP alerts read from warnings.inbound_dir.
* ``store_mode``: one row in a drill database (``mode = 'exercise'``); every CAP document built from
  such a database has status Exercise, and every page shows the EXERCISE banner.
"""
from __future__ import annotations

DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS alert_action_seq",
    """CREATE TABLE IF NOT EXISTS alert_actions (
        action_id BIGINT PRIMARY KEY DEFAULT nextval('alert_action_seq'),
        alert_id BIGINT NOT NULL, action VARCHAR NOT NULL CHECK (action IN ('acknowledge','resolve')),
        acted_at TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL, role VARCHAR NOT NULL, note VARCHAR)""",
    "CREATE SEQUENCE IF NOT EXISTS warning_seq",
    """CREATE TABLE IF NOT EXISTS warnings (
        warning_id BIGINT PRIMARY KEY DEFAULT nextval('warning_seq'),
        identifier VARCHAR NOT NULL UNIQUE, series_id VARCHAR NOT NULL,
        msg_type VARCHAR NOT NULL CHECK (msg_type IN ('Alert','Update','Cancel')),
        references_id BIGINT, status VARCHAR NOT NULL CHECK (status IN ('Actual','Exercise','Test')),
        approval VARCHAR NOT NULL CHECK (approval IN ('proposed','approved','rejected')),
        rule VARCHAR NOT NULL, source_key VARCHAR UNIQUE,
        proposed_at TIMESTAMPTZ NOT NULL, proposed_by VARCHAR NOT NULL,
        decided_at TIMESTAMPTZ, decided_by VARCHAR, decision_note VARCHAR,
        event VARCHAR NOT NULL, urgency VARCHAR NOT NULL, severity VARCHAR NOT NULL, certainty VARCHAR NOT NULL,
        headline VARCHAR NOT NULL, description VARCHAR NOT NULL, instruction VARCHAR,
        areas VARCHAR NOT NULL, sender VARCHAR, sent VARCHAR, expires VARCHAR, cap_xml VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS warning_acks (
        warning_id BIGINT NOT NULL, recipient_id VARCHAR NOT NULL, acknowledged_at TIMESTAMPTZ NOT NULL,
        via VARCHAR NOT NULL CHECK (via IN ('ui','link')), actor VARCHAR NOT NULL,
        PRIMARY KEY (warning_id, recipient_id))""",
    "CREATE SEQUENCE IF NOT EXISTS delivery_seq",
    """CREATE TABLE IF NOT EXISTS delivery_outbox (
        delivery_id BIGINT PRIMARY KEY DEFAULT nextval('delivery_seq'),
        kind VARCHAR NOT NULL, ref VARCHAR NOT NULL, recipient_id VARCHAR NOT NULL,
        channel VARCHAR NOT NULL CHECK (channel IN ('mqtt','webhook','email')),
        target VARCHAR NOT NULL, subject VARCHAR, content_type VARCHAR NOT NULL, payload BLOB NOT NULL,
        ack_url VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        state VARCHAR NOT NULL CHECK (state IN ('pending','sending','delivered','failed')),
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TIMESTAMPTZ NOT NULL,
        last_attempt_at TIMESTAMPTZ, last_error VARCHAR, delivered_at TIMESTAMPTZ,
        UNIQUE (kind, ref, recipient_id, channel))""",
    """CREATE TABLE IF NOT EXISTS delivery_attempts (
        delivery_id BIGINT NOT NULL, attempt INTEGER NOT NULL, started_at TIMESTAMPTZ NOT NULL,
        duration_ms DOUBLE NOT NULL, ok BOOLEAN NOT NULL, error VARCHAR, PRIMARY KEY (delivery_id, attempt))""",
    """CREATE TABLE IF NOT EXISTS inbound_alerts (
        identifier VARCHAR NOT NULL, sender VARCHAR NOT NULL, sent VARCHAR NOT NULL,
        status VARCHAR NOT NULL, msg_type VARCHAR NOT NULL, scope VARCHAR, references_text VARCHAR,
        sender_name VARCHAR, event VARCHAR, category VARCHAR, urgency VARCHAR, severity VARCHAR, certainty VARCHAR,
        headline VARCHAR, description VARCHAR, instruction VARCHAR, area_desc VARCHAR, expires VARCHAR,
        file_name VARCHAR NOT NULL, received_at TIMESTAMPTZ NOT NULL, raw_xml VARCHAR NOT NULL,
        PRIMARY KEY (identifier, sender, sent))""",
    """CREATE TABLE IF NOT EXISTS store_mode (
        mode VARCHAR PRIMARY KEY CHECK (mode IN ('exercise')), set_at TIMESTAMPTZ NOT NULL, scenario VARCHAR)""",
)
