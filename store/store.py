"""The one owner of the DuckDB file: a single writer thread fed by a bounded queue, per-thread readers.

DuckDB allows one read-write process, and inside it one writer is simplest to reason about: every
write is a job run in the writer thread inside its own transaction, so a batch is either wholly
committed or not at all (the MQTT ingestor acknowledges messages only after that). The queue is
bounded so a flood of input makes producers wait instead of growing memory. Readers (Flask request
threads, the ingest validators) each get their own cursor on the same database.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from store.row_hash import store_hash_sql
from store.schema import INGEST_TABLES, apply_schema

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()


class StoreClosed(RuntimeError):
    """The store was closed; no more jobs are accepted."""


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """A record that could not be stored, kept with its raw bytes so a person can fix and replay it."""
    source: str
    reason_code: str
    reason_detail: str
    raw_payload: bytes
    kind: str | None = None
    record_key: str | None = None


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """Validated rows per record kind plus the rejects of one batch; committed in one transaction.

    Each rows frame has the kind's columns (see store.schema.INGEST_TABLES), ``content_hash`` and
    ``raw_payload`` (bytes kept only in case the row turns out to conflict with a stored one).
    """
    source: str
    channel: str  # "mqtt" or "file"
    rows_by_kind: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    quarantined: Sequence[QuarantineRow] = ()
    file_sha256: str | None = None
    file_name: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    accepted: int = 0
    duplicate: int = 0
    conflicting: int = 0
    rejected: int = 0  # failed validation (conflicting ones are counted separately)
    skipped_file: bool = False  # the whole file had been ingested before

    def __add__(self, other: "BatchResult") -> "BatchResult":
        return BatchResult(self.accepted + other.accepted, self.duplicate + other.duplicate,
                           self.conflicting + other.conflicting, self.rejected + other.rejected,
                           self.skipped_file and other.skipped_file)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """Owns one DuckDB file. Use as a context manager or call close()."""

    def __init__(self, path: Path | str, queue_size: int = 64):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path))
        apply_schema(self._con)
        self._column_types = self._load_column_types()
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._local = threading.local()
        self._cursors: list[Any] = []
        self._cursor_lock = threading.Lock()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    # ---- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        self._writer.join()
        with self._cursor_lock:
            for cur in self._cursors:
                try:
                    cur.close()
                except duckdb.Error:
                    pass
            self._cursors.clear()
        try:
            self._con.execute("CHECKPOINT")
        finally:
            self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing ---------------------------------------------------------------------------
    def submit(self, job: Callable[[Any], T]) -> "Future[T]":
        """Run ``job(connection)`` in the writer thread inside one transaction.

        Blocks while the queue is full (backpressure); returns a Future for the job's result.
        """
        if self._closed:
            raise StoreClosed("store is closed")
        fut: Future = Future()
        self._jobs.put((job, fut))
        return fut

    def write(self, sql: str, params: Sequence | None = None) -> None:
        """Run one statement in the writer thread and wait for its commit."""
        self.submit(lambda con: con.execute(sql, params or [])).result()

    def write_batch(self, batch: IngestBatch) -> "Future[BatchResult]":
        """Store a validated batch: new rows inserted, replays counted, conflicts quarantined."""
        return self.submit(lambda con: self._write_batch(con, batch))

    def flush(self) -> None:
        """Wait until every job queued so far has been committed."""
        self.submit(lambda con: None).result()

    def _write_loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            job, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                self._con.execute("BEGIN TRANSACTION")
                result = job(self._con)
                self._con.execute("COMMIT")
            except BaseException as exc:  # the writer must survive any one bad job
                try:
                    self._con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                log.warning("store job failed: %s", exc)
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def _load_column_types(self) -> dict[str, dict[str, str]]:
        rows = self._con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main'").fetchall()
        types: dict[str, dict[str, str]] = {}
        for table, column, dtype in rows:
            types.setdefault(table, {})[column] = dtype
        return types

    def _write_batch(self, con, batch: IngestBatch) -> BatchResult:
        now = utc_now()
        if batch.file_sha256:
            seen = con.execute("SELECT 1 FROM ingested_files WHERE sha256 = ?", [batch.file_sha256]).fetchone()
            if seen:
                return BatchResult(skipped_file=True)
        total = BatchResult()
        conflicts: list[QuarantineRow] = []
        per_kind: dict[str, BatchResult] = {}
        last_times: dict[str, datetime | None] = {}
        for kind, rows in batch.rows_by_kind.items():
            if rows is None or len(rows) == 0:  # a pandas frame, or an Arrow table (store/bulk_write.py)
                continue
            result, kind_conflicts, last = self._insert_kind(con, kind, rows, batch.source, now)
            conflicts.extend(kind_conflicts)
            per_kind[kind] = result
            last_times[kind] = last
            total = total + result
        rejected_by_kind: dict[str, int] = {}
        for q in batch.quarantined:
            rejected_by_kind[q.kind or "unknown"] = rejected_by_kind.get(q.kind or "unknown", 0) + 1
        self._insert_quarantine(con, list(batch.quarantined) + conflicts, now)
        for kind in sorted(set(per_kind) | set(rejected_by_kind)):
            r = per_kind.get(kind, BatchResult())
            con.execute(
                "INSERT INTO ingest_log (source, channel, kind, committed_at, last_record_at, accepted, rejected,"
                " duplicate, conflicting) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch.source, batch.channel, kind, now, last_times.get(kind), r.accepted,
                 rejected_by_kind.get(kind, 0), r.duplicate, r.conflicting])
        if batch.file_sha256:
            status = "processed" if batch.rows_by_kind or not batch.quarantined else "rejected"
            con.execute("INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?)",
                        [batch.file_sha256, batch.file_name or batch.source, now, status, None])
        return BatchResult(total.accepted, total.duplicate, total.conflicting, len(batch.quarantined))

    def _insert_kind(self, con, kind: str, rows: pd.DataFrame, source: str, now: datetime):
        spec = INGEST_TABLES[kind]
        if not isinstance(rows, pd.DataFrame):  # a bulk file's block, as one Arrow table
            from store.bulk_write import insert_arrow_rows  # imports this module
            return insert_arrow_rows(con, spec, self._column_types[spec.table], kind, rows, source, now)
        key = list(spec.key)
        rows = rows.reset_index(drop=True)
        # Readings' hash is the store's own (store/row_hash.py), computed in SQL from the typed columns;
        # inside the batch their typed columns themselves say what is identical.
        stored_hash = store_hash_sql(spec.table)
        content = list(spec.columns) if stored_hash else key + ["content_hash"]
        # Inside one batch: an identical repeat is a duplicate, a different record under the same
        # key is a conflict; the first occurrence goes on to be compared with the store.
        identical = rows.duplicated(subset=content, keep="first")
        rows_unique = rows[~identical]
        same_key = rows_unique.duplicated(subset=key, keep="first")
        conflict_frames = [rows_unique[same_key]]
        candidates = rows_unique[~same_key].copy()
        duplicate = int(identical.sum())

        candidates["__row"] = range(len(candidates))
        types = self._column_types[spec.table]
        casts = ", ".join(f"CAST(\"{c}\" AS {types[c]}) AS \"{c}\"" for c in spec.columns)
        staged_in = candidates[["__row", *spec.columns] + ([] if stored_hash else ["content_hash"])]
        con.register("batch_in", staged_in)
        try:
            typed = f"SELECT __row, {casts}{'' if stored_hash else ', content_hash'} FROM batch_in"
            con.execute("CREATE OR REPLACE TEMP TABLE staged AS "
                        + (f"SELECT *, {stored_hash} AS content_hash FROM ({typed})" if stored_hash else typed))
        finally:
            con.unregister("batch_in")
        cols = ", ".join(f"\"{c}\"" for c in spec.columns)
        key_cols = ", ".join(f"\"{k}\"" for k in key)
        # The primary key's own index decides what is new: the insert probes it per row, so the cost of
        # a batch stays flat as the table grows (an anti-join against the table scanned it every batch).
        # RETURNING names the keys really inserted; every other candidate's key was already stored.
        inserted = con.execute(
            f"INSERT INTO {spec.table} ({cols}, source, content_hash, ingested_at) "
            f"SELECT {cols}, ?, content_hash, ? FROM staged ON CONFLICT DO NOTHING "
            f"RETURNING {key_cols}", [source, now]).df()
        accepted = len(inserted)
        if accepted < len(candidates):
            # Only the rows not inserted are compared with the stored ones: same content hash is a
            # replay (duplicate), a different one a conflict.
            join = " AND ".join(f"s.\"{k}\" = t.\"{k}\"" for k in key)
            join_inserted = " AND ".join(f"s.\"{k}\" = i.\"{k}\"" for k in key)
            con.register("inserted_keys", inserted)
            try:
                existing = con.execute(
                    f"SELECT s.__row, s.content_hash = t.content_hash AS same FROM staged s "
                    f"JOIN {spec.table} t ON {join} "
                    f"WHERE NOT EXISTS (SELECT 1 FROM inserted_keys i WHERE {join_inserted})").fetchall()
            finally:
                con.unregister("inserted_keys")
            same_rows = {r for r, same in existing if same}
            conflict_rows = {r for r, same in existing if not same}
            duplicate += len(same_rows)
            if conflict_rows:
                conflict_frames.append(candidates[candidates["__row"].isin(conflict_rows)])
        last = None
        if spec.time_column:
            last = con.execute(f"SELECT max(CAST(\"{spec.time_column}\" AS TIMESTAMPTZ)) FROM staged").fetchone()[0]
        con.execute("DROP TABLE staged")
        conflicts = []
        for frame in conflict_frames:
            for rec in frame.itertuples(index=False):
                rec_key = "|".join(str(getattr(rec, k)) for k in key)
                conflicts.append(QuarantineRow(
                    source=source, kind=kind, reason_code="conflicting_duplicate",
                    reason_detail=f"a different {kind} with key {rec_key} is already stored; not overwritten",
                    raw_payload=getattr(rec, "raw_payload", b"") or b"", record_key=rec_key))
        return BatchResult(accepted, duplicate, len(conflicts)), conflicts, last

    @staticmethod
    def _insert_quarantine(con, rows: Sequence[QuarantineRow], now: datetime) -> None:
        if not rows:
            return
        frame = pd.DataFrame({
            "received_at": [now] * len(rows),
            "source": [r.source for r in rows],
            "kind": [r.kind for r in rows],
            "reason_code": [r.reason_code for r in rows],
            "reason_detail": [r.reason_detail for r in rows],
            "record_key": [r.record_key for r in rows],
            "raw_payload": [bytes(r.raw_payload) for r in rows],
        })
        con.register("quarantine_in", frame)
        try:
            con.execute("INSERT INTO quarantine (received_at, source, kind, reason_code, reason_detail, record_key,"
                        " raw_payload) SELECT received_at, source, kind, reason_code, reason_detail, record_key,"
                        " CAST(raw_payload AS BLOB) FROM quarantine_in")
        finally:
            con.unregister("quarantine_in")

    # ---- reading ---------------------------------------------------------------------------
    def _cursor(self):
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            if self._closed:
                raise StoreClosed("store is closed")
            cur = self._con.cursor()
            self._local.cursor = cur
            with self._cursor_lock:
                self._cursors.append(cur)
        return cur

    def read(self, sql: str, params: Sequence | Mapping | None = None) -> pd.DataFrame:
        """Run a read-only query on this thread's cursor and return a DataFrame."""
        return self._cursor().execute(sql, params or []).df()

    def read_rows(self, sql: str, params: Sequence | Mapping | None = None) -> list[tuple]:
        return self._cursor().execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: Sequence | Mapping | None = None) -> Any:
        row = self._cursor().execute(sql, params or []).fetchone()
        return row[0] if row else None

    def table_counts(self) -> dict[str, int]:
        """Row count of every table (for /healthz: counts only, nothing personal)."""
        tables = [r[0] for r in self.read_rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='main' AND table_type='BASE TABLE' "
            "ORDER BY table_name")]
        return {t: int(self.scalar(f'SELECT count(*) FROM "{t}"')) for t in tables}
