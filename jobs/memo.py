"""Per-area results of a job remembered by a digest of their inputs, so a rerun recomputes only what changed.

A job reruns when any of its inputs changed (its fingerprint), and then recomputed every area: one
new case in one community area of a 100-area city redid the detectors and the forecast backtests of
all of them (50 s at a million people). The per-area computations are pure functions of the area's
series and the settings, so their results are kept, keyed by a digest of exactly those inputs; an
unchanged area is answered from memory, a changed one is computed. The memory lives in the process;
after a restart the early-warning job answers unchanged areas from what it stored under the same
digest (jobs.ew_reuse), and keeps those answers here again.

Callers must not modify what they are given back: it is shared with the next run.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd

from bounded_cache import BoundedCache

T = TypeVar("T")

# Areas x series x computations of one city, with room for the previous run's answers.
MAX_ENTRIES = 4096

_results: BoundedCache[object] = BoundedCache(MAX_ENTRIES)
_MISSING = object()


# Floats are digested rounded to this many decimals: daily means the database aggregates in parallel
# differ in their last bits from one read to the next, and an unchanged area must still be recognised.
# The series here (counts, rates, log concentrations) are far coarser than 1e-9.
FLOAT_DECIMALS = 9


def _rounded(part):
    if isinstance(part, pd.Series) and part.dtype.kind == "f":
        return part.round(FLOAT_DECIMALS)
    if isinstance(part, pd.DataFrame):
        floats = [c for c in part.columns if part[c].dtype.kind == "f"]
        return part.round({c: FLOAT_DECIMALS for c in floats}) if floats else part
    if isinstance(part, np.ndarray) and part.dtype.kind == "f":
        return np.round(part, FLOAT_DECIMALS)
    if dataclasses.is_dataclass(part) and not isinstance(part, type):
        return (type(part).__name__, _plain(dataclasses.astuple(part)))
    return part


def _plain(value):
    """Floats rounded (FLOAT_DECIMALS) inside tuples and lists, so a repr does not carry their last bits."""
    if isinstance(value, float):
        return round(value, FLOAT_DECIMALS) + 0.0
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    return value


def _float_bytes(values: np.ndarray) -> bytes:
    """The bytes of float values rounded to FLOAT_DECIMALS, with one zero (no -0.0) and one NaN."""
    rounded = np.round(np.asarray(values, dtype=float), FLOAT_DECIMALS) + 0.0
    rounded[np.isnan(rounded)] = np.nan
    return np.ascontiguousarray(rounded).tobytes()


def _index_bytes(index: pd.Index) -> bytes:
    if isinstance(index, pd.DatetimeIndex):
        return str(index.dtype).encode() + index.asi8.tobytes()
    return pd.util.hash_pandas_object(index).to_numpy().tobytes()


def digest(*parts) -> str:
    """A digest of the parts: pandas and NumPy objects by their values (floats rounded, FLOAT_DECIMALS) and
    index, dataclasses by their fields (floats rounded), anything else by repr."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        # All-float series and frames (the daily series) by their raw bytes: hashing them row by row
        # through pandas was most of a rerun's time once the areas came from memory.
        if isinstance(part, pd.Series) and part.dtype.kind == "f":
            h.update(b"s" + str(part.name).encode() + _index_bytes(part.index) + _float_bytes(part.to_numpy()))
            h.update(b"|")
            continue
        if isinstance(part, pd.DataFrame) and len(part.columns) and all(k == "f" for k in part.dtypes.map(
                lambda d: d.kind)):
            h.update(b"f" + repr(list(part.columns)).encode() + _index_bytes(part.index)
                     + _float_bytes(part.to_numpy(dtype=float)))
            h.update(b"|")
            continue
        part = _rounded(part)
        if isinstance(part, pd.Series):
            h.update(b"S" + str(part.dtype).encode() + str(part.name).encode())
            h.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
        elif isinstance(part, pd.DataFrame):
            h.update(b"F" + repr(list(part.columns)).encode())
            h.update(pd.util.hash_pandas_object(part, index=True).to_numpy().tobytes())
        elif isinstance(part, np.ndarray):
            h.update(b"A" + str(part.dtype).encode() + repr(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(b"R" + repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


def recall(name: str, key: str):
    """What was kept for ``name`` and input digest ``key``, or None."""
    hit = _results.get((name, key), _MISSING)
    return None if hit is _MISSING else hit


def keep(name: str, key: str, value: T) -> T:
    """Remember ``value`` (found elsewhere, e.g. in the store) for ``name`` and ``key``; returns it."""
    _results.put((name, key), value)
    return value


def remembered(name: str, key: str, compute: Callable[[], T]) -> T:
    """``compute()``, or what it returned for the same ``name`` and input digest ``key`` before."""
    hit = _results.get((name, key), _MISSING)
    if hit is not _MISSING:
        return hit  # type: ignore[return-value]
    value = compute()
    _results.put((name, key), value)
    return value

