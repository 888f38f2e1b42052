"""DDL for the capacity feature; applied by store.schema.apply_schema after the core tables."""
from __future__ import annotations

DDL: tuple[str, ...] = ()
