"""File ingest: CSV, JSON, NDJSON and GeoJSON files, one-shot or from a watched inbox folder.

The kind of record comes from the file name's first word (``cases-2026-11-01.csv`` holds cases;
see ingest.records.KIND_BY_PLURAL), or from a GeoJSON FeatureCollection (areas). A file is
identified by the SHA-256 of its bytes, so the same file dropped twice changes nothing.

Each record is judged on its own (ingest.batch.BatchBuilder): a bad one is quarantined with its
raw text and the rest of the file is still read. A file that cannot be read at all goes to
``rejected/`` with a ``.reason.txt`` beside it and a quarantine row holding its first bytes; a
readable file goes to ``processed/`` even if some of its records were quarantined.

Only finished regular files are read (docs/ingest.md, "Files"):

- ``NAME.part`` is being written and is never taken; ``NAME.done`` beside NAME says NAME is
  finished, and it is taken at once. Any other file is taken once it has stayed the same (size,
  mtime, inode) for ``ingest.settle_s``, seen on consecutive passes (InboxTracker).
- A symbolic link, FIFO, device or a folder with a data suffix is never read: it is moved aside to
  ``rejected/`` as itself (``not_regular_file``). Files are opened with O_NOFOLLOW and checked
  with fstat, so a file swapped for a link between the listing and the open is refused too.

Memory stays bounded whatever the file's size: CSV and NDJSON are read line by line and stored in
batches of ``ingest.batch_max_rows``; the SHA-256 (and a UTF-8 check) is computed in a first
streaming read. JSON and GeoJSON documents are parsed whole and so have their own, smaller cap
(``ingest.max_document_bytes``); every file has ``ingest.max_file_bytes``, and every record
``ingest.max_payload_bytes`` (an area's polygon: the document cap).
"""
from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ingest import bulk_readings
from ingest.batch import REGISTRY_KINDS, BatchBuilder, commit_batch, commit_rows_one_by_one, describe_exception
from ingest.context import ContextProvider
from ingest.fhir import ingest_fhir_document, is_fhir_document, may_be_fhir
from ingest.jsontext import DuplicateKey, loads_strict
from ingest.records import KIND_BY_PLURAL, KIND_ORDER, Reject
from settings import AreaLayer, IngestConfig
from store import BatchResult, Store, StoreClosed
from store.row_hash import with_reading_hashes
from store.store import IngestBatch, QuarantineRow

log = logging.getLogger(__name__)
SUFFIXES = (".csv", ".json", ".ndjson", ".jsonl", ".geojson")
PART_SUFFIX = ".part"  # NAME.part is still being written: never taken (rename it to NAME when done)
DONE_SUFFIX = ".done"  # NAME.done beside NAME: NAME is complete, take it now (the marker is removed)
INBOX_FOLDERS = ("processed", "rejected")  # the inbox's own: never taken, whatever they are
# Raw bytes kept in the quarantine for a file that is rejected whole: enough to see what it was. (Of
# an over-long record, the first record-cap's worth is kept.)
MAX_RAW_KEPT = 1_000_000
# Bytes read at a time while hashing, and characters while skipping an over-long line: large enough
# for the disk to stream, small next to every cap.
READ_CHUNK = 1 << 20
# A file that could not be moved aside is not retried on every pass (hashing it each time would be
# wasted work); it is retried when it changes, or after this long.
STUCK_RETRY_S = 60.0
ProgressFn = Callable[[str, int, int], None]  # (file name, bytes read, file size)
_LINE_ENDS = ("\n", "\r")


class FileRejected(Reject):
    """The whole file cannot be read (not UTF-8, not JSON, unknown kind); ``code`` is a reason code."""


class _FileChanged(Exception):
    """The file changed while it was being read: a writer is still at work."""


class FileNotMoved(OSError):
    """A file was judged but could not be moved to processed/ or rejected/ (it stays in the inbox)."""


