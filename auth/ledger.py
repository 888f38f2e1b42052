"""The per-request ledger of releases: which tables of cell- or case-level rows left in this response.

services.privacy notes every release as it cuts a table (note_release); auth.web starts a ledger
before each request and, when the response leaves, writes one ``data_access`` audit record per
release for a signed-in caller (user, resource, parameters, rows). A read is audited because data
was released, whichever page, callback or API handler released it.
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    """A table of cell- or case-level rows that was handed to the caller."""
    resource: str
    level: str  # cells | points
    rows: int


_ledger: contextvars.ContextVar[list[Release] | None] = contextvars.ContextVar("pheoc_releases", default=None)


def start_ledger() -> None:
    """Begin noting releases for the current request."""
    _ledger.set([])


def note_release(resource: str, level: str, rows: int) -> None:
    """Note a release (outside a request nothing is noted: jobs and the CLI release to no one)."""
    ledger = _ledger.get()
    if ledger is not None and rows > 0:
        ledger.append(Release(resource, level, rows))
    for recorder in _recorders.get():
        if rows > 0:
            recorder.append(Release(resource, level, rows))


# Open recordings (services.read_cache): a read answered later from a cache notes again what it released
# when it was computed, so a cached answer is audited as a fresh one would be.
_recorders: contextvars.ContextVar[tuple[list[Release], ...]] = contextvars.ContextVar("pheoc_recorders",
                                                                                         default=())


@contextmanager
def recording() -> Iterator[list[Release]]:
    """The releases noted inside the block (noted in the request's ledger as well, as always)."""
    noted: list[Release] = []
    token = _recorders.set((*_recorders.get(), noted))
    try:
        yield noted
    finally:
        _recorders.reset(token)


def take_releases() -> list[Release]:
    """The releases noted since start_ledger(), and end the ledger."""
    ledger = _ledger.get() or []
    _ledger.set(None)
    return list(ledger)
