"""Data-freshness strip: last record and counts per ingest source, and what was rejected."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
from dash import html


def _age(ts, now: datetime) -> tuple[str, str]:
    if ts is None or pd.isna(ts):
        return "never", "bad"
    seconds = (now - pd.Timestamp(ts).to_pydatetime()).total_seconds()
    if seconds < 120:
        text = f"{max(seconds, 0):.0f} s ago"
    elif seconds < 7200:
        text = f"{seconds / 60:.0f} min ago"
    elif seconds < 172800:
        text = f"{seconds / 3600:.0f} h ago"
    else:
        text = f"{seconds / 86400:.0f} d ago"
    # Live feeds should report within minutes; a day-old feed needs a look.
    return text, "ok" if seconds < 3600 else "warn" if seconds < 86400 else "bad"


def freshness_strip(freshness: pd.DataFrame, rejected_total: int, rejected_by_reason: pd.DataFrame,
                    now: datetime | None = None) -> html.Div:
    now = now or datetime.now(timezone.utc)
    items = []
    for r in freshness.itertuples(index=False):
        text, status = _age(r.last_commit_at, now)
        items.append(html.Div(className=f"fresh fresh-{status}", **{"data-source": f"{r.channel}:{r.kind}"},
                              title=f"last record time {r.last_record_at}", children=[
            html.Span(f"{r.channel} · {r.kind}", className="fresh-name"),
            html.Span(text, className="fresh-age"),
            html.Span(f"{int(r.accepted):,} ok · {int(r.rejected) + int(r.conflicting):,} rejected · "
                      f"{int(r.duplicate):,} dup", className="fresh-counts")]))
    reasons = ", ".join(f"{r.reason_code} ({int(r.records)})" for r in rejected_by_reason.head(4).itertuples())
    items.append(html.Div(className="fresh fresh-" + ("warn" if rejected_total else "ok"), id="rejected-total",
                          children=[html.Span("quarantine", className="fresh-name"),
                                    html.Span(f"{rejected_total:,} rejected", className="fresh-age"),
                                    html.Span(reasons or "nothing rejected", className="fresh-counts")]))
    return html.Div(items, className="fresh-strip")
