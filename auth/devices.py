"""Device cookies: a browser that signed in as a user before skips that name's login back-off.

OWASP, "Slow down online guessing attacks with device cookies": after a successful sign-in the
browser receives a signed cookie for that user; a later attempt for the same user from a browser
holding a valid one is exempt from the name's back-off (auth.login). An attacker failing on a
colleague's name thus slows down only browsers the colleague never signed in with. A device cookie
that fails ``auth.lockout_failures`` times within ``auth.lockout_window_s`` stops being trusted
until those failures age out, so a stolen cookie is no licence to guess.

The cookie holds up to MAX_ENTRIES entries, newest first, joined by "~" (a shared command-centre PC
where several operators sign in). An entry is ``<nonce>.<expires, unix s>.<signature>`` with
signature = base64url(HMAC-SHA256(key, "pheoc-device-v1|<name sha256>|<nonce>|<expires>")). The
name is not in the cookie, not even as a digest: each entry is checked against the typed name.
Failures per device are counted in memory (one process serves the app); a restart forgets them,
as it forgets the rate limiter's buckets, while the name's and the address's failures stay in the
database.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from datetime import datetime, timedelta

from settings import ConfigError

log = logging.getLogger(__name__)
COOKIE_NAME = "pheoc_device"
MAX_ENTRIES = 5  # users remembered per browser; the oldest is dropped first
MAX_COOKIE_CHARS = 1024  # longer values are ignored unread (five entries take about 400)
MAX_TRACKED = 10_000  # devices with recent failures kept in memory; the oldest are forgotten beyond this
MIN_KEY_CHARS = 32  # ~190 bits as token_urlsafe(32) prints them; shorter keys are refused
_ENTRY = re.compile(r"^([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")
_CONTEXT = b"pheoc-device-v1"


def device_key(env_name: str) -> bytes:
    """The signing key from the variable ``server.secret_key_env`` names, or a random one for this run."""
    value = os.environ.get(env_name, "")
    if not value:
        log.info("%s is not set: device cookies are signed with a new key at every start", env_name)
        return secrets.token_bytes(32)
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(f"config 'server.secret_key_env': ${env_name} holds {len(value)} characters; use at "
                          f"least {MIN_KEY_CHARS} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return value.encode()


class DeviceTrust:
    def __init__(self, key: bytes, lifetime: timedelta, failures_allowed: int, window: timedelta):
        self._key, self._lifetime = key, lifetime
        self._failures_allowed, self._window = failures_allowed, window
        self._failures: dict[str, list[datetime]] = {}  # nonce -> times of failed attempts
        self._lock = threading.Lock()

    def _signature(self, name_key: str, nonce: str, expires: int) -> str:
        message = b"|".join([_CONTEXT, name_key.encode(), nonce.encode(), str(expires).encode()])
        return base64.urlsafe_b64encode(hmac.new(self._key, message, hashlib.sha256).digest()).rstrip(b"=").decode()

    @staticmethod
    def _entries(cookie: str | None) -> list[tuple[str, int, str]]:
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return []
        out = []
        for part in cookie.split("~")[:MAX_ENTRIES]:
            match = _ENTRY.match(part)
            if match:
                out.append((match.group(1), int(match.group(2)), match.group(3)))
        return out

    def trusted(self, cookie: str | None, name_key: str, now: datetime) -> str | None:
        """The device id (nonce) of a valid, unexpired entry for this name that has not failed too often."""
        for nonce, expires, signature in self._entries(cookie):
            if not hmac.compare_digest(signature, self._signature(name_key, nonce, expires)):
                continue
            if expires <= now.timestamp() or self._failed_too_often(nonce, now):
                return None
            return nonce
        return None

    def issue(self, cookie: str | None, name_key: str, now: datetime) -> str:
        """The browser's new cookie value: a fresh entry for this name first, its other users' entries after."""
        nonce = secrets.token_urlsafe(16)
        expires = int((now + self._lifetime).timestamp())
        entries = [f"{nonce}.{expires}.{self._signature(name_key, nonce, expires)}"]
        for old_nonce, old_expires, signature in self._entries(cookie):
            same_user = hmac.compare_digest(signature, self._signature(name_key, old_nonce, old_expires))
            if not same_user and old_expires > now.timestamp() and len(entries) < MAX_ENTRIES:
                entries.append(f"{old_nonce}.{old_expires}.{signature}")
        return "~".join(entries)

    def failed(self, nonce: str, now: datetime) -> None:
        """Count a failed attempt made with this device's cookie."""
        with self._lock:
            recent = [t for t in self._failures.get(nonce, []) if now - t < self._window]
            self._failures[nonce] = recent[-self._failures_allowed:] + [now]
            if len(self._failures) > MAX_TRACKED:
                oldest = sorted(self._failures, key=lambda n: self._failures[n][-1])[:len(self._failures) // 2]
                for n in oldest:
                    del self._failures[n]

    def _failed_too_often(self, nonce: str, now: datetime) -> bool:
        with self._lock:
            recent = [t for t in self._failures.get(nonce, []) if now - t < self._window]
        return len(recent) >= self._failures_allowed
