"""The real app on a copy of a test database, with users to sign in as (for Flask test-client tests)."""
from __future__ import annotations

import importlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from tests.auth_helpers import FAST_AUTH, TEST_PASSWORD
from tests.conftest import ROOT


def app_on_copy(settings, folder: Path, users: Iterable[tuple[str, str]] = (), **sections):
    """(app, store, settings) of create_app on a copy of ``settings``' database in ``folder``.

    ``users`` are (name, role) pairs added with TEST_PASSWORD; ``sections`` override config
    sections (pydantic models, e.g. clusters=...). Dash hands callbacks registered at import time
    in a non-page module (pages/_shell.py) to the first app of a process only, so the shell is
    re-imported: each test module's app then has every callback. Call ``close_app`` when done.
    """
    from app import create_app
    from auth.users import add_user
    from store import Store

    db = Path(folder) / "pheoc.duckdb"
    shutil.copy(settings.path(settings.store.path), db)
    # Tests sign in many times a minute from one address: the login rate limit is not what they test.
    auth = settings.auth.model_copy(update={**FAST_AUTH, "login_rate_per_min": 1000})
    settings = settings.with_overrides(store=settings.store.model_copy(update={"path": db}), auth=auth,
                                       base_dir=ROOT, **sections)
    store = Store(db)
    importlib.reload(importlib.import_module("pages._shell"))
    app = create_app(settings, store)
    svc = app.server.extensions["pheoc.auth"]
    for name, role in users:
        add_user(store, svc.passwords, name, role, TEST_PASSWORD, actor="test")
    assert app.server.test_client().get("/").status_code == 200  # Dash collects callbacks, adds its router
    return app, store, settings


def close_app(app, store) -> None:
    """Write what the app still holds in memory (denials, buffered reads), then close the store."""
    from auth.web import stop_auth

    stop_auth(app)  # as `serve` does on its way out
    store.close()


def decimals_in(body: str) -> frozenset[str]:
    """The decimal numbers in a response, each whole ("101.721303", never its prefix "101.72130")."""
    return frozenset(re.findall(r"\d+\.\d+", body))


def shows_coordinates(numbers: frozenset[str], lat: float, lng: float) -> bool:
    """Whether a response's decimals (decimals_in) hold a point, as stored or to 5 decimals (about 1 m).

    Whole numbers only: a sensor at lng 101.721303 does not give away a case at 101.72130 (a sensors map
    holds thousands of coordinates, and their substrings collide with cases' by chance).
    """
    def present(value: float) -> bool:
        return f"{value:.5f}" in numbers or repr(float(value)) in numbers
    return present(lat) and present(lng)
