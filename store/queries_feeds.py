"""Named queries of feed freshness: when pheoc last stored a record of each kind (the frame's strip)."""
from __future__ import annotations

import pandas as pd

from store.store import Store


def last_received(store: Store) -> pd.DataFrame:
    """kind, last_received_at (the last commit that stored at least one record of the kind, any channel),
    last_record_at (the newest record time it carried), channels."""
    return store.read(
        """SELECT kind, max(committed_at) AS last_received_at, max(last_record_at) AS last_record_at,
                  string_agg(DISTINCT channel, ', ' ORDER BY channel) AS channels
           FROM ingest_log WHERE accepted > 0 AND kind IS NOT NULL GROUP BY kind ORDER BY kind""")