@dataclass(frozen=True, slots=True)
class FileResult:
    path: Path
    kind: str | None
    result: BatchResult
    moved_to: Path | None = None
    error: str | None = None
    # A writer changed the file while it was read: it was not marked as ingested and stays where it
    # is, to be read again (rows already stored then count as duplicates).
    changed_while_read: bool = False


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that could not be parsed at all (ragged CSV row, bad JSON line, over-long line)."""
    code: str
    detail: str


def kind_from_name(name: str) -> str | None:
    """``cases-2026.csv`` -> ``case``; ``communities.geojson`` -> ``area``."""
    if name.lower().endswith(".geojson"):
        # A FeatureCollection of areas, except the address gazetteer's points (addresses.geojson).
        return "address" if KIND_BY_PLURAL.get(re.split(r"[-_.\s]", name.lower(), maxsplit=1)[0]) == "address" \
            else "area"
    first = re.split(r"[-_.\s]", name.lower(), maxsplit=1)[0]
    return KIND_BY_PLURAL.get(first)


# A GeoJSON layer's features take their kind from the file name when they do not carry one.
AREA_KIND_BY_NAME = {"boundary": "boundary", "city": "boundary", "communities": "community", "community": "community",
                     "precincts": "precinct", "precinct": "precinct", "districts": "district", "district": "district"}


def area_kind_from_name(name: str) -> str | None:
    return AREA_KIND_BY_NAME.get(re.split(r"[-_.\s]", name.lower(), maxsplit=1)[0])


# ---- opening: regular files only, never through a link ---------------------------------------------
def _not_regular(st: os.stat_result) -> str | None:
    """What an entry is, if it is not a regular file (None for a regular file); from lstat."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are never followed: put the file itself in the inbox)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular_file(path: Path) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without following a link; raise FileRejected for anything else.

    lstat first, so that a FIFO or a device is never opened (opening one can block or act); then
    O_NOFOLLOW and fstat, so that an entry swapped for a link or a FIFO in between is refused too.
    O_NONBLOCK keeps that open from hanging on a FIFO; it is cleared once we know it is a file.
    """
    what = _not_regular(os.lstat(path))
    if what:
        raise FileRejected("not_regular_file", f"{path.name} is {what}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # what O_NOFOLLOW says of a link
            raise FileRejected("not_regular_file", f"{path.name} is {_not_regular(os.lstat(path))}") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileRejected("not_regular_file", f"{path.name} is {_not_regular(st)}")
    os.set_blocking(fd, True)
    return fd, st


@dataclass(frozen=True, slots=True)
class _Scan:
    sha256: str
    head: bytes  # the first bytes, to tell a FHIR resource from a list of records
    first_non_utf8: int | None  # offset of the first byte that is not UTF-8, if any
    # Every line ends in \n or \r\n, each READ_CHUNK holds a line end (so no line is over two chunks
    # long), and no quote character or NUL byte: a CSV whose lines are its records
    # (ingest.bulk_readings reads such a readings file with column expressions).
    plain_lines: bool = False


class _OpenedFile:
    """One file being ingested. It is opened once and never again by name, so what is hashed is what is parsed."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.stat: os.stat_result | None = None
        self.sha256: str | None = None

    def open(self) -> None:
        self.fd, self.stat = open_regular_file(self.path)

    @property
    def size(self) -> int:
        return self.stat.st_size

    def scan(self) -> _Scan:
        """Hash the whole file and find its first non-UTF-8 byte, in one streaming read."""
        sha = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, head, first_bad = 0, b"", None
        plain, cr_open = True, False  # cr_open: the chunk before ended in \r
        os.lseek(self.fd, 0, os.SEEK_SET)
        while chunk := os.read(self.fd, READ_CHUNK):
            sha.update(chunk)
            if plain:
                lone_cr = chunk.count(b"\r") - chunk.count(b"\r\n") - chunk.endswith(b"\r")
                plain = not (lone_cr or (cr_open and not chunk.startswith(b"\n")) or b'"' in chunk
                             or b"\0" in chunk or (len(chunk) == READ_CHUNK and b"\n" not in chunk))
                cr_open = chunk.endswith(b"\r")
            head = head or chunk[:4096]
            if first_bad is None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    first_bad = max(0, offset + exc.start - len(decoder.getstate()[0]))
            offset += len(chunk)
        if first_bad is None:
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                first_bad = offset - pending  # the file ends in the middle of a character
        self.sha256 = sha.hexdigest()
        return _Scan(self.sha256, head, first_bad, plain and not cr_open)

    def text(self) -> TextIO:
        """The file as text from its start. newline="" as the csv module asks (it handles CRLF itself)."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        return open(self.fd, encoding="utf-8-sig", newline="", closefd=False)  # noqa: SIM115 (closed by caller)

    def read_all(self) -> bytes:
        os.lseek(self.fd, 0, os.SEEK_SET)
        with open(self.fd, "rb", closefd=False) as f:
            return f.read()

    def position(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def unchanged(self) -> bool:
        """Whether the file still has the size and mtime it had when opened."""
        now = os.fstat(self.fd)
        return (now.st_size, now.st_mtime_ns) == (self.stat.st_size, self.stat.st_mtime_ns)

    def kept_bytes(self) -> bytes:
        """The bytes the quarantine keeps of a rejected file: its start; for a link, the path it names."""
        if self.fd is not None:
            return os.pread(self.fd, MAX_RAW_KEPT, 0)
        try:
            if stat.S_ISLNK(os.lstat(self.path).st_mode):
                return os.fsencode(os.readlink(self.path))  # where it points, never what is there
        except OSError:
            pass
        return b""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ---- records, streamed -------------------------------------------------------------------------------
def _read_line(text: TextIO, limit: int) -> tuple[str, int, bool]:
    """The next physical line as (text, length, too_long).

    A line of at most ``limit`` characters (not counting its ending) comes back whole, ending
    included. A longer one is read to its end in chunks, never held whole: only its first ``limit``
    characters come back, with ``too_long`` set. At the end of the file the text is "".
    """
    line = text.readline(limit)
    if len(line) < limit or line.endswith(_LINE_ENDS):
        return line, len(line), False
    rest = text.readline(READ_CHUNK)
    if not rest or rest in ("\n", "\r", "\r\n"):  # exactly ``limit`` characters long
        return line + rest, len(line) + len(rest), False
    length = len(line) + len(rest)
    while not rest.endswith(_LINE_ENDS):
        rest = text.readline(READ_CHUNK)
        if not rest:
            break
        length += len(rest)
    return line, length, True


def _without_line_end(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith(_LINE_ENDS) else text


class _RecordLines:
    """Feeds csv.reader one physical line at a time and keeps the text of the record being read.

    csv.reader pulls lines until a record is complete (a quoted field may span lines), so after
    each record take() returns exactly its text, and the quarantine keeps a bad row as it was
    written. A line longer than the record cap is not handed to csv (it would be held whole): csv
    sees an empty line in its place, and take() reports the record as too long. Of a record that
    is too long, the first ``max_chars`` characters are kept.
    """

    def __init__(self, text: TextIO, max_chars: int):
        self._text = text
        self._max = max_chars
        self._reset()

    def _reset(self) -> None:
        self._parts: list[str] = []
        self._kept = 0
        self._length = 0
        self._too_long = False

    def __iter__(self) -> "_RecordLines":
        return self

    def __next__(self) -> str:
        line, length, too_long = _read_line(self._text, self._max)
        if not line:
            raise StopIteration
        self._length += length
        if self._kept < self._max:
            self._parts.append(line[:self._max - self._kept])
            self._kept += len(self._parts[-1])
        if too_long or self._length > self._max:
            self._too_long = True
        return "\n" if too_long else line

    def take(self) -> tuple[bytes, int, bool]:
        """The record just read: (its text as UTF-8, its length in characters, whether it is too long)."""
        raw = _without_line_end("".join(self._parts)).encode("utf-8")
        length, too_long = self._length, self._too_long
        self._reset()
        return raw, length, too_long


def _too_long(length: int, cap: int) -> Unreadable:
    return Unreadable("payload_too_large", f"a record of {length:,} characters; the limit is {cap:,} bytes "
                      "(ingest.max_payload_bytes; for areas ingest.max_document_bytes)")


def _csv_records(text: TextIO, record_cap: int) -> Iterator[tuple[dict | Unreadable, bytes]]:
    """(record, raw) for every row after the header; a row that cannot be parsed is an Unreadable."""
    lines = _RecordLines(text, record_cap)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise FileRejected("malformed_csv", "the file is empty") from None
    except csv.Error as exc:
        raise FileRejected("malformed_csv", f"the header: {exc}") from None
    if lines.take()[2]:
        raise FileRejected("malformed_csv", "the header line is longer than a record may be")
    header = [h.strip() for h in header]
    repeated = next((h for i, h in enumerate(header) if h in header[:i]), None)
    if repeated is not None:
        raise FileRejected("duplicate_key", f"the header names {repeated!r:.60} twice")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on with the next line
            raw, length, too_long = lines.take()
            yield (_too_long(length, record_cap) if too_long
                   else Unreadable("malformed_csv", f"line {reader.line_num}: {exc}")), raw
            continue
        raw, length, too_long = lines.take()
        if too_long:
            yield _too_long(length, record_cap), raw
        elif not values:
            continue  # a blank line
        elif len(values) != len(header):
            yield Unreadable("malformed_csv", f"line {reader.line_num}: {len(values)} values for "
                             f"{len(header)} columns"), raw
        else:
            yield dict(zip(header, values)), raw


def _ndjson_records(text: TextIO, record_cap: int) -> Iterator[tuple[Any, bytes]]:
    """(record, raw) for every non-blank line; a line that is not one JSON value is an Unreadable."""
    while True:
        line, length, too_long = _read_line(text, record_cap)
        if not line:
            return
        if too_long:
            yield _too_long(length, record_cap), line.encode("utf-8")  # its first record_cap characters
            continue
        body = _without_line_end(line)
        if not body.strip():
            continue
        raw = body.encode("utf-8")
        try:
            yield loads_strict(body), raw
        except DuplicateKey as exc:
            yield Unreadable("duplicate_key", str(exc)), raw
        except (ValueError, RecursionError) as exc:  # deeply nested JSON overflows the parser
            yield Unreadable("malformed_json", str(exc)[:300] or "nested too deeply"), raw


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def layer_record(props: dict, geometry: Any, layer: AreaLayer) -> dict:
    """An area record of a configured layer's feature: its fields read through the layer's property
    names, everything else the publisher attached (shape lengths, boroughs...) left in the raw payload."""
    raw_id = props.get(layer.id_property)
    area_id = None if raw_id is None or str(raw_id).strip() == "" else f"{layer.id_prefix}{str(raw_id).strip()}"
    name = props.get(layer.name_property)
    record = {"area_id": area_id, "kind": layer.kind, "geometry": geometry,
              "name": str(name) if name not in (None, "") else (f"{layer.label} {raw_id}" if area_id else None)}
    if layer.population_property and props.get(layer.population_property) is not None:
        record["population"] = props[layer.population_property]
    return record


def _document_records(doc: Any, name: str, area_kind: str | None,
                      layer: AreaLayer | None = None) -> Iterator[tuple[Any, bytes]]:
    """(record, raw) of a parsed JSON document: a list of records, {"records": [...]}, or a FeatureCollection.

    A FeatureCollection of a configured layer (``layer``) is read through its property names; one
    dropped in the inbox must already use pheoc's own field names.
    """
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        area_kind = area_kind or area_kind_from_name(name)
        features = doc.get("features") or []
        if not isinstance(features, list):
            raise FileRejected("not_an_object", "a FeatureCollection's features must be a list")
        for feature in features:
            raw = _json_bytes(feature)
            if not isinstance(feature, dict) or not isinstance(feature.get("properties"), (dict, type(None))):
                yield Unreadable("not_an_object", "a feature must be an object with object properties"), raw
                continue
            props = dict(feature.get("properties") or {})
            if layer is not None:
                yield layer_record(props, feature.get("geometry"), layer), raw
                continue
            if area_kind and "kind" not in props:
                props["kind"] = area_kind
            props["geometry"] = feature.get("geometry")
            yield props, raw
        return
    records = doc.get("records") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise FileRejected("not_an_object", "a JSON file holds a list of records or {\"records\": [...]}")
    for rec in records:
        yield rec, _json_bytes(rec)


# ---- the ingestor --------------------------------------------------------------------------------------
class FileIngestor:
    """Ingests files through validation into the store; owns the inbox's processed/ and rejected/."""

    def __init__(self, store: Store, contexts: ContextProvider, batch_rows: int = 5000,
                 config: IngestConfig | None = None, *, bulk_readings: bool = True):
        self._store = store
        self._contexts = contexts
        self._batch_rows = batch_rows
        # Readings CSVs through column expressions (ingest.bulk_readings); False: every record through
        # the record validator (the baseline bench/scale.py measures, and what the parity test compares).
        self._bulk_readings = bulk_readings
        self.config = config or contexts.settings.ingest
        # csv refuses a field longer than its limit (128 KiB by default) with an error; records are
        # measured against their own caps here instead, so the limit only has to let the largest
        # record through. It is process-wide, so it is only ever raised.
        csv.field_size_limit(max(csv.field_size_limit(), self._record_cap("area") + 1))

    def _record_cap(self, kind: str | None) -> int:
        # An area's polygon can be megabytes (a real community boundary); other records are a line of values.
        return self.config.max_document_bytes if kind == "area" else self.config.max_payload_bytes

    def ingest_file(self, path: Path, *, move_to: Path | None = None, area_kind: str | None = None,
                    layer: AreaLayer | None = None, progress: ProgressFn | None = None) -> FileResult:
        """Ingest one file. With ``move_to`` (an inbox), move it to processed/ or rejected/ after.

        ``area_kind`` gives a GeoJSON file's features the kind they do not carry; ``layer`` (a
        configured city.area_layers entry) says how its features name their fields.

        Whatever is in the file, the answer is a FileResult (an unforeseen error rejects the file
        with ``unexpected_error``). Raises StoreClosed while shutting down, FileNotFoundError if the
        file is gone, and FileNotMoved if it could not be moved aside.
        """
        path = Path(path)
        kind = kind_from_name(path.name)
        file = _OpenedFile(path)
        try:
            return self._ingest(file, kind, move_to, layer.kind if layer else area_kind, layer, progress)
        except FileRejected as rej:
            return self._reject_file(file, kind, rej.code, rej.detail, move_to)
        except _FileChanged:
            log.info("%s changed while it was read; it stays for the next pass", path.name)
            return FileResult(path, kind, BatchResult(), changed_while_read=True)
        except (StoreClosed, FileNotMoved):
            raise
        except Exception as exc:  # a bug, or a file shaped as nobody foresaw: put it aside and go on
            if isinstance(exc, FileNotFoundError) and not os.path.lexists(path):
                raise  # gone between the listing and now: nothing left to judge
            log.exception("ingesting %s failed", path.name)
            return self._reject_file(file, kind, "unexpected_error", describe_exception(exc), move_to)
        finally:
            file.close()

    def _ingest(self, file: _OpenedFile, kind: str | None, move_to: Path | None, area_kind: str | None,
                layer: AreaLayer | None, progress: ProgressFn | None) -> FileResult:
        path = file.path
        file.open()
        if file.size > self.config.max_file_bytes:
            raise FileRejected("file_too_large", f"{file.size:,} bytes; the limit is ingest.max_file_bytes "
                               f"({self.config.max_file_bytes:,})")
        scan = file.scan()
        if self._store.scalar("SELECT count(*) FROM ingested_files WHERE sha256 = ?", [scan.sha256]):
            return self._done(path, kind, BatchResult(skipped_file=True), move_to)
        source = f"file:{path.name}"
        doc = None
        if may_be_fhir(path.name, scan.head):  # HL7 FHIR SANER: the kind is inside the file
            doc = self._read_document(file, scan)
            if is_fhir_document(doc):
                result = ingest_fhir_document(doc, self._store, self._contexts, source, file_sha256=scan.sha256,
                                              file_name=path.name)
                return self._done(path, "capacity", result, move_to)
        if kind is None:
            raise FileRejected("unknown_kind", f"file name {path.name!r} does not start with one of "
                               f"{', '.join(sorted(KIND_BY_PLURAL))}")
        lower = path.name.lower()
        if not lower.endswith(SUFFIXES):
            raise FileRejected("unknown_kind", f"unsupported file type {path.suffix!r}")
        if scan.first_non_utf8 is not None:
            raise FileRejected("not_utf8", f"byte {scan.first_non_utf8} is not UTF-8")
        bulk = None
        if self._bulk_readings and kind == "reading" and lower.endswith(".csv") and scan.plain_lines:
            bulk = self._store_bulk_readings(file, source, progress)
        if bulk is not None:
            result, unchanged = bulk
        elif lower.endswith((".csv", ".ndjson", ".jsonl")):
            with file.text() as text:
                records = (_csv_records if lower.endswith(".csv") else _ndjson_records)(text, self._record_cap(kind))
                result, unchanged = self._store_records(file, records, kind, lower.endswith(".csv"), source,
                                                        progress)
        else:
            doc = doc if doc is not None else self._read_document(file, scan)
            result, unchanged = self._store_records(file, _document_records(doc, path.name, area_kind, layer), kind,
                                                    False, source, progress)
        if not unchanged:
            log.info("%s changed while it was read; it stays for the next pass", path.name)
            return FileResult(path, kind, result, changed_while_read=True)
        return self._done(path, kind, result, move_to)

    def _read_document(self, file: _OpenedFile, scan: _Scan) -> Any:
        """Parse a JSON or GeoJSON file whole (there is no streaming JSON parser in the standard library)."""
        if file.size > self.config.max_document_bytes:
            raise FileRejected("file_too_large", f"{file.size:,} bytes; JSON and GeoJSON files are read whole, up "
                               f"to ingest.max_document_bytes ({self.config.max_document_bytes:,}): send bulk "
                               "records as CSV or NDJSON")
        if scan.first_non_utf8 is not None:
            raise FileRejected("not_utf8", f"byte {scan.first_non_utf8} is not UTF-8")
        data = file.read_all()
        if not file.unchanged():
            raise _FileChanged()
        try:
            return loads_strict(data.decode("utf-8-sig"))
        except DuplicateKey as exc:  # which record holds it is not known without a second parser: the whole file
            raise FileRejected("duplicate_key", str(exc)) from None
        except (ValueError, RecursionError) as exc:  # deeply nested JSON overflows the parser
            raise FileRejected("malformed_json", str(exc)[:300] or "nested too deeply") from None

    def _store_records(self, file: _OpenedFile, records: Iterator[tuple[Any, bytes]], kind: str, from_text: bool,
                       source: str, progress: ProgressFn | None) -> tuple[BatchResult, bool]:
        """Judge and store the records batch by batch; return the total and whether the file stayed unchanged."""
        cap = self._record_cap(kind)
        total = BatchResult()
        builder = BatchBuilder(source, "file")
        ctx = self._contexts.get()
        for record, raw in records:
            if isinstance(record, Unreadable):
                builder.reject(record.code, record.detail, raw, kind=kind)
            elif len(raw) > cap:
                builder.reject("payload_too_large", f"{len(raw):,} bytes; the limit is {cap:,}", raw[:cap], kind=kind)
            else:
                builder.add(kind, record, raw, ctx, from_text=from_text)
            if len(builder) >= self._batch_rows:
                total = total + commit_batch(self._store, builder.build())
                builder = BatchBuilder(source, "file")
                ctx = self._contexts.get()
                if progress:
                    progress(file.path.name, file.position(), file.size)
        # The file is marked as ingested only with its last batch: a crash part-way means the next
        # run re-reads it, and the rows already stored count as duplicates. A file that changed while
        # it was read is not marked, so that it is read again once its writer has finished.
        unchanged = file.unchanged()
        mark = file.sha256 if unchanged else None
        total = total + commit_batch(self._store, builder.build(file_sha256=mark, file_name=file.path.name))
        if progress:
            progress(file.path.name, file.size, file.size)
        if kind in REGISTRY_KINDS:
            self._contexts.invalidate()
        return total, unchanged

    def _store_bulk_readings(self, file: _OpenedFile, source: str,
                             progress: ProgressFn | None) -> tuple[BatchResult, bool] | None:
        """A readings CSV of plain lines, a block at a time through column expressions (ingest.bulk_readings).

        None when its header is not plain (too long, not ASCII, a name twice, no line end): then the
        per-record path reads the file and says what is wrong with it. While the writer stores one
        block the next is validated (two cores); at most two blocks are held. The file is marked as
        ingested with its last block, as on the per-record path.
        """
        cap = self._record_cap("reading")
        start = len(codecs.BOM_UTF8) if os.pread(file.fd, 3, 0) == codecs.BOM_UTF8 else 0
        first = os.pread(file.fd, cap + 2, start)
        end = first.find(b"\n") + 1
        if end == 0 or end > cap:
            return None
        header = bulk_readings.read_header(first[:end].decode("utf-8"))
        if header is None:
            return None

        def replay(text: str):  # one line as the per-record path reads it
            return next(_csv_records(io.StringIO(text, newline=""), cap))

        total = BatchResult()
        pending: tuple[Any, IngestBatch] | None = None
        pos, line, size = start + end, 2, file.size
        while True:
            data = os.pread(file.fd, bulk_readings.BLOCK_BYTES, pos) if pos < size else b""
            while pos + len(data) < size and b"\n" not in data and len(data) <= 2 * READ_CHUNK:
                data += os.pread(file.fd, READ_CHUNK, pos + len(data))  # a line longer than the block
            if pos + len(data) < size:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # the scan found a line end in every chunk: the file changed since
                    raise _FileChanged()
                data = data[:cut]
            pos += len(data)
            last = pos >= size
            verdict = bulk_readings.judge_block(data, line, header, self._contexts.get(), cap, replay) \
                if data else None
            # hashed here, while the writer stores the block before (store/row_hash.py)
            rows = {"reading": with_reading_hashes(verdict.accepted)} \
                if verdict and verdict.accepted is not None else {}
            rejects = tuple(QuarantineRow(source, code, detail, raw, "reading")
                            for _, code, detail, raw in sorted(verdict.rejects)) if verdict else ()
            if verdict:
                line += verdict.lines
            if pending is not None:
                total = total + self._finish_bulk(*pending)
                pending = None
            if last:
                unchanged = file.unchanged()
                batch = IngestBatch(source, "file", rows, rejects, file_sha256=file.sha256 if unchanged else None,
                                    file_name=file.path.name)
                total = total + self._finish_bulk(self._store.write_batch(batch), batch)
                break
            batch = IngestBatch(source, "file", rows, rejects)
            pending = (self._store.write_batch(batch), batch)
            if progress:
                progress(file.path.name, pos, size)
        if progress:
            progress(file.path.name, size, size)
        return total, unchanged

    def _finish_bulk(self, future, batch: IngestBatch) -> BatchResult:
        """A bulk block's commit; if the store refuses it, its rows one at a time (as commit_batch does)."""
        try:
            return future.result()
        except StoreClosed:
            raise
        except Exception as exc:
            log.warning("the store refused a block of %s (%s); storing its rows one by one", batch.source,
                        type(exc).__name__)
            frames = {k: t.drop_columns(["__row"]).to_pandas() for k, t in batch.rows_by_kind.items()}
            return commit_rows_one_by_one(self._store, IngestBatch(
                batch.source, batch.channel, frames, batch.quarantined, batch.file_sha256, batch.file_name))

    def _done(self, path: Path, kind: str | None, result: BatchResult, move_to: Path | None) -> FileResult:
        moved = self._move(path, move_to, "processed") if move_to else None
        return FileResult(path, kind, result, moved)

    def _reject_file(self, file: _OpenedFile, kind: str | None, code: str, detail: str,
                     move_to: Path | None) -> FileResult:
        """Move a whole file to rejected/ with a .reason.txt, and quarantine its first bytes.

        Moved first: if it cannot be moved (OSError), nothing is written, so the retry of a stuck
        file does not add a quarantine row each time.
        """
        path = file.path
        raw = file.kept_bytes()  # before the move: a link is read by its name
        moved = self._move(path, move_to, "rejected", f"{code}: {detail}\n") if move_to else None
        builder = BatchBuilder(f"file:{path.name}", "file")
        builder.reject(code, detail, raw, kind=kind, record_key=path.name)
        # Marked as ingested (a second drop is skipped) unless pheoc itself failed: once that is
        # fixed, the same file dropped again must be read.
        mark = file.sha256 if code != "unexpected_error" else None
        try:
            result = commit_batch(self._store, builder.build(file_sha256=mark, file_name=path.name))
        except StoreClosed:
            raise
        except Exception:  # the file and its reason are in rejected/ all the same
            log.exception("could not quarantine %s", path.name)
            result = BatchResult(rejected=1)
        return FileResult(path, kind, result, moved, error=f"{code}: {detail}")

    @staticmethod
    def _move(path: Path, inbox: Path, where: str, reason: str | None = None) -> Path:
        try:
            target_dir = Path(inbox) / where
            target_dir.mkdir(parents=True, exist_ok=True)
            target = _free_name(target_dir, path, with_reason=reason is not None)
            if stat.S_ISREG(os.lstat(path).st_mode):
                shutil.move(str(path), target)
            else:
                os.rename(path, target)  # a link or FIFO moves as itself: never copied, which would read it
        except OSError as exc:
            raise FileNotMoved(exc.errno, f"{path.name} could not be moved to {where}/: {exc.strerror}") from exc
        if reason is not None:
            try:
                _write_new_file(target.with_name(target.name + ".reason.txt"), reason)
            except OSError:  # the file is aside all the same; its reason is in the quarantine too
                log.exception("inbox: could not write the reason for %s", target.name)
        return target

    # ---- many files ----------------------------------------------------------------------------------
    def ingest_paths(self, paths: list[Path], *, progress: ProgressFn | None = None) -> list[FileResult]:
        """Ingest files (folders are expanded, links refused) in dependency order: registries first."""
        files: list[Path] = []
        for p in map(Path, paths):
            files.extend(_entries_under(p) if p.is_dir() and not p.is_symlink() else [p])
        return [self.ingest_file(f, progress=progress) for f in order_files(files)]

    def ingest_inbox(self, inbox: Path) -> list[FileResult]:
        """Ingest every file waiting in the inbox now, without waiting for files to settle (one-shot)."""
        return self.run_inbox_pass(inbox).results

    def run_inbox_pass(self, inbox: Path, tracker: InboxTracker | None = None) -> InboxPass:
        """One look at the inbox: refuse what is not a regular file, take the finished files.

        With a tracker (the watcher's), a file is taken when it has settled or has a .done marker;
        without one, every regular file is taken now. One file's failure never stops the pass.
        """
        inbox = Path(inbox)
        found = _list_inbox(inbox)
        waiting = list(found.parts)
        ready = [p for p, _ in found.refused]  # refused at once, without waiting
        for path, st in found.files:
            marked = path.name + DONE_SUFFIX in found.markers
            if tracker is None or marked or tracker.settled(path.name, st):
                ready.append(path)
            else:
                waiting.append(path)
        done = InboxPass(waiting=waiting)
        signatures = {p.name: _signature(st) for p, st in (*found.files, *found.refused)}
        for path in order_files(ready):
            if tracker is not None and tracker.is_stuck(path.name, signatures[path.name]):
                done.stuck.append(path)
                continue
            try:
                result = self.ingest_file(path, move_to=inbox)
            except StoreClosed:
                raise
            except Exception as exc:  # never one file's problem for the whole pass
                if not os.path.lexists(path):
                    continue  # taken away by someone else meanwhile
                # it could not be moved aside: it stays, and is not retried at once
                log.exception("inbox: %s could not be moved aside", path.name)
                done.stuck.append(path)
                done.errors.append(f"{path.name}: {type(exc).__name__}")
                if tracker is not None:
                    tracker.mark_stuck(path.name, signatures[path.name])
                continue
            done.results.append(result)
            if result.changed_while_read:
                waiting.append(path)
            elif path.name + DONE_SUFFIX in found.markers:
                _remove_marker(inbox / (path.name + DONE_SUFFIX))
        if tracker is not None:
            tracker.forget_all_but(set(signatures))
        return done


