"""The running instance's parts (settings, store, ingestors), reachable from inside a request.

app.create_app() puts a Runtime into the Flask app's extensions; callbacks and API handlers look
it up with current_runtime(), so nothing depends on module-level globals and each app owns its
own store. It lives in auth/ beside the current principal: both answer "who is asking, and which
instance answers" for a request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from settings import Settings
from store import Store


@dataclass
class Runtime:
    settings: Settings
    store: Store
    started_at: datetime
    components: dict[str, Any] = field(default_factory=dict)  # ingestors, broker, jobs: for /healthz

    def today(self) -> date:
        """Today's date in the city's time zone."""
        return datetime.now(ZoneInfo(self.settings.city.timezone)).date()


RUNTIME_KEY = "pheoc"


def current_runtime() -> Runtime:
    return current_app.extensions[RUNTIME_KEY]
