"""The running app's access service: store, settings, password hasher, sessions, rate limits, device
cookies, the aggregated log of denials, clock."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from auth.denials import DenialLog
from auth.devices import DeviceTrust
from auth.passwords import Passwords
from auth.ratelimit import RateLimiter
from auth.sessions import SessionManager
from settings import AuthConfig, ConfigError
from auth.principal import ROLE_BY_NAME
from store import Store


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AuthService:
    def __init__(self, store: Store, cfg: AuthConfig, clock: Callable[[], datetime] = utc_now,
                 device_key: bytes | None = None):
        for role in cfg.role_timeouts:
            if role not in ROLE_BY_NAME:
                raise ConfigError(f"config 'auth.role_timeouts.{role}': no such role "
                                  f"(roles: {', '.join(ROLE_BY_NAME)})")
        self.store, self.cfg = store, cfg
        self.clock = clock  # tests move time forward by replacing this
        self.passwords = Passwords(cfg)
        self.sessions = SessionManager(store, cfg, self.now)
        # login: per client address; address_check: per user and per address checked (services.address_check)
        self.limiter = RateLimiter({"login": cfg.login_rate_per_min, "address_check": cfg.address_check_rate_per_min})
        self.devices = DeviceTrust(device_key or secrets.token_bytes(32), timedelta(days=cfg.device_trust_days),
                                   cfg.lockout_failures, timedelta(seconds=cfg.lockout_window_s))
        self.denials = DenialLog(store, self.now)

    def now(self) -> datetime:
        return self.clock()

    def stop(self) -> None:
        """Write the pending denial summaries (call before the store closes)."""
        self.denials.close()