def order_files(files: list[Path]) -> list[Path]:
    def rank(p: Path) -> tuple[int, str]:
        kind = kind_from_name(p.name)
        return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), p.name)
    return sorted(files, key=rank)


def _is_part_or_marker(name: str) -> bool:
    return name.endswith((PART_SUFFIX, DONE_SUFFIX))


def _entries_under(folder: Path) -> list[Path]:
    """Every entry under a folder that is not itself a folder (links and FIFOs too, for ingest_file to
    refuse); links to folders are listed, not followed. .part files and .done markers are left out."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):  # followlinks=False
        out.extend(Path(dirpath, d) for d in dirnames if os.path.islink(os.path.join(dirpath, d)))
        out.extend(Path(dirpath, f) for f in filenames if not _is_part_or_marker(f))
    return sorted(out)


@dataclass
class _InboxListing:
    files: list[tuple[Path, os.stat_result]] = field(default_factory=list)  # regular files
    refused: list[tuple[Path, os.stat_result]] = field(default_factory=list)  # links, FIFOs, data-named folders
    parts: list[Path] = field(default_factory=list)  # NAME.part, still being written
    markers: set[str] = field(default_factory=set)  # names of NAME.done markers


def _list_inbox(inbox: Path) -> _InboxListing:
    """The inbox's entries by what they are (from lstat: nothing is opened or followed here)."""
    found = _InboxListing()
    if not inbox.is_dir():
        return found
    with os.scandir(inbox) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in INBOX_FOLDERS:
                continue
            if name.endswith(PART_SUFFIX):
                found.parts.append(Path(entry.path))
                continue
            if name.endswith(DONE_SUFFIX):
                found.markers.add(name)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.files.append((Path(entry.path), st))
            elif not stat.S_ISDIR(st.st_mode) or name.lower().endswith(SUFFIXES):
                found.refused.append((Path(entry.path), st))  # a folder without a data suffix is a person's own
    return found


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _free_name(folder: Path, path: Path, *, with_reason: bool) -> Path:
    """A name in ``folder`` that nothing has (lexists: a dangling link counts): earlier files are never overwritten."""
    target, n = folder / path.name, 1
    while os.path.lexists(target) or (with_reason and os.path.lexists(target.with_name(target.name + ".reason.txt"))):
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    return target


