"""Other agencies' CAP 1.2 alerts dropped as ``*.xml`` files into warnings.inbound_dir.

A file is read (at most cap.inbound.MAX_CAP_BYTES), parsed and stored in ``inbound_alerts``, then
moved to ``processed/``; a file that is not a CAP 1.2 alert is quarantined with reason
``invalid_cap`` (its bytes kept) and moved to ``rejected/``. Only regular files are read, never
through a symbolic link, and only once they have not changed for a second (a writer still copying
one is left for the next pass).
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

from cap.inbound import MAX_CAP_BYTES, InvalidCap, parse_cap
from store import Store
from store import queries_warnings as qw
from store.store import IngestBatch, QuarantineRow

log = logging.getLogger(__name__)
SETTLE_S = 1.0


def _read_regular(path: Path) -> bytes | None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < SETTLE_S:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_CAP_BYTES + 1)
    finally:
        os.close(fd)


def _move(path: Path, folder: str) -> None:
    target = path.parent / folder
    target.mkdir(exist_ok=True)
    shutil.move(str(path), target / path.name)


def read_inbound_folder(store: Store, folder: Path) -> dict[str, int]:
    """Read every settled .xml file in ``folder``; returns counts stored / repeated / rejected."""
    counts = {"stored": 0, "repeated": 0, "rejected": 0}
    if not folder.is_dir():
        return counts
    for path in sorted(folder.glob("*.xml")):
        try:
            data = _read_regular(path)
        except OSError as exc:  # a symbolic link (O_NOFOLLOW) or a file that vanished
            log.warning("inbound CAP %s not read: %s", path.name, exc)
            continue
        if data is None:
            continue
        now = datetime.now(timezone.utc)
        try:
            alert = parse_cap(data)
        except InvalidCap as exc:
            store.write_batch(IngestBatch(source=f"cap:{path.name}", channel="file", quarantined=[QuarantineRow(
                source=f"cap:{path.name}", reason_code="invalid_cap", reason_detail=str(exc)[:500],
                raw_payload=data[:MAX_CAP_BYTES], kind="cap", record_key=path.name)])).result(timeout=30)
            _move(path, "rejected")
            counts["rejected"] += 1
            continue
        text = data.decode("utf-8", errors="replace")
        new = store.submit(lambda con, a=alert, n=path.name, t=text: qw.insert_inbound_in(con, a, n, t, now)).result(30)
        counts["stored" if new else "repeated"] += 1
        _move(path, "processed")
    return counts
