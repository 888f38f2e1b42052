"""The real app on a copy of a test database, with users to sign in as (for Flask test-client tests)."""
from __future__ import annotations

import base64
import importlib
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

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


def points_in(body: str) -> np.ndarray:
    """(k, 2) every (lat, lng) pair a JSON response draws: lat/lon or y/x of one trace, as lists or as Plotly's
    typed arrays ({"dtype": "f4", "bdata": base64}), which decimals_in cannot read. Empty if not JSON."""
    try:
        doc = json.loads(body)
    except ValueError:
        return np.zeros((0, 2))
    pairs: list[np.ndarray] = []

    def numbers(value) -> np.ndarray | None:
        if isinstance(value, dict) and isinstance(value.get("bdata"), str) and isinstance(value.get("dtype"), str):
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]).newbyteorder("<")
                                 ).astype(float).ravel()
        if isinstance(value, list) and all(v is None or isinstance(v, (int, float)) for v in value):
            return np.array([np.nan if v is None else float(v) for v in value])
        return None

    def walk(node) -> None:
        if isinstance(node, dict):
            for lng_key, lat_key in (("lon", "lat"), ("x", "y")):
                xs, ys = numbers(node.get(lng_key)), numbers(node.get(lat_key))
                if xs is not None and ys is not None and xs.size == ys.size:
                    pairs.append(np.column_stack([ys, xs]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return np.concatenate(pairs) if pairs else np.zeros((0, 2))


def shows_point(points: np.ndarray, lat: float, lng: float, tolerance_deg: float = 1e-5) -> bool:
    """Whether a response's drawn points (points_in) put one within about 1 m of (lat, lng): a pair, not
    two numbers anywhere, so thousands of cell centres do not collide with cases by chance."""
    if points.size == 0:
        return False
    return bool(((np.abs(points[:, 0] - lat) <= tolerance_deg) & (np.abs(points[:, 1] - lng) <= tolerance_deg)).any())


def shows_coordinates(numbers: frozenset[str], lat: float, lng: float) -> bool:
    """Whether a response's decimals (decimals_in) hold a point, as stored or to 5 decimals (about 1 m).

    Whole numbers only: a sensor at lng 101.721303 does not give away a case at 101.72130 (a sensors map
    holds thousands of coordinates, and their substrings collide with cases' by chance).
    """
    def present(value: float) -> bool:
        return f"{value:.5f}" in numbers or repr(float(value)) in numbers
    return present(lat) and present(lng)
