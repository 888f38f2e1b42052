"""Read model of the quarantine: counts by reason (with the reason's meaning) and the latest records."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ingest.reasons import REASONS
from store import Store
from store import queries as q


@dataclass(frozen=True)
class RejectedSummary:
    by_reason: pd.DataFrame
    latest: pd.DataFrame


def rejected_summary(store: Store, limit: int = 100) -> RejectedSummary:
    by_reason = q.quarantine_by_reason(store)
    by_reason["meaning"] = by_reason["reason_code"].map(REASONS).fillna("")
    return RejectedSummary(by_reason=by_reason, latest=q.quarantine_recent(store, limit))
