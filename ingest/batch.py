"""Collects validated rows and rejects into one IngestBatch for the store's writer, and commits it."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import pandas as pd

from ingest.records import Reject, ValidationContext, content_hash, validate_record
from store.row_hash import store_hash_sql
from store.schema import INGEST_TABLES
from store.store import BatchResult, IngestBatch, QuarantineRow, Store, StoreClosed

log = logging.getLogger(__name__)
REGISTRY_KINDS = frozenset({"area", "sensor", "facility"})
# reason_detail keeps the start of an exception's message: enough to recognise it, not a traceback.
MAX_DETAIL_CHARS = 300


class BatchBuilder:
    """Validates records one at a time; a bad one becomes a quarantine row, never an exception."""

    def __init__(self, source: str, channel: str):
        self.source = source
        self.channel = channel
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._quarantined: list[QuarantineRow] = []

    def __len__(self) -> int:
        return sum(len(v) for v in self._rows.values()) + len(self._quarantined)

    @property
    def kinds(self) -> set[str]:
        return set(self._rows)

    def add(self, kind: str, record: Any, raw: bytes, ctx: ValidationContext, *, from_text: bool = False,
            source: str | None = None) -> bool:
        """Validate and keep one record; return True if it was valid."""
        try:
            row = validate_record(kind, record, ctx, from_text=from_text)
            if store_hash_sql(INGEST_TABLES[kind].table) is None:  # readings: the store hashes them (store/row_hash.py)
                row["content_hash"] = content_hash(row, INGEST_TABLES[kind].columns)
        except Reject as rej:
            self.reject(rej.code, rej.detail, raw, kind=kind, source=source)
            return False
        except Exception as exc:  # an input the validator does not foresee: keep it, go on with the rest
            log.warning("validating a %s record from %s failed", kind, source or self.source, exc_info=True)
            self.reject("unexpected_error", describe_exception(exc), raw, kind=kind, source=source)
            return False
        row["raw_payload"] = raw
        self._rows[kind].append(row)
        return True

    def reject(self, code: str, detail: str, raw: bytes, *, kind: str | None = None, source: str | None = None,
               record_key: str | None = None) -> None:
        self._quarantined.append(QuarantineRow(source=source or self.source, reason_code=code, reason_detail=detail,
                                               raw_payload=raw, kind=kind, record_key=record_key))

    def build(self, *, file_sha256: str | None = None, file_name: str | None = None) -> IngestBatch:
        frames = {}
        for kind, rows in self._rows.items():
            spec = INGEST_TABLES[kind]
            columns = [*spec.columns, *([] if store_hash_sql(spec.table) else ["content_hash"]), "raw_payload"]
            frames[kind] = pd.DataFrame.from_records(rows, columns=columns)
        return IngestBatch(source=self.source, channel=self.channel, rows_by_kind=frames,
                           quarantined=tuple(self._quarantined), file_sha256=file_sha256, file_name=file_name)


def commit_batch(store: Store, batch: IngestBatch) -> BatchResult:
    """Store a batch in one transaction; if the store refuses it, store its rows one at a time.

    A row that passed validation can still break an insert (a constraint the validator does not
    know): in one transaction it would take the whole batch with it. Row by row, only that row is
    refused, and it goes to the quarantine as ``store_refused``. StoreClosed (shutting down) is raised.
    """
    try:
        return store.write_batch(batch).result()
    except StoreClosed:
        raise
    except Exception as exc:
        log.warning("the store refused a batch from %s (%s); storing its rows one by one",
                    batch.source, type(exc).__name__)
        return commit_rows_one_by_one(store, batch)


def commit_rows_one_by_one(store: Store, batch: IngestBatch) -> BatchResult:
    """Commit each row alone; a row the store refuses goes to the quarantine as ``store_refused``."""
    total = BatchResult()
    refused: list[QuarantineRow] = []
    for kind, frame in batch.rows_by_kind.items():
        for i in range(len(frame)):
            one = IngestBatch(batch.source, batch.channel, {kind: frame.iloc[i:i + 1]})
            try:
                total = total + store.write_batch(one).result()
            except StoreClosed:
                raise
            except Exception as exc:
                raw = frame["raw_payload"].iloc[i] if "raw_payload" in frame else b""
                refused.append(QuarantineRow(batch.source, "store_refused", describe_exception(exc), raw or b"", kind))
    # The rejects, the refused rows and the file's "ingested" mark go last, in one transaction.
    rest = IngestBatch(batch.source, batch.channel, {}, (*batch.quarantined, *refused),
                       file_sha256=batch.file_sha256, file_name=batch.file_name)
    return total + store.write_batch(rest).result()


def describe_exception(exc: BaseException) -> str:
    """An exception as a short reason_detail: its type and the start of its message."""
    return f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]
