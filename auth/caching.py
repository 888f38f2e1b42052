"""Which responses a browser may keep: static code by its versioned URL, never pages or data.

Everything the app answers with data (pages, callback responses, the API) is ``no-store``: it is
personal or privacy-cut per principal, and a shared computer must not keep it. Static code is
neither, and re-downloading it on every page load is what made a first render slow (plotly.min.js
alone is 4.8 MB, issue 16). So:

- Dash's component bundles whose URL carries Dash's fingerprint (package version and file
  modification time, ``name.v4_4_1m1796162964.js``) and the app's assets, whose URL Dash writes with
  the file's modification time (``/assets/pheoc.css?m=1796177193.87``), are ``immutable`` for a year:
  a new version of the file gets a new URL, so an old copy is never used for it.
- The bundles Dash loads on demand without a fingerprint (``plotly.min.js``, ``async-graph.js``) are
  ``no-cache``: the browser keeps them but asks each time; Dash answers ``304 Not Modified`` from the
  ETag it sets, so the 4.8 MB is sent once.
"""
from __future__ import annotations

from dash.fingerprint import check_fingerprint

COMPONENT_SUITES = "/_dash-component-suites/"
ASSETS = "/assets/"
# A year: the longest max-age HTTP caches are expected to honour (RFC 9111 §5.2.2.1 "at least 2^31"
# seconds; a year is the customary ceiling, as Dash itself uses for its fingerprinted bundles).
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NO_STORE = "no-store"


def cache_control(path: str, args, status: int, current: str | None) -> str:
    """The Cache-Control header for one response to ``path`` (with query ``args``)."""
    if status in (200, 304):
        if path.startswith(COMPONENT_SUITES):
            _, fingerprinted = check_fingerprint(path[len(COMPONENT_SUITES):])
            return IMMUTABLE if fingerprinted else REVALIDATE
        if path.startswith(ASSETS) and args.get("m"):
            return IMMUTABLE
    return current or NO_STORE
