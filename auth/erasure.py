"""Erasure of one case on request (GDPR Art. 17; ISO/IEC 5153-1 "complete destruction of data").

`python app.py erase case ID`, run while the server is stopped (one process owns the database):
1. in one transaction: delete the case, its admissions, quarantined records that hold the id, any
   row whose column is the id, rewrite free-text mentions to "[erased]", redact audit records that
   mention it (they keep their digest, so the chain still verifies) and append an ``erasure`` record
   that names the case only by sha256(salt + id); the salt is printed once as the requester's receipt
   and stored nowhere;
2. rewrite the landed raw files (inbox, its processed/ and rejected/, and ``auth.erase_also`` such as
   exports) without the records that hold the id;
3. compact the database into a fresh file and swap it in, so no free block keeps the deleted rows,
   and remove the WAL;
4. search every one of those files byte for byte and report any that still holds the id.
Limits: copies outside these folders (backups, a browser's downloads) are not reached; re-dropping
the original file would ingest the case again.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from settings import Settings
from store import Store
from store import queries_access as qa

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ErasureReport:
    case_digest: str  # sha256(salt + id), as recorded in the audit log
    salt: str  # the receipt: shown once, stored nowhere
    rows_changed: dict[str, int]
    audit_redacted: tuple[int, ...]
    files_rewritten: tuple[Path, ...]
    residual: tuple[Path, ...]  # files that still contain the id's bytes after everything (should be empty)

    @property
    def found(self) -> bool:
        return bool(self.rows_changed or self.audit_redacted or self.files_rewritten)


def _token_pattern(identifier: str) -> re.Pattern[bytes]:
    # The id as a whole token: "DC-1" must not take "DC-12" with it (same rule as in the database).
    return re.compile(rb"(?<![A-Za-z0-9_-])" + re.escape(identifier.encode()) + rb"(?![A-Za-z0-9_-])")


def file_holds_token(path: Path, identifier: str) -> bool:
    return bool(_token_pattern(identifier).search(path.read_bytes()))


def _drop_matching(value, identifier: str):
    """JSON value without the list items (records) that mention the id anywhere inside them."""
    if isinstance(value, list):
        return [_drop_matching(v, identifier) for v in value if identifier not in json.dumps(v, default=str)]
    if isinstance(value, dict):
        return {k: _drop_matching(v, identifier) for k, v in value.items()}
    return value


def scrub_bytes(data: bytes, name: str, identifier: str) -> bytes:
    """A landed file's bytes without the records that hold the id.

    JSON documents lose the list items (records, features) that mention it; then any line that
    still holds it as a whole token goes (CSV rows, NDJSON lines, reason files, unreadable files,
    and a JSON document that is a single record). A longer id that merely contains it ("DC-12" for
    "DC-1") is another case's and stays.
    """
    needle = identifier.encode()
    if needle not in data:
        return data
    out = data
    if name.lower().endswith((".json", ".geojson")):
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        if doc is not None:
            out = json.dumps(_drop_matching(doc, identifier), separators=(",", ":"), ensure_ascii=False).encode()
    token = _token_pattern(identifier)
    return b"".join(line for line in out.splitlines(keepends=True) if not token.search(line))


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".erasing")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def landed_files(settings: Settings) -> list[Path]:
    roots = [settings.path(settings.ingest.inbox), *(settings.path(p) for p in settings.auth.erase_also)]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files.extend(p for p in sorted(root.rglob("*")) if p.is_file())
        elif root.is_file():
            files.append(root)
    return files


def database_files(db: Path) -> list[Path]:
    return [p for p in (db, db.with_name(db.name + ".wal"), qa.audit_anchor_path(db)) if p.exists()]


def file_contains(path: Path, needle: bytes) -> bool:
    """Byte search that reads in chunks (databases can be large), overlapping at chunk edges."""
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            if needle in tail + chunk:
                return True
            tail = chunk[-(len(needle) - 1):] if len(needle) > 1 else b""
    return False


def erase_case(settings: Settings, case_id: str, actor: str) -> ErasureReport:
    """Erase one case everywhere pheoc keeps data (see the module docstring). The server must be stopped."""
    case_id = case_id.strip()
    if len(case_id) < 3:
        raise ValueError("a case id of fewer than 3 characters would match far too much")
    db = settings.path(settings.store.path)
    salt = secrets.token_hex(16)
    digest = hashlib.sha256((salt + case_id).encode()).hexdigest()
    with Store(db, queue_size=settings.store.queue_size) as store:
        now = datetime.now(timezone.utc)

        def remove(con):
            return qa.erase_identifier_in(con, case_id, now), qa.redact_audit_in(con, case_id)
        changed, redacted = store.submit(remove).result()
        rewritten = []
        for path in landed_files(settings):
            data = path.read_bytes()
            cleaned = scrub_bytes(data, path.name, case_id)
            if cleaned != data:
                _write_atomically(path, cleaned)
                rewritten.append(path)
        detail = {"case": f"sha256(salt+id)={digest}", "rows_changed": changed, "redacted_seqs": redacted,
                  "files_rewritten": len(rewritten), "compacted": True}
        qa.submit_audit(store, actor, "erasure", f"case:{digest}", detail).result()
    qa.compact_database(db)
    needle = case_id.encode()
    # Raw byte search first (cheap, chunked); a hit that is only part of a longer id is not this case.
    residual = tuple(p for p in [*database_files(db), *landed_files(settings)]
                     if file_contains(p, needle) and file_holds_token(p, case_id))
    return ErasureReport(digest, salt, changed, tuple(redacted), tuple(rewritten), residual)
