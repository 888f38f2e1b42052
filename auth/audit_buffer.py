"""Audit records that may wait a moment: collected in memory and appended in one writer job.

Read access is audited per response (ISO/IEC 5153-1 §10: who saw which personal data, when).
A wall screen refreshing every ten seconds would otherwise cost one writer transaction per
refresh and per callback; here the records of a couple of seconds are chained and committed
together. Records that must be in the log *before* data leaves (case-level reads) do not come
through here: auth.policy writes those and waits for the commit.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from store import Store, StoreClosed
from store import queries_access as qa

log = logging.getLogger(__name__)
# Long enough to gather a wall screen's refresh burst into one transaction, short enough that
# an auditor looking at /audit sees a read within seconds.
DEFAULT_FLUSH_S = 2.0
# Beyond this many records waiting (the writer stalled), the caller flushes synchronously rather
# than growing memory: back-pressure instead of loss.
MAX_PENDING = 10_000


class AuditBuffer:
    def __init__(self, store: Store, flush_s: float = DEFAULT_FLUSH_S,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._store = store
        self._flush_s = flush_s
        self._clock = clock
        self._pending: list[tuple[str, str, str | None, dict[str, Any], datetime]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="audit-buffer", daemon=True)
        self._thread.start()

    def add(self, actor: str, action: str, target: str | None, detail: dict[str, Any]) -> None:
        """Queue one record; it is chained and committed within ``flush_s`` seconds."""
        with self._lock:
            self._pending.append((actor, action, target, detail, self._clock()))
            overfull = len(self._pending) >= MAX_PENDING
        if overfull:
            self.flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Commit everything queued so far (blocks until it is in the log)."""
        with self._lock:
            records, self._pending = self._pending, []
        if not records:
            return

        def job(con) -> int:
            for actor, action, target, detail, at in records:
                qa.append_audit_in(con, actor, action, target, detail, at)
            return len(records)
        try:
            qa.submit_audited(self._store, job).result(timeout=60)
        except BaseException:
            with self._lock:  # nothing is lost: the records wait for the next flush
                self._pending[:0] = records
            raise

    def close(self) -> None:
        """Write what is queued and stop; call before the store closes."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_s)
            try:
                self.flush()
            except StoreClosed:
                if self.pending():
                    log.error("the store closed with %d audit records not written", self.pending())
                return
            except Exception:  # keep the records' owner informed, keep flushing
                log.exception("could not write buffered audit records")
