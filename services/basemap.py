"""The offline basemap's context layers (map.context_layers): read once, re-read when a file changes.

Every map draws them under its own layers (components.basemap). A configured file that is missing or
not GeoJSON stops the start with the key named (``check_context_layers``, called by create_app); the
same fault appearing later (a file replaced while serving) leaves that layer out and logs it, so a
wall screen keeps its map.
"""
from __future__ import annotations

import logging
import threading

from geo.context import ContextLayer, ContextLayerError, read_context_layer
from settings import ConfigError, Settings

log = logging.getLogger(__name__)
_cache: dict[tuple, ContextLayer] = {}
_lock = threading.Lock()


def _load(settings: Settings, index: int, strict: bool) -> ContextLayer | None:
    layer = settings.map.context_layers[index]
    path = settings.path(layer.file)
    key = f"map.context_layers[{index}].file"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        if strict:
            raise ConfigError(f"config '{key}': file {path}: {exc.strerror}") from None
        log.warning("context layer %s left out: %s", layer.id, exc)
        return None
    cache_key = (str(path), stamp, layer.id, layer.label)
    with _lock:
        found = _cache.get(cache_key)
    if found is not None:
        return found
    try:
        found = read_context_layer(layer.id, layer.label, path)
    except ContextLayerError as exc:
        if strict:
            raise ConfigError(f"config '{key}': {exc}") from None
        log.warning("context layer %s left out: %s", layer.id, exc)
        return None
    with _lock:
        for old in [k for k in _cache if k[0] == str(path)]:
            del _cache[old]
        _cache[cache_key] = found
    return found


def context_layers(settings: Settings) -> list[ContextLayer]:
    """The configured context layers, in configured order (a layer that cannot be read now is left out)."""
    return [layer for i in range(len(settings.map.context_layers))
            if (layer := _load(settings, i, strict=False)) is not None]


def check_context_layers(settings: Settings) -> None:
    """Raise ConfigError naming the key of the first context layer that cannot be read."""
    for i in range(len(settings.map.context_layers)):
        _load(settings, i, strict=True)


# The route create_app serves an MBTiles file's tiles on (map.basemap "mbtiles"): this origin, so the CSP
# needs nothing more and no request leaves the machine.
MBTILES_ROUTE = "/basemap/tiles/<int:z>/<int:x>/<int:y>"


def tile_url(settings: Settings, origin: str) -> str | None:
    """The tile URL template a map draws on: the configured tile server ("tiles"), pheoc's own route for a
    local MBTiles file ("mbtiles", absolute on ``origin``: MapLibre fetches tiles from absolute URLs), or
    None for the offline basemap."""
    if settings.map.basemap == "tiles":
        return settings.map.tile_url
    if settings.map.basemap == "mbtiles":
        return origin.rstrip("/") + "/basemap/tiles/{z}/{x}/{y}"
    return None
