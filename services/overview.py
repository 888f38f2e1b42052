"""The overview (wall screen) read model: KPI tiles, the map of recent cases, trends, data freshness.

Tiles are figures of services.indicators (the same as GET /api/v1/indicators); the map shows H3
cells to principals that may see cells (inside their precincts, for police) and community areas to
everyone else; the trend is services.series. Nothing here computes an indicator.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from analytics import catalog as cat
from analytics import indicators as ind
from auth.principal import Principal
from services.formatting import change_text
from services.indicators import Figure, IndicatorReport, NoIndicators, detail_of, indicator_report, previous_report
from services.privacy import Disclosure, disclose, jurisdiction
from services.series import daily_view
from settings import Settings
from store import Store
from store import queries as q

TREND_DAYS = 90
# The overview's tiles, in order on the wall.
TILE_KEYS = (cat.NEW_CASES_24H, cat.NEW_CASES_7D, cat.INCIDENCE_7D_PER_100K, ind.TEST_POSITIVITY_7D, ind.RT,
             ind.BED_OCCUPANCY, ind.ICU_OCCUPANCY, cat.ACTIVE_ALERTS)
CELL_MAP = Disclosure("overview.case_cells", grain="cell", counts=("cases",))
AREA_MAP = Disclosure("overview.case_areas", grain="area", counts=("cases",), complementary=("cases",))


@dataclass(frozen=True)
class Tile:
    figure: Figure
    detail: str
    status: str


@dataclass(frozen=True)
class MapLayer:
    grain: str  # "cell" or "area"
    rows: pd.DataFrame  # h3_cell or area_id, value, value__suppressed
    days: int


@dataclass(frozen=True)
class OverviewData:
    as_of: date | None
    tiles: tuple[Tile, ...]
    map: MapLayer
    trend: pd.DataFrame


@dataclass(frozen=True)
class IngestStatus:
    """The freshness strip under the overview: the last record and batch per feed, and what was rejected
    (counts, reason codes and times only: nothing about anyone). Read apart from OverviewData because it
    changes with every batch of sensor readings, which nothing else on the overview reads itself."""
    freshness: pd.DataFrame
    rejected_total: int
    rejected_by_reason: pd.DataFrame


def ingest_status(store: Store) -> IngestStatus:
    return IngestStatus(q.ingest_freshness(store), q.quarantine_count(store), q.quarantine_by_reason(store))


def _tile(report: IndicatorReport, key: str, week_before: IndicatorReport | None) -> Tile:
    f = report.figures
    figure = f[key]
    detail, status = detail_of(report, key), figure.status
    if key == cat.NEW_CASES_24H:
        previous = week_before.figures[key] if week_before else None
        detail, status = change_text(figure.value, previous.value if previous else None, what="same day last week")
    elif key == cat.NEW_CASES_7D:
        detail, status = change_text(figure.value, f[cat.NEW_CASES_PREVIOUS_7D].value)
    elif key == cat.ACTIVE_ALERTS:
        status = "bad" if figure.value else "ok"
    return Tile(figure, detail, status if not figure.suppressed else "neutral")


def map_layer(store: Store, settings: Settings, principal: Principal, as_of: date) -> MapLayer:
    """Counted cases of the last map.recent_days days: per H3 cell where the principal may see cells,
    else per community area."""
    days = settings.map.recent_days
    start, end = q.window(as_of, days)
    if principal.sees_at_least("cells"):
        cells = q.case_counts_by_cell(store, start, end)
        shown = disclose(principal, cells, CELL_MAP, min_count=settings.privacy.min_count,
                         jurisdiction=jurisdiction(store))
        return MapLayer("cell", shown.rename(columns={"cases": "value", "cases__suppressed": "value__suppressed"}),
                        days)
    areas = q.case_counts_by_area(store, start, end)
    shown = disclose(principal, areas, AREA_MAP, min_count=settings.privacy.min_count)
    return MapLayer("area", shown.rename(columns={"cases": "value", "cases__suppressed": "value__suppressed"}), days)


def overview(store: Store, settings: Settings, principal: Principal, now: datetime | None = None) -> OverviewData:
    """Everything the overview page shows for this principal, but the freshness strip (ingest_status)."""
    try:
        report = indicator_report(store, settings, principal, now=now)
    except NoIndicators:
        return OverviewData(None, (), MapLayer("area", pd.DataFrame(columns=["area_id", "value"]), 0),
                            pd.DataFrame())
    week_before = previous_report(store, settings, principal, report, 7)
    tiles = tuple(_tile(report, key, week_before) for key in TILE_KEYS)
    first = q.first_counted_case_day(store) or report.day
    start = max(report.day - timedelta(days=TREND_DAYS - 1), first)
    trend = daily_view(store, settings, principal, "citywide", start, report.day)
    return OverviewData(report.day, tiles, map_layer(store, settings, principal, report.day), trend)
