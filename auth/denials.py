"""Policy denials in the audit log, aggregated so that no caller can grow the log without bound.

Every refusal is accounted for, but not one record each: an anonymous client can POST a refused
callback hundreds of times a second, and the hash-chained log keeps every record for ever. So:

- the first denial of a kind (actor, client address, target, reason and the rest of its detail)
  in a window is recorded at once, exactly as a single denial always was;
- further denials of that kind in the same window are counted, and written as ONE record with
  ``repeats`` (how many more) and the times of the first and last of them when the window closes;
- per window at most MAX_ANONYMOUS_KINDS kinds of callers without a session, and
  MAX_SIGNED_IN_KINDS kinds of signed-in callers, are tracked; denials of further kinds are
  counted into one ``(overflow)`` record for each group, with a sample of the client addresses.

The two groups have their own budgets so that anonymous requests, which anyone can send, never
push a signed-in user's refusals into an overflow count: those stay named one by one. A window
adds at most 2 * (MAX_ANONYMOUS_KINDS + MAX_SIGNED_IN_KINDS) + 2 records however many requests
arrive, and nothing is dropped: the counts say how many were refused. Windows are tumbling: one
opens at the first denial after the previous one closed. A thread closes due windows; close()
writes what is pending (the server calls it before the store closes).
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from store import Store
from store import queries_access as qa

log = logging.getLogger(__name__)
ACTION = "policy_denied"
# A burst is summarised within a minute, so an auditor reading the log sees it as it happens.
WINDOW_S = 60.0
# One client address without a session can produce one kind per refused callback and page (about
# twenty today); 100 kinds hold a few such clients in full and bound an attack from many addresses
# to 201 records a minute instead of one per request.
MAX_ANONYMOUS_KINDS = 100
# Signed-in kinds need a valid session, so they are bounded by accounts x callbacks and pages; 500
# holds every role of the test matrix (tests/test_callback_authz.py) several times over.
MAX_SIGNED_IN_KINDS = 500
ADDRESS_SAMPLE = 10  # client addresses named in an overflow record
CHECK_EVERY_S = 1.0  # how often the thread looks for a window that is due


def _report_failure(future) -> None:
    if future.exception() is not None:
        log.error("could not write policy denials to the audit log: %s", future.exception())


@dataclass(slots=True)
class _Kind:
    actor: str
    target: str
    detail: dict[str, Any]
    repeats: int = 0
    first_repeat_at: datetime | None = None
    last_repeat_at: datetime | None = None


@dataclass(slots=True)
class _Group:
    """The kinds of one group (anonymous or signed-in) in the current window, and its overflow."""
    max_kinds: int
    kinds: dict[str, _Kind] = field(default_factory=dict)
    overflow: int = 0
    overflow_addrs: list[str] = field(default_factory=list)
    overflow_span: tuple[datetime, datetime] | None = None

    def summaries(self, actor: str, now: datetime) -> list[tuple[str, str, dict[str, Any], datetime]]:
        out = []
        for kind in self.kinds.values():
            if kind.repeats:
                out.append((kind.actor, kind.target, {**kind.detail, "repeats": kind.repeats,
                                                      "first_repeat_at": kind.first_repeat_at.isoformat(),
                                                      "last_repeat_at": kind.last_repeat_at.isoformat()}, now))
        if self.overflow:
            start, end = self.overflow_span
            out.append((actor, "(overflow)", {"repeats": self.overflow, "addr_sample": self.overflow_addrs,
                                              "first_repeat_at": start.isoformat(), "last_repeat_at": end.isoformat(),
                                              "reason": f"more than {self.max_kinds} kinds of denial in one window"},
                        now))
        return out


class DenialLog:
    """Aggregates policy denials per kind and window before they reach the audit chain."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 window_s: float = WINDOW_S, max_anonymous_kinds: int = MAX_ANONYMOUS_KINDS,
                 max_signed_in_kinds: int = MAX_SIGNED_IN_KINDS):
        self._store, self._clock = store, clock
        self._window = timedelta(seconds=window_s)
        self._limits = {False: max_anonymous_kinds, True: max_signed_in_kinds}
        self._lock = threading.Lock()
        self._opened_at: datetime | None = None
        self._groups = self._new_groups()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="denial-log", daemon=True)
        self._thread.start()

    def _new_groups(self) -> dict[bool, _Group]:
        return {signed_in: _Group(limit) for signed_in, limit in self._limits.items()}

    def record(self, actor: str, target: str, detail: dict[str, Any], *, signed_in: bool) -> None:
        """Account for one denial: written now if it is the first of its kind in this window, else counted."""
        now = self._clock()
        key = json.dumps([actor, target, detail], sort_keys=True, default=str)
        due = None
        with self._lock:
            if self._opened_at is not None and now - self._opened_at >= self._window:
                due = self._take()
            if self._opened_at is None:
                self._opened_at = now
            group = self._groups[signed_in]
            kind = group.kinds.get(key)
            first = kind is None and len(group.kinds) < group.max_kinds
            if first:
                group.kinds[key] = _Kind(actor, target, dict(detail))
            elif kind is not None:
                kind.repeats += 1
                kind.first_repeat_at = kind.first_repeat_at or now
                kind.last_repeat_at = now
            else:
                group.overflow += 1
                group.overflow_span = (group.overflow_span[0] if group.overflow_span else now, now)
                addr = str(detail.get("addr"))
                if len(group.overflow_addrs) < ADDRESS_SAMPLE and addr not in group.overflow_addrs:
                    group.overflow_addrs.append(addr)
        if due:
            self._write(due)
        if first:
            self._write([(actor, target, detail, now)])

    def close_due(self) -> None:
        """Write the summaries of a window whose time is up (the thread calls this every second)."""
        with self._lock:
            due = (self._take() if self._opened_at is not None and self._clock() - self._opened_at >= self._window
                   else None)
        if due:
            self._write(due)

    def close(self) -> None:
        """Stop the thread and write every pending summary (before the store closes)."""
        self._stopped.set()
        self._thread.join(timeout=5)
        with self._lock:
            due = self._take()
        if due:
            self._write(due).result(timeout=30)  # in the log before the store closes

    def _take(self) -> list[tuple[str, str, dict[str, Any], datetime]]:
        """The current window's summary records; the window is closed (caller holds the lock)."""
        now = self._clock()
        out = (self._groups[False].summaries("(anonymous callers)", now)
               + self._groups[True].summaries("(signed-in callers)", now))
        self._opened_at, self._groups = None, self._new_groups()
        return out

    def _write(self, records: list[tuple[str, str, dict[str, Any], datetime]]) -> Future:
        def job(con) -> None:
            for actor, target, detail, at in records:
                qa.append_audit_in(con, actor, ACTION, target, detail, at)
        # Requests do not wait for it (they are refused either way), but a failed write is reported.
        future = qa.submit_audited(self._store, job)
        future.add_done_callback(_report_failure)
        return future

    def _run(self) -> None:
        while not self._stopped.wait(CHECK_EVERY_S):
            try:
                self.close_due()
            except Exception:  # keep closing windows; the next one may go through
                log.exception("could not write aggregated policy denials")
