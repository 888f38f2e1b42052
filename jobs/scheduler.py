"""Runs registered analytics jobs every N seconds on one thread; a failing job is logged, not fatal."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

log = logging.getLogger(__name__)
JobFn = Callable[[], dict]


@dataclass
class _Job:
    name: str
    fn: JobFn
    every_s: float
    next_at: float = 0.0
    last_ok_at: str | None = None
    last_error: str | None = None
    last_summary: dict = field(default_factory=dict)
    runs: int = 0
    lane: str = "main"


# Each lane is a thread of its own: jobs of one lane run one after another, a slow job (a cluster scan) holds
# up only its own lane. "live" jobs (the sensor job: panic presses) must never wait behind the analytics,
# and poll four times a second so a press is picked up within a quarter of a second of falling due.
LANE_TICK_S = {"main": 1.0, "live": 0.25}


class JobScheduler:
    def __init__(self, tick_s: float = 1.0):
        self._jobs: list[_Job] = []
        self._tick = tick_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, name: str, fn: JobFn, every_s: float, lane: str = "main") -> None:
        if lane not in LANE_TICK_S:
            raise ValueError(f"unknown job lane {lane!r}")
        self._jobs.append(_Job(name, fn, every_s, lane=lane))

    def run_all_now(self) -> None:
        """Run every job once, in order (the demo does this before serving so pages open with results)."""
        for job in self._jobs:
            self._run(job)

    def start(self) -> "JobScheduler":
        for lane in dict.fromkeys(j.lane for j in self._jobs):
            tick = self._tick if lane == "main" else LANE_TICK_S[lane]
            thread = threading.Thread(target=self._loop, args=(lane, tick), name=f"jobs-{lane}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)

    def health(self) -> dict[str, Any]:
        return {"ok": all(j.last_error is None for j in self._jobs),
                "jobs": {j.name: {"runs": j.runs, "last_ok_at": j.last_ok_at, "last_error": j.last_error,
                                  **j.last_summary} for j in self._jobs}}

    def _run(self, job: _Job) -> None:
        try:
            job.last_summary = job.fn() or {}
            job.last_ok_at = datetime.now(timezone.utc).isoformat()
            job.last_error = None
        except Exception as exc:  # one failing job must not stop the others
            log.exception("job %s failed", job.name)
            job.last_error = f"{type(exc).__name__}: {exc}"
        job.runs += 1
        job.next_at = time.monotonic() + job.every_s

    def _loop(self, lane: str = "main", tick: float | None = None) -> None:
        mine = [j for j in self._jobs if j.lane == lane]
        while not self._stop.wait(self._tick if tick is None else tick):
            now = time.monotonic()
            for job in mine:
                if now >= job.next_at and not self._stop.is_set():
                    self._run(job)


def registered_jobs() -> list[tuple[str, Callable[..., dict], str]]:
    """(name, run function, settings section holding run_every_s) for every analytics job, in the order
    they run: the indicators first, since the early-warning job reads what they stored."""
    from jobs import clusters, early_warning, indicators, warnings
    return [("indicators", indicators.run, "indicators"), ("clusters", clusters.run, "clusters"),
            ("early_warning", early_warning.run, "early_warning"),
            # after the two whose decisions (zones, level changes) it proposes warnings for
            ("warnings", warnings.run, "warnings")]


def registered_sensor_jobs() -> list[tuple[str, Callable[..., dict], str, str]]:
    """(name, run function, settings key of its interval, lane) of the sensor jobs: the sensor job (states,
    their alerts, panic presses) on the live lane; the lead job after the indicators it compares with."""
    from jobs import sensor_alerts, sensor_lead
    return [("sensor_alerts", sensor_alerts.run, "sensors.run_every_s", "live"),
            ("sensor_lead", sensor_lead.run, "sensors.lead_every_s", "main")]


def today_in(tz: str) -> date:
    from zoneinfo import ZoneInfo
    return datetime.now(ZoneInfo(tz)).date()
