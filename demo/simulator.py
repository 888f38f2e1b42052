"""Live simulator: keeps the demo city's sensors and epidemic talking after the generated files end.

Each ``tick()`` publishes what happened since the previous tick: the sensor readings that fell due
(every kind has a live cadence, shorter than the files' 1–3 h so the dashboard visibly moves), at most
``max_messages_per_tick`` of them, served round-robin so that every sensor gets its turn; panic-button
presses as rare random events; and now and then a new case near a recent one, at the recent daily
rate continued along its recent growth. Messages go out through an injected ``publish(topic, payload)``
(the MQTT client belongs to ingest/; this module never imports paho).

Sequence numbers are ``last generated seq + seconds since the manifest's now``: strictly increasing
for a sensor, and a simulator restarted on the same manifest never reuses one, because readings are
only made for times after the simulator started.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from demo.city import CITY_UTC_OFFSET, build_city, lnglat_to_metric, metric_to_latlng
from demo.epidemic import (AGE_PROBS, FOOTFALL_PROFILE, LOCAL_KERNEL_MEDIAN_M, LOCAL_KERNEL_SIGMA,
                           SEVERITY_BY_AGE, WEEKDAY_FOOTFALL, WW_NOISE_SIGMA)
from demo.files import DemoManifest, SensorState
from ingest.records import AGE_BANDS, SEVERITIES

log = logging.getLogger(__name__)
PublishFn = Callable[[str, bytes], None]

# Live cadence per sensor kind (seconds). ~300 sensors give ~4-5 readings a second in all.
LIVE_INTERVAL_S = {"wastewater": 300, "footfall": 30, "fever_kiosk": 60, "air_quality": 60}
# Battery-powered kinds report their charge (metric battery_pct, sensors.health_metric) every 10 minutes;
# it drains by BATTERY_DRAIN_PER_DAY from a start drawn per sensor, so a few run low during a long demo.
BATTERY_KINDS = ("panic_button", "air_quality")
BATTERY_INTERVAL_S = 600
BATTERY_DRAIN_PER_DAY = 4.0
BATTERY_METRIC, BATTERY_UNIT = "battery_pct", "%"
MAX_MESSAGES_PER_TICK = 50
MAX_CATCH_UP_S = 600          # after a pause (a sleeping laptop), resend at most the last 10 minutes
MAX_RECENT_CASES = 400
GROWTH_LIMIT_PER_DAY = 0.1    # keep an extrapolated trend from running away in a long demo
TREND_HORIZON_D = 14.0        # ... and stop extrapolating after two weeks


@dataclass
class _LiveSensor:
    """Mutable stream state of one sensor (internal)."""
    state: SensorState
    interval_s: int | None    # None: event-driven (panic buttons)
    next_due: datetime | None
    last_seq: int
    battery_start: float | None = None  # a battery stream (BATTERY_METRIC) of this sensor, not its readings


class LiveSimulator:
    """Publishes live sensor readings and cases for a generated demo city."""

    def __init__(self, manifest: DemoManifest, publish: PublishFn, topic_prefix: str, seed: int,
                 clock: Callable[[], datetime] = datetime.now, *, max_messages_per_tick: int = MAX_MESSAGES_PER_TICK,
                 case_rate_multiplier: float = 1.0):
        self._manifest = manifest
        self._publish = publish
        self._prefix = topic_prefix.rstrip("/")
        self._clock = clock
        self._rng = np.random.default_rng([seed, 0x11E])
        self._max = max_messages_per_tick
        self._anchor = manifest.now.astimezone(CITY_UTC_OFFSET).replace(microsecond=0)
        started = max(self._anchor, self._now())
        self._last_tick = started
        self._sensors: list[_LiveSensor] = []
        for s in manifest.sensors:
            if s.out_of_service:  # demo.sensors: it went quiet before now and stays quiet
                continue
            interval = LIVE_INTERVAL_S.get(s.kind)
            # Stagger first readings over one interval so sensors do not all speak at once.
            first = started + timedelta(seconds=int(self._rng.integers(1, interval + 1))) if interval else None
            self._sensors.append(_LiveSensor(s, interval, first, s.last_seq))
        for s in manifest.sensors:
            if s.kind in BATTERY_KINDS and not s.out_of_service:
                first = started + timedelta(seconds=int(self._rng.integers(1, BATTERY_INTERVAL_S + 1)))
                self._sensors.append(_LiveSensor(s, BATTERY_INTERVAL_S, first, s.last_seq,
                                                 battery_start=float(self._rng.uniform(25.0, 100.0))))
        self._seqs = {s.sensor_id: s.last_seq for s in manifest.sensors}  # one sequence per sensor, all streams
        self._scheduled = [s for s in self._sensors if s.interval_s]
        self._panic = [s for s in self._sensors if s.state.kind == "panic_button" and s.battery_start is None]
        self._cursor = 0
        self._case_count = 0
        ep = manifest.epidemic
        self._cases_per_day = float(np.mean(ep.reported_last_14[-7:])) if ep.reported_last_14 else 0.0
        self._growth = float(np.clip(ep.growth_rate_per_day, -GROWTH_LIMIT_PER_DAY, GROWTH_LIMIT_PER_DAY))
        self._case_rate_multiplier = case_rate_multiplier
        self._recent = deque(ep.recent_cases, maxlen=MAX_RECENT_CASES)
        self._grid = build_city(manifest.seed).grid  # same seed, same city: new cases land on homes
        self.published = {"readings": 0, "cases": 0, "errors": 0}

    # ---- time ----------------------------------------------------------------------------------
    def _now(self) -> datetime:
        t = self._clock()
        if t.tzinfo is None:  # datetime.now(): the machine's local time
            t = t.astimezone()
        return t.astimezone(CITY_UTC_OFFSET).replace(microsecond=0)

    def _days_since_anchor(self, t: datetime) -> float:
        return min(max((t - self._anchor).total_seconds() / 86400.0, 0.0), TREND_HORIZON_D)

    # ---- publishing ----------------------------------------------------------------------------
    def _send(self, topic: str, message: dict) -> bool:
        try:
            self._publish(topic, json.dumps(message, separators=(",", ":")).encode())
            return True
        except Exception:  # one failed message must not stop the stream
            self.published["errors"] += 1
            log.exception("publish to %s failed", topic)
            return False

    def _seq(self, sensor: _LiveSensor, ts: datetime) -> int:
        sid = sensor.state.sensor_id
        seq = max(self._seqs.get(sid, sensor.last_seq) + 1,
                  sensor.state.last_seq + int((ts - self._anchor).total_seconds()))
        sensor.last_seq = self._seqs[sid] = seq
        return seq

    def _reading(self, sensor: _LiveSensor, ts: datetime, value: float) -> int:
        s = sensor.state
        metric, unit = (BATTERY_METRIC, BATTERY_UNIT) if sensor.battery_start is not None else (s.metric, s.unit)
        ok = self._send(f"{self._prefix}/sensors/{s.sensor_id}/readings",
                        {"ts": ts.isoformat(), "metric": metric, "value": value, "unit": unit,
                         "seq": self._seq(sensor, ts), "sensor_id": s.sensor_id})
        self.published["readings"] += ok
        return 1

    def _value(self, s: SensorState, ts: datetime) -> float:
        """A plausible current value around the sensor's level, with its daily cycle and noise."""
        hour, rng = ts.hour, self._rng
        if s.kind == "wastewater":
            level = s.level * np.exp(self._growth * self._days_since_anchor(ts))
            dilution = 1.0 - 0.2 * np.exp(-((hour - 8.0) ** 2) / 8.0)
            return float(np.round(level * dilution * rng.lognormal(0, WW_NOISE_SIGMA)))
        if s.kind == "footfall":  # a counter's rolling hourly rate
            rate = s.level * FOOTFALL_PROFILE[hour] * WEEKDAY_FOOTFALL[ts.weekday()]
            return float(np.round(rate * rng.lognormal(0, 0.15), 2))
        if s.kind == "fever_kiosk":  # alerts in the last hour
            rate = s.level * np.exp(self._growth * self._days_since_anchor(ts))
            return float(rng.poisson(rate * FOOTFALL_PROFILE[hour] / FOOTFALL_PROFILE.mean()))
        if s.kind == "air_quality":
            traffic = 1 + 0.25 * (FOOTFALL_PROFILE[hour] - FOOTFALL_PROFILE.mean())
            return float(np.round(s.level * traffic * rng.lognormal(0, 0.1), 1))
        return 1.0

    def _battery(self, sensor: _LiveSensor, ts: datetime) -> float:
        days = (ts - self._anchor).total_seconds() / 86400.0
        return float(round(max(sensor.battery_start - BATTERY_DRAIN_PER_DAY * days, 0.0), 1))

    def _publish_readings(self, now: datetime) -> int:
        budget, n = self._max, len(self._scheduled)
        floor = now - timedelta(seconds=MAX_CATCH_UP_S)
        for k in range(n):
            sensor = self._scheduled[(self._cursor + k) % n]
            step = timedelta(seconds=sensor.interval_s)
            if sensor.next_due < floor:  # skip what was missed during a long pause
                sensor.next_due += step * -(-(floor - sensor.next_due) // step)
            while sensor.next_due <= now and budget > 0:
                value = self._battery(sensor, sensor.next_due) if sensor.battery_start is not None \
                    else self._value(sensor.state, sensor.next_due)
                budget -= self._reading(sensor, sensor.next_due, value)
                sensor.next_due += step
            if budget == 0:
                self._cursor = (self._cursor + k) % n  # start here next tick: nobody starves
                break
        return self._max - budget

    def _publish_panic(self, now: datetime, since: datetime) -> int:
        if not self._panic:
            return 0
        seconds = (now - since).total_seconds()
        expected = sum(s.state.level for s in self._panic) * seconds / 86400.0
        sent = 0
        for _ in range(int(self._rng.poisson(expected))):
            sensor = self._panic[int(self._rng.integers(len(self._panic)))]
            ts = since + timedelta(seconds=int(self._rng.integers(1, max(int(seconds), 1) + 1)))
            sent += self._reading(sensor, min(ts, now), 1.0)
        return sent

    def _new_case_position(self) -> tuple[float, float]:
        lat0, lng0 = self._recent[int(self._rng.integers(len(self._recent)))]
        x0, y0 = (float(v) for v in lnglat_to_metric(lng0, lat0))
        for _ in range(10):
            dist = self._rng.lognormal(np.log(LOCAL_KERNEL_MEDIAN_M), LOCAL_KERNEL_SIGMA)
            angle = self._rng.uniform(0, 2 * np.pi)
            x, y = x0 + dist * np.cos(angle), y0 + dist * np.sin(angle)
            if self._grid.is_populated([x], [y])[0]:
                break
        else:
            x, y = x0, y0  # a recent case's own block
        lat, lng = metric_to_latlng([x], [y])
        return float(lat[0]), float(lng[0])

    def _publish_cases(self, now: datetime, since: datetime) -> int:
        if not self._recent:
            return 0
        days = (now - since).total_seconds() / 86400.0
        rate = self._cases_per_day * np.exp(self._growth * self._days_since_anchor(now)) * self._case_rate_multiplier
        sent = 0
        for k in range(int(self._rng.poisson(rate * days))):
            lat, lng = self._new_case_position()
            age = int(self._rng.choice(len(AGE_PROBS), p=AGE_PROBS))
            severity = int(np.searchsorted(np.cumsum(SEVERITY_BY_AGE[age]), self._rng.random(), side="right"))
            severity = min(severity, len(SEVERITIES) - 1)
            case = {"case_id": f"LIVE-{now:%Y%m%d}-{now:%H%M%S}-{k + 1}", "reported_date": now.date().isoformat(),
                    "lat": lat, "lng": lng, "status": "confirmed", "severity": SEVERITIES[severity],
                    "age_band": AGE_BANDS[age], "imported": False}
            if severity > 0:  # symptomatic: onset a few days before the report
                onset_gap = int(self._rng.integers(1, 5))  # as in the generated cases
                case["onset_date"] = (now.date() - timedelta(days=onset_gap)).isoformat()
            if self._send(f"{self._prefix}/cases", case):
                self.published["cases"] += 1
                self._recent.appendleft((lat, lng))  # the epidemic continues around its newest cases
            sent += 1
        return sent

    # ---- loop ------------------------------------------------------------------------------------
    def tick(self) -> int:
        """Publish everything due since the previous tick; return the number of messages sent."""
        now = self._now()
        if now <= self._last_tick:
            return 0
        since, self._last_tick = self._last_tick, now
        return self._publish_readings(now) + self._publish_panic(now, since) + self._publish_cases(now, since)

    def run(self, stop_event: threading.Event, interval_s: float) -> None:
        """Tick every ``interval_s`` seconds until ``stop_event`` is set."""
        while not stop_event.is_set():
            try:
                self.tick()
            except Exception:  # keep the demo alive; the next tick starts afresh
                log.exception("live simulator tick failed")
            stop_event.wait(interval_s)
