"""Audit trail: what is recorded, and `audit verify`, which detects altered, removed or inserted records.

Records are appended through store.queries_access (one writer thread, one chain); see that module
for the chain's construction. Verification recomputes every hash from the stored fields and checks:
consecutive sequence numbers from 1 (a removed or inserted record leaves a gap or a duplicate), each
record's prev_hash equal to its predecessor's hash (re-ordering or removal), each hash equal to the
recomputed one (alteration), redactions only where a later erasure record lists them, and the head
against the anchor file beside the database (records cut off the end, or a chain rewritten from
some point onwards, or records appended outside pheoc).

Actions written by pheoc: login, login_failed, logout, policy_denied, data_access, export,
user_added, user_disabled, user_enabled, password_reset, erasure; features add their own
(e.g. rule_changed, zone_changed, alert_sent) through auth.policy.audit().
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from store import Store
from store import queries_access as qa


@dataclass(frozen=True)
class AuditReport:
    records: int
    problems: tuple[str, ...] = ()
    head: tuple[int, str] | None = None
    anchor: tuple[int, str] | None = None
    redacted: tuple[int, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def _erasure_listed(row: qa.AuditRow) -> set[int]:
    if row.action != "erasure" or not row.detail:
        return set()
    try:
        return {int(s) for s in json.loads(row.detail).get("redacted_seqs", [])}
    except (ValueError, TypeError, AttributeError):
        return set()


def verify_chain(rows: list[qa.AuditRow], anchor: tuple[int, str] | None) -> AuditReport:
    problems: list[str] = []
    prev_hash, expected_seq = qa.AUDIT_GENESIS, 1
    redacted: list[int] = []
    allowed: set[int] = set()
    hashes: dict[int, str] = {}
    for row in rows:
        if row.seq != expected_seq:
            problems.append(f"record {row.seq}: expected sequence number {expected_seq} "
                            "(records removed or inserted)")
        if row.prev_hash != prev_hash:
            problems.append(f"record {row.seq}: does not follow the record before it "
                            "(a record was removed, inserted or altered before it)")
        if qa.expected_hash(row) != row.hash:
            problems.append(f"record {row.seq}: its content does not match its hash (altered)")
        if qa.redaction_digest(row.detail) is not None:
            redacted.append(row.seq)
        # An erasure lists the records it redacted; a redaction no erasure accounts for is tampering.
        allowed |= {s for s in _erasure_listed(row) if s < row.seq}
        hashes[row.seq] = row.hash
        prev_hash, expected_seq = row.hash, row.seq + 1
    for seq in redacted:
        if seq not in allowed:
            problems.append(f"record {seq}: redacted without an erasure record that lists it")
    head = (rows[-1].seq, rows[-1].hash) if rows else None
    if anchor is not None:
        a_seq, a_hash = anchor
        if head is None or a_seq > head[0]:
            problems.append(f"the log ends before the anchored head {a_seq} (records removed from the end)")
        elif hashes.get(a_seq) != a_hash:
            problems.append(f"record {a_seq}: differs from the anchored head (the chain was rewritten)")
        elif a_seq < head[0]:
            problems.append(f"records {a_seq + 1}..{head[0]} were appended after the anchored head "
                            "(written outside pheoc, or the process stopped between commit and anchor)")
    return AuditReport(len(rows), tuple(problems), head, anchor, tuple(redacted))


def verify_audit(store: Store) -> AuditReport:
    return verify_chain(qa.audit_rows(store), qa.read_anchor(store.path))
