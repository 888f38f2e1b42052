"""File ingest: CSV, JSON, NDJSON and GeoJSON files, one-shot or from a watched inbox folder.

The kind of record comes from the file name's first word (``cases-2026-11-01.csv`` holds cases;
see ingest.records.KIND_BY_PLURAL), or from a GeoJSON FeatureCollection (areas). A file is
identified by the SHA-256 of its bytes, so the same file dropped twice changes nothing. A file that
cannot be read at all goes to ``rejected/`` with a ``.reason.txt`` beside it and a quarantine row
holding its first bytes; a readable file goes to ``processed/`` even if some of its records were
quarantined (they are in the quarantine table with their raw text).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.batch import REGISTRY_KINDS, BatchBuilder
from ingest.context import ContextProvider
from ingest.fhir import ingest_fhir_document, sniff_fhir
from ingest.records import KIND_BY_PLURAL, KIND_ORDER, Reject
from store import BatchResult, Store

log = logging.getLogger(__name__)
SUFFIXES = (".csv", ".json", ".ndjson", ".jsonl", ".geojson")
# Raw bytes kept in the quarantine for an unreadable file: enough to see what it was.
MAX_RAW_KEPT = 1_000_000
ProgressFn = Callable[[str, int, int], None]  # (file name, records done, records total)


class FileRejected(Reject):
    """The whole file cannot be read (not UTF-8, not JSON, unknown kind); ``code`` is a reason code."""


@dataclass(frozen=True, slots=True)
class FileResult:
    path: Path
    kind: str | None
    result: BatchResult
    moved_to: Path | None = None
    error: str | None = None


def kind_from_name(name: str) -> str | None:
    """``cases-2026.csv`` -> ``case``; ``communities.geojson`` -> ``area``."""
    if name.lower().endswith(".geojson"):
        return "area"
    first = re.split(r"[-_.\s]", name.lower(), maxsplit=1)[0]
    return KIND_BY_PLURAL.get(first)


# A GeoJSON layer's features take their kind from the file name when they do not carry one.
AREA_KIND_BY_NAME = {"boundary": "boundary", "city": "boundary", "communities": "community", "community": "community",
                     "precincts": "precinct", "precinct": "precinct", "districts": "district", "district": "district"}


def area_kind_from_name(name: str) -> str | None:
    return AREA_KIND_BY_NAME.get(re.split(r"[-_.\s]", name.lower(), maxsplit=1)[0])


def _records(data: bytes, name: str, kind: str, area_kind: str | None) -> Iterator[tuple[dict, bytes, bool]]:
    """Yield (record, raw bytes of that record, from_text) from a file's bytes, or raise FileRejected."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected("not_utf8", f"byte {exc.start} is not UTF-8") from None
    lower = name.lower()
    if lower.endswith(".csv"):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise FileRejected("malformed_csv", "the file is empty") from None
        except csv.Error as exc:
            raise FileRejected("malformed_csv", str(exc)) from None
        header = [h.strip() for h in header]
        try:
            for values in reader:
                if not values:
                    continue
                raw = (",".join(values)).encode()
                if len(values) != len(header):
                    yield {"__ragged__": f"{len(values)} values for {len(header)} columns"}, raw, True
                    continue
                yield dict(zip(header, values)), raw, True
        except csv.Error as exc:
            raise FileRejected("malformed_csv", f"line {reader.line_num}: {exc}") from None
        return
    if lower.endswith((".ndjson", ".jsonl")):
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                yield json.loads(line), line.encode(), False
            except (json.JSONDecodeError, RecursionError) as exc:  # deeply nested JSON overflows the parser
                yield {"__bad_json__": str(exc) or "nested too deeply"}, line.encode(), False
        return
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FileRejected("malformed_json", str(exc) or "nested too deeply") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        area_kind = area_kind or area_kind_from_name(name)
        for feature in doc.get("features") or []:
            props = dict((feature or {}).get("properties") or {})
            if area_kind and "kind" not in props:
                props["kind"] = area_kind
            props["geometry"] = (feature or {}).get("geometry")
            yield props, json.dumps(feature, separators=(",", ":")).encode(), False
        return
    records = doc.get("records") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise FileRejected("not_an_object", "a JSON file holds a list of records or {\"records\": [...]}")
    for rec in records:
        yield rec, json.dumps(rec, separators=(",", ":"), default=str).encode(), False


