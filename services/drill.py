"""Drill mode (ISO/IEC 5153-1 emergency exercises): whether this database is a drill's, and its banner.

A drill runs on its own database file (``python app.py drill`` builds it under drill.workdir from
synthetic data) marked ``store_mode = exercise`` when it is built. Everything shown or exported
from such a database says so: every page carries the EXERCISE banner (pages/_shell.py), every
JSON answer of the API an ``exercise`` field and every response the ``X-Pheoc-Exercise`` header
(api/alerts.py), and every CAP document status Exercise (enforced in cap.message.to_xml).
"""
from __future__ import annotations

from store import Store
from store import queries_warnings as qw

BANNER = "EXERCISE"


def exercise_banner(store: Store) -> str | None:
    """The banner text for a drill database, None for a real one."""
    if not qw.is_exercise(store):
        return None
    scenario = qw.exercise_scenario(store)
    return (f"{BANNER} — drill scenario {scenario or ''}: synthetic data, not the city's; "
            "warnings go out with status Exercise").replace("  ", " ")
