"""Collects validated rows and rejects into one IngestBatch for the store's writer."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd

from ingest.records import Reject, ValidationContext, content_hash, validate_record
from store.schema import INGEST_TABLES
from store.store import IngestBatch, QuarantineRow

REGISTRY_KINDS = frozenset({"area", "sensor", "facility"})


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
        except Reject as rej:
            self.reject(rej.code, rej.detail, raw, kind=kind, source=source)
            return False
        spec = INGEST_TABLES[kind]
        row["content_hash"] = content_hash(row, spec.columns)
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
            columns = [*INGEST_TABLES[kind].columns, "content_hash", "raw_payload"]
            frames[kind] = pd.DataFrame.from_records(rows, columns=columns)
        return IngestBatch(source=self.source, channel=self.channel, rows_by_kind=frames,
                           quarantined=tuple(self._quarantined), file_sha256=file_sha256, file_name=file_name)
