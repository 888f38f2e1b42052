"""The callback registry: which permission each Dash callback declared.

pages._secure.secure_callback registers every page callback here; auth.web authorises each
``/_dash-update-component`` request against it before Dash dispatches the call, and refuses a
callback that is not registered (default deny). Kept in auth/ so auth never imports pages.
"""
from __future__ import annotations

from collections.abc import Callable

# "module.function" -> permission
CALLBACK_PERMISSIONS: dict[str, str] = {}


def callback_key(fn: Callable) -> str:
    """How a callback is named in the registry: module.function (Dash's wrappers keep both)."""
    return f"{fn.__module__}.{fn.__name__}"


def register_callback(fn: Callable, permission: str) -> None:
    from auth.principal import PERMISSIONS

    if permission not in PERMISSIONS:
        raise ValueError(f"{callback_key(fn)} declares unknown permission {permission!r}")
    CALLBACK_PERMISSIONS[callback_key(fn)] = permission


def permissions_of_module(module: str | None) -> frozenset[str]:
    """Every permission the callbacks of one page module declare."""
    return frozenset(p for key, p in CALLBACK_PERMISSIONS.items() if key.rsplit(".", 1)[0] == module)
