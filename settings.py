"""Deployment settings: config.yaml validated at start-up (pydantic v2, frozen, unknown keys rejected).

A command centre must not start half-configured: any unknown key or bad value stops start-up with a
message that names the key's full path (e.g. ``mqtt.port``). Secrets are never written in the file;
the file names the environment variable that holds them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AreaLayer(_Strict):
    kind: Literal["community", "precinct", "district"]
    label: str
    file: Path | None = None  # GeoJSON loaded through the file ingest path at start; None = already in the store


class CityConfig(_Strict):
    name: str = Field(min_length=1)
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")  # used in MQTT topics and file names
    timezone: str = "UTC"
    boundary_file: Path | None = None
    area_layers: tuple[AreaLayer, ...] = ()


class StoreConfig(_Strict):
    path: Path = Path("var/pheoc.duckdb")
    queue_size: int = Field(default=64, ge=1, le=10_000)  # bounded: producers wait rather than grow memory


class IngestConfig(_Strict):
    inbox: Path = Path("var/inbox")
    watch_interval_s: float = Field(default=2.0, gt=0, le=3600)
    batch_max_rows: int = Field(default=5000, ge=1, le=1_000_000)
    batch_max_ms: int = Field(default=200, ge=1, le=60_000)
    max_payload_bytes: int = Field(default=65_536, ge=256)
    # Clocks drift; a reading a few minutes "in the future" is a clock problem, not fabricated data.
    max_future_skew_s: int = Field(default=300, ge=0, le=86_400)


class MqttConfig(_Strict):
    mode: Literal["embedded", "external", "off"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65_535)  # 0 = pick a free port (embedded broker only)
    topic_prefix: str = Field(default="pheoc/city", pattern=r"^[A-Za-z0-9_/-]+$")
    client_id: str = "pheoc-ingest"
    session_expiry_s: int = Field(default=7 * 86_400, ge=0)
    username_env: str | None = None
    password_env: str | None = None
    tls: bool = False

    def credentials(self) -> tuple[str | None, str | None]:
        """Read the broker credentials from the environment variables the config names."""
        return (os.environ.get(self.username_env) if self.username_env else None,
                os.environ.get(self.password_env) if self.password_env else None)


class MapConfig(_Strict):
    basemap: Literal["offline", "tiles"] = "offline"
    tile_url: str | None = None
    tile_attribution: str = ""
    h3_resolution: int = Field(default=9, ge=7, le=10)
    recent_days: int = Field(default=14, ge=1, le=365)

    @model_validator(mode="after")
    def _tiles_need_url(self):
        if self.basemap == "tiles" and not self.tile_url:
            raise ValueError("map.tile_url is required when map.basemap is 'tiles'")
        return self


class PrivacyConfig(_Strict):
    # Counts below this are shown as "<k" to roles that may not see small counts (re-identification risk).
    min_count: int = Field(default=5, ge=1, le=100)


class WallConfig(_Strict):
    refresh_s: int = Field(default=10, ge=1, le=3600)
    rotation: tuple[str, ...] = ("/",)
    rotation_s: int = Field(default=60, ge=5, le=3600)

    @field_validator("rotation")
    @classmethod
    def _paths(cls, v):
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"rotation entries are page paths starting with '/': {p!r}")
        return v


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65_535)
    secret_key_env: str = "PHEOC_SECRET_KEY"


class DemoConfig(_Strict):
    seed: int = 7
    days: int = Field(default=120, ge=14, le=730)
    workdir: Path = Path("var/demo")
    simulator_interval_s: float = Field(default=2.0, gt=0)
    # Demo only: live case reports arrive this many times faster than the epidemic's real rate (about
    # 40 a day, one every ~36 min), so a wall screen visibly moves within a minute or two.
    live_case_speedup: float = Field(default=30.0, ge=0, le=1000)


class ClustersConfig(_Strict):
    """Micro-cluster detection (space-time permutation scan) and containment zones."""
    resolution: int = Field(default=9, ge=7, le=10)
    max_radius_m: float = Field(default=1000.0, gt=0, le=20_000)
    max_share: float = Field(default=0.5, gt=0, le=0.5)  # Kulldorff: at most half the cases in a cylinder
    max_window_days: int = Field(default=21, ge=1, le=90)  # windows ending today of 1..D days
    study_days: int = Field(default=120, ge=14, le=730)
    replications: int = Field(default=999, ge=9, le=99_999)
    seed: int = 1
    min_cases: int = Field(default=3, ge=1)
    report_p_max: float = Field(default=0.05, gt=0, le=1)
    zone_rulebook: Path = Path("rulebooks/zones_nys_cai_2020.yaml")
    run_every_s: int = Field(default=300, ge=5)


class EarlyWarningConfig(_Strict):
    """Indicators, Rt, aberration detection, the active rulebook and forecasts."""
    rulebooks: tuple[Path, ...] = (Path("rulebooks/harvard_ghi.yaml"), Path("rulebooks/covid_act_now.yaml"),
                                   Path("rulebooks/cdc_community_levels_2022.yaml"), Path("rulebooks/custom.yaml"))
    active_rulebook: str = "harvard_ghi"
    # SARS-CoV-2 serial interval: mean 4.7 d, sd 2.9 d (Nishiura et al. 2020), as EpiEstim users often take.
    serial_interval_mean: float = Field(default=4.7, gt=1)
    serial_interval_std: float = Field(default=2.9, gt=0)
    rt_window: int = Field(default=7, ge=2, le=28)
    forecast_days: int = Field(default=28, ge=7, le=60)
    # Each projected R relaxes towards 1 with this time constant (days): holding today's R for four
    # weeks overshoots badly. 7 days scored best of None/7/14/21 in the backtest (bench/forecast_backtest.py)
    # on the demo city and the Malaysian series: chosen on the same data it is reported on.
    forecast_r_relax_days: float | None = Field(default=7.0, gt=0)
    capacity_threshold: float = Field(default=0.9, gt=0, le=1)
    # Sensor metrics the alarms and indicators read (names as the sensors report them; the demo's).
    wastewater_metric: str = "sars_cov_2_rna"
    fever_metric: str = "fever_alerts"
    run_every_s: int = Field(default=300, ge=5)


class CapacityConfig(_Strict):
    """Facility capacity, supplies and the bed projection on /capacity."""
    # Facilities report once a day (the NHSN/SANER cadence); two hours of grace before a report is stale.
    stale_after_hours: float = Field(default=26.0, gt=0, le=24 * 30)
    supplies_warn_days: float = Field(default=7.0, gt=0, le=365)  # days on hand (stock / daily use)
    supplies_critical_days: float = Field(default=3.0, gt=0, le=365)
    full_threshold: float = Field(default=0.9, gt=0, le=1)  # "full" = 90 % of beds (NY red-zone rule, Dec 2020)
    forecast_days: int = Field(default=28, ge=7, le=60)
    trend_days: int = Field(default=90, ge=14, le=1500)
    # Cases -> occupied beds (analytics.forecast): delay from report to admission and Gamma length of stay.
    admission_lag_days: int = Field(default=3, ge=0, le=30)
    los_mean_days: float = Field(default=8.0, gt=0, le=90)
    los_std_days: float = Field(default=6.0, gt=0, le=90)
    rising_demand_change: float = Field(default=0.10, ge=0, le=10)  # week-on-week case growth called "rising"

    @model_validator(mode="after")
    def _critical_below_warn(self):
        if self.supplies_critical_days > self.supplies_warn_days:
            raise ValueError("capacity.supplies_critical_days must not exceed capacity.supplies_warn_days")
        return self


class RoleSessionLimits(_Strict):
    idle_timeout_s: int = Field(ge=60, le=90 * 86_400)
    absolute_timeout_s: int = Field(ge=300, le=365 * 86_400)


class AuthConfig(_Strict):
    """Logins, server-side sessions, lockout and rate limits (see docs/security.md)."""
    # OWASP ASVS V3.3: sign out after 30 min without activity and after 12 h in any case (one shift).
    idle_timeout_s: int = Field(default=1800, ge=60, le=90 * 86_400)
    absolute_timeout_s: int = Field(default=12 * 3600, ge=300, le=365 * 86_400)
    # Per-role overrides; the command-centre wall screen is signed in once and left running.
    role_timeouts: dict[str, RoleSessionLimits] = {
        "operator": RoleSessionLimits(idle_timeout_s=7 * 86_400, absolute_timeout_s=30 * 86_400)}
    lockout_failures: int = Field(default=5, ge=1, le=1000)  # per account name within lockout_window_s
    address_lockout_failures: int = Field(default=20, ge=1, le=100_000)  # per client address, any names
    lockout_window_s: int = Field(default=900, ge=10, le=7 * 86_400)  # a lock lifts as failures age out
    login_rate_per_min: int = Field(default=10, ge=1, le=10_000)  # login POSTs per client address
    secure_cookies: Literal["auto", "always", "never"] = "auto"  # auto: Secure when the request came over TLS
    trusted_proxies: int = Field(default=0, ge=0, le=5)  # reverse proxies whose X-Forwarded-* to believe
    first_admin_user_env: str = "PHEOC_ADMIN_USER"
    first_admin_password_env: str = "PHEOC_ADMIN_PASSWORD"
    # argon2id cost: RFC 9106 §4 second recommendation (64 MiB, t=3, p=4); floors = OWASP minimum (19 MiB, t=2).
    argon2_memory_kib: int = Field(default=65_536, ge=19_456, le=4_194_304)
    argon2_time_cost: int = Field(default=3, ge=2, le=20)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    erase_also: tuple[Path, ...] = (Path("var/exports"),)  # folders besides the inbox that erasure rewrites


class Settings(_Strict):
    city: CityConfig
    store: StoreConfig = StoreConfig()
    ingest: IngestConfig = IngestConfig()
    mqtt: MqttConfig = MqttConfig()
    map: MapConfig = MapConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    wall: WallConfig = WallConfig()
    server: ServerConfig = ServerConfig()
    demo: DemoConfig = DemoConfig()
    auth: AuthConfig = AuthConfig()
    clusters: ClustersConfig = ClustersConfig()
    early_warning: EarlyWarningConfig = EarlyWarningConfig()
    capacity: CapacityConfig = CapacityConfig()
    base_dir: Path = PROJECT_ROOT  # relative paths in the file are relative to the file's folder

    def path(self, p: Path) -> Path:
        """Resolve a configured path against the config file's folder."""
        return p if p.is_absolute() else (self.base_dir / p)

    def with_overrides(self, **sections) -> "Settings":
        """A copy with whole sections replaced (tests and the demo command use this)."""
        data = self.model_dump()
        for name, value in sections.items():
            data[name] = value.model_dump() if isinstance(value, BaseModel) else value
        return Settings.model_validate(data)


def _describe(error: ValidationError) -> str:
    lines = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            lines.append(f"'{key}': {e['msg']}")
    return "; ".join(lines)


def parse_settings(mapping: object, base_dir: Path = PROJECT_ROOT) -> Settings:
    """Validate a parsed config mapping; raise ConfigError naming each bad key."""
    if not isinstance(mapping, dict):
        raise ConfigError("config: the top level must be a mapping of sections")
    try:
        return Settings.model_validate({**mapping, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(f"config invalid: {_describe(exc)}") from None


def load_settings(path: Path | str | None = None) -> Settings:
    """Read and validate a config file (default: config.yaml beside this module)."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        mapping = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return parse_settings(mapping, base_dir=path.resolve().parent)