class FileIngestor:
    """Ingests files through validation into the store; owns the inbox's processed/ and rejected/."""

    def __init__(self, store: Store, contexts: ContextProvider, batch_rows: int = 5000):
        self._store = store
        self._contexts = contexts
        self._batch_rows = batch_rows

    def ingest_file(self, path: Path, *, move_to: Path | None = None, area_kind: str | None = None,
                    progress: ProgressFn | None = None) -> FileResult:
        """Ingest one file. With ``move_to`` (an inbox), move it to processed/ or rejected/ after."""
        path = Path(path)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        kind = kind_from_name(path.name)
        source = f"file:{path.name}"
        if self._store.scalar("SELECT count(*) FROM ingested_files WHERE sha256 = ?", [sha]):
            moved = self._move(path, move_to, "processed") if move_to else None
            return FileResult(path, kind, BatchResult(skipped_file=True), moved)
        fhir_doc = sniff_fhir(path.name, data)
        if fhir_doc is not None:  # HL7 FHIR SANER (MeasureReport/Bundle/Location): the kind is inside the file
            result = ingest_fhir_document(fhir_doc, self._store, self._contexts, source, file_sha256=sha,
                                          file_name=path.name)
            moved = self._move(path, move_to, "processed") if move_to else None
            return FileResult(path, "capacity", result, moved)
        try:
            if kind is None:
                raise FileRejected("unknown_kind", f"file name {path.name!r} does not start with one of "
                                   f"{', '.join(sorted(KIND_BY_PLURAL))}")
            if not path.name.lower().endswith(SUFFIXES):
                raise FileRejected("unknown_kind", f"unsupported file type {path.suffix!r}")
            result = self._ingest_records(data, path.name, kind, sha, source, area_kind, progress)
        except FileRejected as rej:
            builder = BatchBuilder(source, "file")
            builder.reject(rej.code, rej.detail, data[:MAX_RAW_KEPT], kind=kind, record_key=path.name)
            result = self._store.write_batch(builder.build(file_sha256=sha, file_name=path.name)).result()
            moved = self._move(path, move_to, "rejected", f"{rej.code}: {rej.detail}\n") if move_to else None
            return FileResult(path, kind, result, moved, error=f"{rej.code}: {rej.detail}")
        moved = self._move(path, move_to, "processed") if move_to else None
        return FileResult(path, kind, result, moved)

    def _ingest_records(self, data, name, kind, sha, source, area_kind, progress) -> BatchResult:
        records = list(_records(data, name, kind, area_kind))
        total = BatchResult()
        ctx = self._contexts.get()
        builder = BatchBuilder(source, "file")
        done = 0
        for record, raw, from_text in records:
            if isinstance(record, dict) and "__ragged__" in record:
                builder.reject("malformed_csv", record["__ragged__"], raw, kind=kind)
            elif isinstance(record, dict) and "__bad_json__" in record:
                builder.reject("malformed_json", record["__bad_json__"], raw, kind=kind)
            else:
                builder.add(kind, record, raw, ctx, from_text=from_text)
            done += 1
            if len(builder) >= self._batch_rows:
                total = total + self._store.write_batch(builder.build()).result()
                builder = BatchBuilder(source, "file")
                if progress:
                    progress(name, done, len(records))
        # The file is marked as ingested only with its last batch: a crash part-way means the next
        # run re-reads it, and the rows already stored count as duplicates.
        total = total + self._store.write_batch(builder.build(file_sha256=sha, file_name=name)).result()
        if progress:
            progress(name, done, len(records))
        if kind in REGISTRY_KINDS:
            self._contexts.invalidate()
        return total

    @staticmethod
    def _move(path: Path, inbox: Path, where: str, reason: str | None = None) -> Path:
        target_dir = Path(inbox) / where
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        n = 1
        while target.exists():  # never overwrite an earlier file of the same name
            target = target_dir / f"{path.stem}.{n}{path.suffix}"
            n += 1
        shutil.move(str(path), target)
        if reason is not None:
            target.with_name(target.name + ".reason.txt").write_text(reason, encoding="utf-8")
        return target

    def ingest_paths(self, paths: list[Path], *, progress: ProgressFn | None = None) -> list[FileResult]:
        """Ingest files (folders are expanded) in dependency order: registries first."""
        files: list[Path] = []
        for p in map(Path, paths):
            files.extend(sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])
        return [self.ingest_file(f, progress=progress) for f in order_files(files)]

    def ingest_inbox(self, inbox: Path) -> list[FileResult]:
        """Ingest every file waiting in the inbox (not in its processed/ or rejected/)."""
        inbox = Path(inbox)
        files = [p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")] if inbox.exists() else []
        return [self.ingest_file(f, move_to=inbox) for f in order_files(files)]


def order_files(files: list[Path]) -> list[Path]:
    def rank(p: Path) -> tuple[int, str]:
        kind = kind_from_name(p.name)
        return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), p.name)
    return sorted(files, key=rank)


class InboxWatcher:
    """Polls the inbox folder while the server runs. Polling (not inotify) works on network shares too."""

    def __init__(self, ingestor: FileIngestor, inbox: Path, interval_s: float):
        self._ingestor, self._inbox, self._interval = ingestor, Path(inbox), interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)

    def start(self) -> "InboxWatcher":
        self._inbox.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                for r in self._ingestor.ingest_inbox(self._inbox):
                    log.info("inbox %s: %s", r.path.name, r.error or r.result)
            except Exception:  # keep watching: one bad file must not stop the inbox
                log.exception("inbox pass failed")
