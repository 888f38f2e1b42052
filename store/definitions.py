"""The definitions every number rests on, each stated once: counted cases, the populated-area
partition, hospital facilities, and the as-of day.

They are SQL views (applied with the schema at every start) so that every named query reads the
same rows: a query that wants cases reads ``counted_cases``, never ``cases`` with its own filter.
If two screens could count cases differently, one of them would be wrong in front of a mayor.
"""
from __future__ import annotations

from datetime import date

from store.store import Store

# A case counts once confirmed; recovered and deceased cases were confirmed first. A suspected
# case is not a case yet: it is neither shown, nor scanned for clusters, nor used for R(t).
COUNTED_STATUSES = ("confirmed", "recovered", "deceased")
# Areas whose populations partition the city: every resident lives in exactly one of them. The
# boundary holds everyone again and precincts overlap them, so neither may be summed with them.
POPULATED_AREA_KINDS = ("community", "district")
# Facilities whose beds make up "the city's hospital beds". Quarantine centres hold people in
# isolation, not in hospital beds; potential sites (stadiums, halls) have no beds in use yet.
HOSPITAL_KINDS = ("hospital", "icu", "temporary_hospital")
# Facilities that report occupancy at all (hospitals plus isolation beds).
BED_KINDS = (*HOSPITAL_KINDS, "quarantine_centre")
# The id under which citywide figures are stored beside the areas'.
CITYWIDE = "citywide"


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"  # constants of this module, never user input


VIEWS: tuple[str, ...] = (
    f"CREATE OR REPLACE VIEW counted_cases AS SELECT * FROM cases WHERE status IN {_sql_list(COUNTED_STATUSES)}",
    f"CREATE OR REPLACE VIEW populated_areas AS SELECT * FROM areas WHERE kind IN {_sql_list(POPULATED_AREA_KINDS)}",
    f"CREATE OR REPLACE VIEW hospital_facilities AS SELECT * FROM facilities WHERE kind IN {_sql_list(HOSPITAL_KINDS)}",
    f"CREATE OR REPLACE VIEW bed_facilities AS SELECT * FROM facilities WHERE kind IN {_sql_list(BED_KINDS)}",
)


def latest_record_day(store: Store, tz: str) -> date | None:
    """The latest local day with a daily record: a counted case, a test, an admission, a capacity or a
    supply report.

    Sensor readings do not count: they arrive all day, every day, and would always say "today".
    """
    return store.scalar(
        """SELECT max(day) FROM (
             SELECT max(reported_date) AS day FROM counted_cases
             UNION ALL SELECT max(test_date) FROM tests
             UNION ALL SELECT max(admitted_on) FROM admissions
             UNION ALL SELECT max((reported_at AT TIME ZONE ?)::DATE) FROM capacity_reports
             UNION ALL SELECT max((reported_at AT TIME ZONE ?)::DATE) FROM supply_reports)""", [tz, tz])


def as_of_day(store: Store, today: date, tz: str) -> date | None:
    """The day the city's figures describe: today, or the last day with records when the data stop
    earlier (a replay of a past epidemic). None while the store holds no daily records at all.

    The jobs compute for this day and store it with their results; pages and the API read the day
    stored with the results, so nothing else decides it.
    """
    last = latest_record_day(store, tz)
    return None if last is None else min(today, last)
