"""The demo's sensor set-up beyond readings: each footfall counter's place capacity, and a few sensors out of
service, so /sensors has places over capacity at busy hours and silent sensors to flag from the start.

- **Capacity** (sensors.kinds.footfall.thresholds_file, people/h): the counter's typical rate at an
  average hour times a headroom drawn uniformly from CAPACITY_HEADROOM and rounded to 10. Busy hours run
  at up to 1.5 x the average (demo.epidemic.FOOTFALL_PROFILE) and Saturdays 1.15 x, so the places with
  little headroom fill up at the evening peak, as a market or a station does.
- **Out of service**: OUT_OF_SERVICE sensors per kind stop reporting QUIET_HOURS before the demo's now
  (their later readings are not written, and the live simulator leaves them quiet): longer than twice
  any kind's 3-hour reporting interval, so they are silent at once.
"""
from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from demo.city import CITY_UTC_OFFSET

CAPACITY_HEADROOM = (1.2, 2.4)
OUT_OF_SERVICE = {"footfall": 2, "air_quality": 1, "fever_kiosk": 1}
QUIET_HOURS = 10
CAPACITY_FILE = "city/footfall-capacity.csv"


def out_of_service(sensor_ids_by_kind: dict[str, list[str]], seed: int) -> set[str]:
    rng = np.random.default_rng([seed, 0x5E5])
    chosen: set[str] = set()
    for kind, n in OUT_OF_SERVICE.items():
        ids = sorted(sensor_ids_by_kind.get(kind, []))
        if ids:
            chosen.update(str(s) for s in rng.choice(ids, size=min(n, len(ids)), replace=False))
    return chosen


def silence(readings: dict[str, pd.DataFrame], quiet: set[str], now: datetime) -> dict[str, pd.DataFrame]:
    """The readings without those of the ``quiet`` sensors in the last QUIET_HOURS before ``now``."""
    # Readings carry the city's local time (demo.epidemic): cut in the same clock.
    cut = np.datetime64((now - timedelta(hours=QUIET_HOURS)).astimezone(CITY_UTC_OFFSET).replace(tzinfo=None), "s")
    out = {}
    for kind, frame in readings.items():
        ts = frame["ts"].to_numpy(dtype="datetime64[s]")
        out[kind] = frame[~(frame["sensor_id"].isin(quiet).to_numpy() & (ts > cut))].reset_index(drop=True)
    return out


def write_capacities(levels: dict[str, float], footfall_ids: list[str], seed: int, out_dir: Path) -> str:
    """Write each footfall counter's capacity; returns the file's path relative to ``out_dir``."""
    rng = np.random.default_rng([seed, 0xCA9])
    path = Path(out_dir) / CAPACITY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sensor_id", "threshold"])
        for sensor_id in sorted(footfall_ids):
            headroom = rng.uniform(*CAPACITY_HEADROOM)
            writer.writerow([sensor_id, max(10, int(round(levels.get(sensor_id, 0.0) * headroom, -1)))])
    return CAPACITY_FILE
