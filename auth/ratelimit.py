"""In-process rate limits (token buckets): login attempts per client address; address checks per user and
per address checked (services.address_check).

One process serves the app (one DuckDB owner), so the buckets live in memory; a restart refills
them, which is harmless because the back-off per name and the limit per address (auth.login) are
kept in the database.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_TRACKED_KEYS = 50_000  # beyond this, full (idle) buckets are forgotten to bound memory


class RateLimiter:
    """``rates[kind]`` requests a minute per key, in bursts of up to that many."""

    def __init__(self, rates: dict[str, int], clock: Callable[[], float] = time.monotonic):
        self._rates = dict(rates)
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # (kind, key) -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, kind: str, key: str) -> bool:
        rate = self._rates.get(kind)
        if rate is None:
            raise KeyError(f"no rate limit configured for {kind!r}")
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get((kind, key), (float(rate), now))
            tokens = min(float(rate), tokens + (now - at) * rate / 60.0)
            allowed = tokens >= 1.0
            self._buckets[(kind, key)] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > MAX_TRACKED_KEYS:
                self._forget_idle(now)
            return allowed

    def _forget_idle(self, now: float) -> None:
        for k, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self._rates[k[0]] / 60.0 >= self._rates[k[0]]:
                del self._buckets[k]
