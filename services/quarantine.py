"""Read model of the quarantine: counts by reason (with the reason's meaning) and the latest records.

Below case level the latest records show when, from where, what kind and why — not which record:
the record key can be a case id, and the validator's detail can quote it or the exact coordinates
("lat=2.95123, lng=101.75432 is outside the city boundary"), so both are blanked for everyone but
the data manager (services.privacy, case-level columns). Raw payloads never leave the store here.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from auth.principal import Principal
from ingest.reasons import REASONS
from services.privacy import Disclosure, disclose
from settings import Settings
from store import Store
from store import queries as q

LATEST = Disclosure("quarantine.latest", grain="area", case_level_columns=("record_key", "reason_detail"))


@dataclass(frozen=True)
class RejectedSummary:
    by_reason: pd.DataFrame
    latest: pd.DataFrame
    detail_shown: bool  # False: keys and details were blanked for this principal


def rejected_summary(store: Store, settings: Settings, principal: Principal, limit: int = 100) -> RejectedSummary:
    by_reason = q.quarantine_by_reason(store)
    by_reason["meaning"] = by_reason["reason_code"].map(REASONS).fillna("")
    latest = q.quarantine_recent(store, limit)
    if principal.may_see_points and len(latest):
        # Case-level principals see which record it was: that is a release of case-level rows.
        latest = disclose(principal, latest, Disclosure("quarantine.latest", grain="point",
                                                        case_level_columns=LATEST.case_level_columns),
                          min_count=settings.privacy.min_count)
    else:
        latest = disclose(principal, latest, LATEST, min_count=settings.privacy.min_count)
        latest["reason_detail"] = latest["reason_code"].map(REASONS).fillna("")
    return RejectedSummary(by_reason, latest, principal.may_see_points)
