"""Demo users: one per role, with fresh random passwords printed once (the demo is rebuilt each time)."""
from __future__ import annotations

import sys
from typing import TextIO

from auth.passwords import Passwords, generate_password
from auth.users import add_user
from auth.principal import ROLES
from settings import Settings
from store import Store
from store import queries_access as qa


def create_demo_users(store: Store, settings: Settings, out: TextIO | None = sys.stderr) -> dict[str, tuple[str, str]]:
    """Create ``demo-<role>`` for every role that signs in; returns {username: (role, password)}."""
    passwords = Passwords(settings.auth)
    precincts = sorted(qa.area_ids_of_kind(store, "precinct"))
    created: dict[str, tuple[str, str]] = {}
    for role in ROLES:
        if role.name == "public":
            continue
        name = f"demo-{role.name.replace('_', '-')}"
        if qa.get_user(store, name) is not None:
            continue
        password = generate_password()
        bound = tuple(precincts[:1]) if role.bindable_to_precincts else ()
        add_user(store, passwords, name, role.name, password, actor="demo", precincts=bound)
        created[name] = (role.name, password)
    if out is not None and created:
        print("[demo] users (sign in at /login; passwords are new every time the demo is built):", file=out)
        for name, (role, password) in created.items():
            print(f"[demo]   {name:<20} {password}   {role}", file=out)
    return created
