"""Redraw on refresh only the parts of a page whose content changed.

A wall page refreshes every few seconds. Sending every part back each time replaces the browser's
elements even when nothing changed: the button a keyboard user had focused in a list disappears
under them, a note half typed into an alert row is wiped, and the same bytes cross the network again.
A refresh callback therefore fingerprints what it drew (kept in a dcc.Store beside the parts) and
returns ``no_update`` for every part whose fingerprint the browser already shows.

The store is the browser's: a tampered fingerprint only stops that browser's own page from
updating, it reveals nothing, since the parts are computed (and checked) on the server each time.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from dash import no_update
from plotly.utils import PlotlyJSONEncoder


def fingerprint(part) -> str:
    """A short digest of a part's serialised form (the JSON Dash would send for it)."""
    text = json.dumps(part, cls=PlotlyJSONEncoder, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def only_changed(drawn, parts: Mapping[str, object], prints: Mapping[str, str] | None = None
                 ) -> tuple[object, list]:
    """(the store's new data, each part or no_update), in the order of ``parts``.

    ``drawn`` is the store's current data: {part name: fingerprint} of what the browser shows, or
    None on a fresh page. The store itself is left alone when nothing changed. ``prints`` gives the
    fingerprints of parts already fingerprinted (``prepared``), so a part built once is not serialised
    again on every refresh only to learn it is the same.
    """
    shown = drawn if isinstance(drawn, dict) else {}
    known = prints or {}
    now = {name: known[name] if name in known else fingerprint(part) for name, part in parts.items()}
    redrawn = [part if shown.get(name) != now[name] else no_update for name, part in parts.items()]
    return (no_update if now == shown else now), redrawn


def plain(part):
    """A part (Dash components, figures, lists of them) as the plain JSON tree Dash sends for it.

    Dash encodes a response by walking it, asking each component for its props: a part kept built
    (figcache.cached_component) is walked again on every refresh. Kept as this tree instead, the walk
    meets dicts and strings only (a third of the time for the 200 rows of the alert inbox).
    """
    if isinstance(part, (list, tuple)):
        return [plain(p) for p in part]
    if isinstance(part, dict):
        return {k: plain(v) for k, v in part.items()}
    to_json = getattr(part, "to_plotly_json", None)
    if to_json is None:
        return part
    return plain(to_json())


def prepared(parts: Mapping[str, object]) -> tuple[dict, dict]:
    """(each part as its plain JSON tree, each part's fingerprint): what a cached builder of a page's parts
    returns, so a refresh served from the cache neither rebuilds nor re-fingerprints them."""
    trees = {name: plain(part) for name, part in parts.items()}
    return trees, {name: fingerprint(tree) for name, tree in trees.items()}
