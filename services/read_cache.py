"""Read models answered once per data version, per privacy view and per question.

A wall screen asks the same read model every refresh, and several screens ask it at once; between the
jobs' commits and new records the answer does not change. A cached answer is keyed by everything that
changes it:

* the data version (``data_version``): the jobs' latest runs (every stored figure is written by a job,
  and ``job_runs`` changes with each run that computed), what was ingested (``ingest_log``, one row per
  committed batch and kind, and the cases' own count, which an erasure lowers), quarantine resolutions, alerts
  raised or resolved and their acknowledgements, rulebook switches, zone decisions, and the areas and
  facilities; and, for what depends on the clock (report ages, "open now"), at most ``MAX_AGE_S`` old;
* the principal's privacy view (``privacy_view``): role, detail level, precinct scope and permissions,
  so one principal's disclosure is never served to another whose view differs (two operators share one);
* the question: the read model's name and parameters.

A cached answer was cut by services.privacy.disclose when it was computed; the releases it noted then
(auth.ledger) are noted again each time it is served, so the read audit records a cached read exactly as
a fresh one.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from auth.ledger import Release, note_release, recording
from auth.principal import Principal
from bounded_cache import BoundedCache
from store import Store

T = TypeVar("T")

# The wall refreshes every 15-30 s: an answer a minute old at most keeps clock-dependent text (a report's
# age, alerts open "now") as current as the screen's own refresh while most refreshes are answered cached.
MAX_AGE_S = 60.0
# Pages x areas x views a few screens ask for; an entry is a read model's answer (frames of a few MB at most).
MAX_ENTRIES = 64

# Cheap aggregates, a row each: each changes when the tables behind the pages do (see the module's doc).
# UNION ALL rather than one row of scalar subqueries: DuckDB plans it in a tenth of the time (9 vs 80 ms at
# a million cases, measured with bench/pages.py's scale city).
VERSION_SQL = """
    SELECT 1, count(*), max(epoch_us(computed_at)) FROM job_runs
    UNION ALL SELECT 2, count(*) FILTER (WHERE kind IS DISTINCT FROM 'reading'),
                     max(batch_id) FILTER (WHERE kind IS DISTINCT FROM 'reading') FROM ingest_log
    UNION ALL SELECT 12, count(*) FILTER (WHERE kind = 'reading'), max(batch_id) FILTER (WHERE kind = 'reading')
              FROM ingest_log
    UNION ALL SELECT 3, count(*), 0 FROM cases
    UNION ALL SELECT 4, count(*), count(resolved_at) FROM quarantine
    UNION ALL SELECT 5, count(*), count(resolved_at) FROM alerts
    UNION ALL SELECT 6, 0, max(epoch_us(resolved_at)) FROM alerts
    UNION ALL SELECT 7, count(*), 0 FROM alert_actions
    UNION ALL SELECT 8, count(*), 0 FROM ew_rulebook_choices
    UNION ALL SELECT 9, count(*), 0 FROM zone_events
    UNION ALL SELECT 10, count(*), max(epoch_us(ingested_at)) FROM areas
    UNION ALL SELECT 11, count(*), max(epoch_us(ingested_at)) FROM facilities"""

_entries: BoundedCache[tuple[float, object, tuple[Release, ...]]] = BoundedCache(MAX_ENTRIES)


READINGS_PART = 12  # the row of VERSION_SQL that counts the readings' batches


def data_version(store: Store, with_readings: bool = True) -> tuple:
    """A value that changes whenever the data behind the pages' read models does (without the readings'
    batches: whenever the data behind a read model that does not read readings does)."""
    rows = sorted(store.read_rows(VERSION_SQL))  # UNION ALL keeps no order
    # The store object too: two apps of one process (tests) on one file may hold different settings.
    return (str(store.path), id(store), *(r for r in rows if with_readings or r[0] != READINGS_PART))


def privacy_view(principal: Principal) -> tuple:
    """What services.privacy.disclose cuts by: principals equal here see exactly the same figures."""
    return (principal.role, principal.detail, tuple(sorted(principal.precincts)), principal.signed_in,
            tuple(sorted(principal.permissions)))


def cached_read(store: Store, principal: Principal, name: str, params: Hashable, compute: Callable[[], T], *,
                with_readings: bool) -> T:
    """``compute()`` (a read model called for ``principal``), or its answer for this data version and view.

    ``with_readings``: whether the read model reads the ``readings`` table or the readings' batches in
    ``ingest_log`` itself (see the module's doc); each caller says so.
    The answer is shared between requests: callers must not modify it.
    """
    key = (name, params, privacy_view(principal), data_version(store, with_readings))
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and now - hit[0] <= MAX_AGE_S:
        for release in hit[2]:
            note_release(release.resource, release.level, release.rows)
        return hit[1]  # type: ignore[return-value]
    with recording() as released:
        value = compute()
    _entries.put(key, (now, value, tuple(released)))
    return value
