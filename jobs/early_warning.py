"""The early-warning job: indicators, levels, alarms, alerts and forecasts for every area and the city.

``run(store, settings, today)`` reads the daily series, computes everything with services.early_warning
and commits all of it in one writer transaction, so a page never sees half a run. It is idempotent per
day: rerunning on the same data stores the same indicators and forecasts (fixed seed), records no level
change, keeps open alarm episodes and alerts as they are, and raises nothing twice (alerts carry a
dedupe_key).
"""
from __future__ import annotations

import time
from datetime import date, datetime, timezone

from services import early_warning as ew
from settings import Settings
from store import Store
from store import queries_warning as qw


def run(store: Store, settings: Settings, today: date) -> dict:
    """One run; returns a JSON-ready summary (shown in /healthz under the job scheduler)."""
    started = time.monotonic()
    as_of = ew.as_of_date(store, today)
    if as_of is None:
        return {"as_of": None, "skipped": "no cases in the store"}
    now = datetime.now(timezone.utc)
    data = ew.load_daily(store, settings, as_of)
    si = ew.serial_interval(settings)

    indicators = ew.compute_indicators(data, settings, si)
    rulebooks = ew.load_rulebooks(settings)
    choice = qw.latest_rulebook_choice(store)
    rulebook = ew.active_rulebook(store, settings, rulebooks)
    levels = ew.assess_levels(rulebook, ew.indicator_table(indicators))

    alarms = ew.detect_alarms(data, settings.privacy.min_count)
    hospital = ew.hospital_parameters(store, data)
    forecasts = [ew.forecast_area(data, area_id, hospital, settings, si) for area_id in data.area_ids()]
    city_run = next(f.run for f in forecasts if f.run.area_id == ew.CITYWIDE)
    capacity = ew.capacity_alert(city_run, settings.early_warning.capacity_threshold)
    expected_choice = None if choice is None else int(choice["choice_id"])

    def write(con) -> dict:
        written = {"indicators": qw.replace_indicators(con, as_of, indicators, now)}
        # A rulebook switch committed while this run computed has already levelled the areas with the new
        # rulebook; levels of the old one must not overwrite them.
        latest = con.execute("SELECT max(choice_id) FROM ew_rulebook_choices").fetchone()[0]
        if latest == expected_choice:
            written["level_changes"] = qw.store_levels(con, as_of, levels, now)
        else:
            written["level_changes"] = 0
            written["levels_skipped"] = "rulebook switched during the run"
        written["alarms"] = qw.sync_alarms(con, as_of, alarms.episodes, now)
        written["aberration_alerts"] = qw.sync_alerts(con, ew.ALERT_KIND_ABERRATION, alarms.alerts, now)
        written["capacity_alerts"] = qw.sync_alerts(con, ew.ALERT_KIND_CAPACITY,
                                                    [capacity] if capacity else [], now)
        for result in forecasts:
            qw.replace_forecast(con, result.run, result.bands, now)
        return written

    written = store.submit(write).result()
    city_levels = {lv.area_id: lv.level for lv in levels}
    return {
        "as_of": as_of.isoformat(),
        "areas": len(data.area_ids()),
        "rulebook": f"{rulebook.id}@{rulebook.version}",
        "citywide_level": city_levels.get(ew.CITYWIDE),
        "level_changes": written["level_changes"],
        "open_alarms": len(alarms.episodes),
        "alerts_raised": written["aberration_alerts"]["raised"] + written["capacity_alerts"]["raised"],
        "alerts_resolved": written["aberration_alerts"]["resolved"] + written["capacity_alerts"]["resolved"],
        "citywide_r": None if city_run.r_mean is None else round(city_run.r_mean, 3),
        "beds_days_to_threshold": city_run.beds_days_median,
        "capacity_trigger": bool(city_run.capacity_trigger),
        "seconds": round(time.monotonic() - started, 2),
    }
