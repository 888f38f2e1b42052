"""Strict JSON text parsing shared by the file and MQTT ingestors.

The standard library (and orjson) keep the *last* of two equal keys in an object, so
``{"case_id": "A", "status": "suspected", "status": "confirmed"}`` silently becomes a confirmed
case. RFC 8259 §4 leaves duplicate names undefined; a record with two values for one field is
ambiguous, and an ingestor that picks one is guessing. Here such a document is refused with its
own reason code, ``duplicate_key``, so a person sees which sender produced it.
"""
from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """An object in the document names the same key twice."""

    def __init__(self, key: str):
        super().__init__(f"key {key!r:.60} appears twice in one object")
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that raises DuplicateKey for an object with a repeated key.

    Other failures are the standard library's (``json.JSONDecodeError``, ``RecursionError`` for
    absurd nesting, ``UnicodeDecodeError`` for bytes that are not UTF-8).
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    return json.loads(text, object_pairs_hook=_refuse_duplicates)
