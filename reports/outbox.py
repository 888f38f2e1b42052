"""The scheduled briefing: each day at ``briefing.time`` (city time) the briefing of the latest complete day is
written to ``briefing.outbox`` as ``<date>.pdf`` and ``<date>.json``, once per day.

Idempotent per day: a day whose files are there is not written again (a restart, or a second check in
the same minute, changes nothing), and a file appears whole or not at all (written beside it, then
renamed). The JSON is written last: it marks the day done. Without a renderer the JSON is still written
and /healthz says why the PDF is missing; a failed render is tried again at the next check.

The briefing is made as the executive role sees it (cells, small counts withheld), since the outbox is
the mayor's. Each day written is an ``export`` audit record, and is queued for ``briefing.recipients``
through the delivery channels (delivery.deliver: MQTT, webhook, e-mail, with retries). /healthz shows the state (``health()``).
Runs on its own thread, started by app.py for ``serve`` and ``demo`` when ``briefing.scheduled``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from auth.principal import principal_for
from delivery import deliver
from reports.briefing_pdf import RendererUnavailable, RenderError, make_briefing_pdf, renderer_status
from services.briefing import NoBriefing, briefing_json, daily_briefing, latest_complete_day
from services.open_data import record_export
from settings import Settings

log = logging.getLogger(__name__)
OUTBOX_ACTOR = "briefing-outbox"
PURPOSE = "scheduled daily briefing"


def outbox_principal():
    return principal_for(OUTBOX_ACTOR, "executive", via="system")


def _write_whole(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


class BriefingOutbox:
    def __init__(self, store, settings: Settings):
        self._store, self._settings = store, settings
        self.folder = settings.path(settings.briefing.outbox)
        hours, minutes = (int(x) for x in settings.briefing.time.split(":"))
        self._at = time(hours, minutes)
        self._tz = ZoneInfo(settings.city.timezone)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="briefing-outbox", daemon=True)
        self._lock = threading.Lock()
        self.last_day: date | None = None
        self.last_written_at: str | None = None
        self.last_error: str | None = None
        self.pdf_state = "not written yet"

    # ---- one check ----------------------------------------------------------------------------------
    def paths(self, day: date) -> tuple[Path, Path]:
        return self.folder / f"{day.isoformat()}.pdf", self.folder / f"{day.isoformat()}.json"

    def due_day(self, now: datetime) -> date | None:
        """The day to write now, or None: before the configured time, nothing stored, or already written."""
        if now.astimezone(self._tz).time() < self._at:
            return None
        day = latest_complete_day(self._store, self._settings, now)
        if day is None:
            return None
        pdf, doc = self.paths(day)
        renderer = renderer_status(self._settings)
        if doc.exists() and (pdf.exists() or not renderer.available):
            return None
        return day

    def run_once(self, now: datetime | None = None) -> dict | None:
        """Write the due day if there is one; returns what was written (None: nothing due)."""
        now = now or datetime.now(timezone.utc)
        with self._lock:
            day = self.due_day(now)
            if day is None:
                return None
            try:
                return self._write(day, now)
            except Exception as exc:  # the server goes on; /healthz shows the failure
                log.exception("the scheduled briefing of %s failed", day)
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                return {"day": day.isoformat(), "error": self.last_error}

    def _write(self, day: date, now: datetime) -> dict:
        self.folder.mkdir(parents=True, exist_ok=True)
        pdf_path, json_path = self.paths(day)
        principal = outbox_principal()
        written = []
        try:
            briefing, printed = make_briefing_pdf(self._store, self._settings, principal, day, now)
            _write_whole(pdf_path, printed.pdf)
            written.append(pdf_path.name)
            self.pdf_state = f"written ({len(printed.pdf):,} bytes in {printed.seconds:.1f} s)"
        except RendererUnavailable as exc:
            briefing = daily_briefing(self._store, self._settings, principal, day, now)
            self.pdf_state = str(exc)
        except (RenderError, NoBriefing) as exc:
            self.pdf_state = f"failed: {str(exc).splitlines()[0]}"
            raise
        document = briefing_json(briefing)
        document["pdf"] = pdf_path.name if written else None
        _write_whole(json_path, json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"))
        written.append(json_path.name)
        sent = self._send(day, pdf_path if pdf_path.name in written else None, json_path)
        record_export(self._store, OUTBOX_ACTOR, "briefing_outbox", PURPOSE,
                      {"date": day.isoformat(), "files": written, "folder": str(self.folder), "queued_to": sent})
        self.last_day, self.last_written_at, self.last_error = day, now.isoformat(), None
        return {"day": day.isoformat(), "files": written}

    def _send(self, day: date, pdf_path: Path | None, json_path: Path) -> list[str]:
        """Queue the day's briefing (the PDF, or the JSON without a renderer) for briefing.recipients.

        The delivery outbox sends it, retries and logs each attempt; queued once per day and recipient,
        so a second write of the same day (a renderer installed later) sends nothing twice.
        """
        recipients = self._settings.briefing.recipients
        if not recipients:
            return []
        path, content_type = (pdf_path, "application/pdf") if pdf_path else (json_path, "application/json")
        deliver(self._store, self._settings, "briefing", day.isoformat(), path.read_bytes(), recipients,
                content_type=content_type, subject=f"Daily briefing {day:%-d %B %Y}", topic_key=day.isoformat())
        return list(recipients)

    # ---- the thread ---------------------------------------------------------------------------------
    def start(self) -> "BriefingOutbox":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._settings.briefing.render_timeout_s + 10)

    def _loop(self) -> None:
        # The first check waits one interval: the jobs have stored the day's figures by then.
        while not self._stop.wait(self._settings.briefing.check_every_s):
            self.run_once()

    def health(self) -> dict[str, Any]:
        pdf_missing = self.last_day is not None and not self.paths(self.last_day)[0].exists()
        return {"ok": self.last_error is None and not pdf_missing, "time": self._settings.briefing.time,
                "timezone": self._settings.city.timezone, "outbox": str(self.folder),
                "last_day": self.last_day.isoformat() if self.last_day else None,
                "last_written_at": self.last_written_at, "pdf": self.pdf_state, "last_error": self.last_error}
