"""A job's rows, as one pandas frame, into a table inside the caller's transaction.

The frame is registered with DuckDB for one INSERT … SELECT and unregistered again whatever happens
(a registered name left behind would shadow the next job's). ``select`` is the SELECT list over the
frame's columns where they need casting (dates arrive as timestamps, say); by default the columns as
they are.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def insert_frame_in(con, table: str, frame: pd.DataFrame, columns: Sequence[str], select: str | None = None) -> None:
    """Insert ``frame[columns]`` into ``table`` (its columns of those names)."""
    if frame.empty:
        return
    name = f"{table}_in"
    con.register(name, frame[list(columns)])
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select or ', '.join(columns)} FROM {name}")
    finally:
        con.unregister(name)


def replace_table_in(con, table: str, frame: pd.DataFrame, columns: Sequence[str], select: str | None = None) -> None:
    """Make ``frame[columns]`` the whole of ``table`` (a job's latest state of everything it tracks)."""
    con.execute(f"DELETE FROM {table}")
    insert_frame_in(con, table, frame, columns, select)
