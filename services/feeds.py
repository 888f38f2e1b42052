"""Feed health for the freshness strip on every page: is each feed live, stale (amber) or dead (red)?

A feed is one record kind, whatever channel brings it (MQTT, files, FHIR). Its age is the time since
pheoc last stored a record of it (a batch that stored nothing, only rejects or duplicates, does not
count: a sender of garbage is not a live feed). ``wall.feeds`` says, per kind, after how long it is
stale and dead; kinds not listed there (areas, sensors, facilities: reference data loaded once) are not
feeds. A listed kind that never arrived is dead. Counts and times only: nothing personal.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from settings import Settings
from store import Store
from store import queries_feeds as qf

STATUS_ORDER = ("ok", "stale", "dead")


@dataclass(frozen=True)
class Feed:
    kind: str
    status: str  # ok | stale | dead
    age_s: float | None  # None: never received
    last_received_at: datetime | None
    last_record_at: datetime | None
    channels: str


@dataclass(frozen=True)
class FeedHealth:
    feeds: tuple[Feed, ...]
    status: str  # the worst feed's
    newest_record_at: datetime | None  # the newest record time any feed carried (the kiosk's "data as of")


def feed_health(store: Store, settings: Settings, now: datetime | None = None) -> FeedHealth:
    now = now or datetime.now(timezone.utc)
    found = qf.last_received(store).set_index("kind")
    feeds = []
    for kind, limits in settings.wall.feeds.items():
        row = found.loc[kind] if kind in found.index else None
        received = None if row is None or pd.isna(row["last_received_at"]) else \
            pd.Timestamp(row["last_received_at"]).to_pydatetime()
        record = None if row is None or pd.isna(row["last_record_at"]) else \
            pd.Timestamp(row["last_record_at"]).to_pydatetime()
        age = None if received is None else max((now - received).total_seconds(), 0.0)
        status = "dead" if age is None or age > limits.dead_after_s else "stale" if age > limits.stale_after_s \
            else "ok"
        feeds.append(Feed(kind, status, age, received, record, "" if row is None else str(row["channels"] or "")))
    worst = max((STATUS_ORDER.index(f.status) for f in feeds), default=0)
    records = [f.last_record_at for f in feeds if f.last_record_at is not None]
    return FeedHealth(tuple(feeds), STATUS_ORDER[worst], max(records) if records else None)
