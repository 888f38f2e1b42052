"""Raster tiles from a local MBTiles file (map.basemap "mbtiles"), served by pheoc itself.

MBTiles 1.3 (Mapbox's specification) is one SQLite file: table ``tiles`` (zoom_level, tile_column,
tile_row, tile_data) and ``metadata`` (name, value; ``format`` png/jpg/webp). Rows are numbered TMS-style,
from the south, so the XYZ row a web map asks for is flipped: tms_row = 2^z - 1 - y. Files are opened
read-only (``mode=ro`` URI), one connection per call: SQLite reads are cheap and a connection is not
shared between the server's threads.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class MbtilesError(ValueError):
    """The file is not a readable MBTiles file of raster tiles."""


def _connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise MbtilesError(f"{path}: {exc}") from None


def tile_format(path: Path) -> str:
    """The file's tile format (``metadata.format``); MbtilesError when the file is no MBTiles of raster tiles."""
    con = _connect(path)
    try:
        row = con.execute("SELECT value FROM metadata WHERE name = 'format'").fetchone()
        con.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise MbtilesError(f"{path}: not an MBTiles file ({exc})") from None
    finally:
        con.close()
    fmt = (row[0] if row else "png").lower()
    if fmt not in MEDIA_TYPES:
        raise MbtilesError(f"{path}: tiles of format {fmt!r} are not raster tiles pheoc can serve "
                           f"({', '.join(sorted(MEDIA_TYPES))})")
    return fmt


def read_tile(path: Path, z: int, x: int, y: int) -> bytes | None:
    """The tile at XYZ ``z/x/y``, or None where the file has none (or the address is out of range)."""
    if not (0 <= z <= 24 and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        return None
    con = _connect(path)
    try:
        row = con.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                          [z, x, 2 ** z - 1 - y]).fetchone()
    finally:
        con.close()
    return bytes(row[0]) if row else None