def _write_new_file(path: Path, text: str) -> None:
    """Create a new file (never through a link someone left in its place)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _remove_marker(marker: Path) -> None:
    try:
        os.unlink(marker)  # unlink removes a link itself, not what it points to
    except OSError as exc:
        log.warning("inbox: could not remove the marker %s: %s", marker.name, exc)


# ---- watching ------------------------------------------------------------------------------------------
@dataclass
class InboxPass:
    """What one look at the inbox did."""
    results: list[FileResult] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)  # .part files, and files not settled yet
    stuck: list[Path] = field(default_factory=list)  # files that could not be moved aside
    errors: list[str] = field(default_factory=list)  # "name: ExceptionType", nothing from the file


class InboxTracker:
    """What the watcher remembers between passes: how each waiting file looked, and which are stuck.

    Polling cannot see a writer, only a file that grows: a file is taken once it has had the same
    size, mtime and inode on consecutive passes for ``settle_s`` (with settle_s 0: on two passes in
    a row). Times are this process's monotonic clock, not the file's mtime, which on a network
    share comes from another machine's clock.
    """

    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic):
        self.settle_s = settle_s
        self._clock = clock
        self._seen: dict[str, tuple[tuple[int, int, int], float]] = {}  # name -> (signature, first seen)
        self._stuck: dict[str, tuple[tuple[int, int, int], float]] = {}  # name -> (signature, since)

    def settled(self, name: str, st: os.stat_result) -> bool:
        signature, now = _signature(st), self._clock()
        seen = self._seen.get(name)
        if seen is None or seen[0] != signature:
            self._seen[name] = (signature, now)
            return False
        return now - seen[1] >= self.settle_s

    def is_stuck(self, name: str, signature: tuple[int, int, int]) -> bool:
        stuck = self._stuck.get(name)
        if stuck is None:
            return False
        if stuck[0] != signature or self._clock() - stuck[1] >= STUCK_RETRY_S:
            del self._stuck[name]  # changed, or time to try again
            return False
        return True

    def mark_stuck(self, name: str, signature: tuple[int, int, int]) -> None:
        self._stuck[name] = (signature, self._clock())

    def forget_all_but(self, names: set[str]) -> None:
        """Forget files that are no longer in the inbox."""
        for memory in (self._seen, self._stuck):
            for name in [n for n in memory if n not in names]:
                del memory[name]


class InboxWatcher:
    """Polls the inbox folder while the server runs. Polling (not inotify) works on network shares too."""

    def __init__(self, ingestor: FileIngestor, inbox: Path, interval_s: float, settle_s: float | None = None):
        self._ingestor, self._inbox, self._interval = ingestor, Path(inbox), interval_s
        self._tracker = InboxTracker(ingestor.config.settle_s if settle_s is None else settle_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)
        self._lock = threading.Lock()
        self._passes = 0
        self._last_pass_at: str | None = None
        self._last_pass_ok = True
        self._last_error: str | None = None
        self._waiting = self._stuck = self._done = self._rejected = 0

    def start(self) -> "InboxWatcher":
        self._inbox.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_pass(self) -> InboxPass | None:
        """One look at the inbox (the thread does this every interval_s); never raises."""
        try:
            done = self._ingestor.run_inbox_pass(self._inbox, self._tracker)
        except StoreClosed:
            return None  # shutting down
        except Exception as exc:
            log.exception("inbox pass failed")
            with self._lock:
                self._passes += 1
                self._last_pass_at = _now_iso()
                self._last_pass_ok = False
                self._last_error = f"inbox pass failed: {type(exc).__name__}"
            return None
        for r in done.results:
            log.info("inbox %s: %s", r.path.name, r.error or r.result)
        with self._lock:
            self._passes += 1
            self._last_pass_at = _now_iso()
            self._last_pass_ok = True
            self._waiting, self._stuck = len(done.waiting), len(done.stuck)
            self._done += sum(1 for r in done.results if r.moved_to is not None and r.error is None)
            self._rejected += sum(1 for r in done.results if r.error is not None)
            # Only the file name and the code or exception type: /healthz holds nothing from the files.
            problems = done.errors + [f"{r.path.name}: {r.error.split(':')[0]}" for r in done.results
                                      if r.error and r.error.startswith("unexpected_error")]
            if problems:
                self._last_error = "; ".join(problems)[:300]
        return done

    def health(self) -> dict[str, Any]:
        """For /healthz: not ok when the watcher is not running, the last pass failed or a file is stuck."""
        with self._lock:
            if self._thread.is_alive() and not self._stop.is_set():
                state = "watching"
            elif self._stop.is_set():
                state = "stopped"
            else:
                state = "failed" if self._thread.ident is not None else "not started"
            return {
                "ok": state == "watching" and self._last_pass_ok and self._stuck == 0,
                "state": state,
                "interval_s": self._interval,
                "settle_s": self._tracker.settle_s,
                "passes": self._passes,
                "last_pass_at": self._last_pass_at,
                "last_error": self._last_error,
                "files_waiting": self._waiting,
                "files_stuck": self._stuck,
                "files_done": self._done,
                "files_rejected": self._rejected,
            }

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_pass()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
