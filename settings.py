"""Deployment settings: config.yaml validated at start-up (pydantic v2, frozen, unknown keys rejected).

A command centre must not start half-configured: any unknown key or bad value stops start-up with a
message that names the key's full path (e.g. ``mqtt.port``). Secrets are never written in the file;
the file names the environment variable that holds them.
"""
from __future__ import annotations

import os
from datetime import date
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
    max_payload_bytes: int = Field(default=65_536, ge=256)  # one MQTT message, or one record of a file
    # Clocks drift; a reading a few minutes "in the future" is a clock problem, not fabricated data.
    max_future_skew_s: int = Field(default=300, ge=0, le=86_400)
    # Dates before this are placeholders or upstream parse failures, not data: 0001-01-01 is the zero
    # of many date types, 1900-01-01 Excel's day one and a common "unknown". pheoc's records describe
    # a current emergency; the oldest series it replays (MoH Malaysia) start in 2020, and 2000 leaves
    # room for historical baselines (SARS 2003, H1N1 2009) while catching every placeholder.
    earliest_date: date = date(2000, 1, 1)
    # A bigger file is refused whole, without being parsed. CSV and NDJSON stream, so this bounds disk and time,
    # not memory; 2 GiB is months of a city's readings in one file.
    max_file_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # JSON and GeoJSON files are parsed whole (the standard library has no streaming JSON parser) and
    # take several times their size in memory: 64 MiB holds any city's area layers and keeps the parse
    # to a few hundred MB. Bulk data belongs in CSV or NDJSON.
    max_document_bytes: int = Field(default=64 * 1024**2, ge=1024)
    # For writers that neither rename from NAME.part nor drop NAME.done (docs/ingest.md): a file is
    # taken once its size and mtime have stayed the same for this long, seen on consecutive passes.
    # Longer than the pauses of ordinary writers (a 7 s pause once cut a file in half).
    settle_s: float = Field(default=10.0, ge=0, le=3600)

    @field_validator("earliest_date")
    @classmethod
    def _earliest_date_in_the_past(cls, v: date) -> date:
        if v > date.today():
            raise ValueError("must not be in the future (every record would be refused)")
        return v


class MqttConfig(_Strict):
    """The MQTT ingestor and its broker. ``embedded``: pheoc starts a loopback broker with passwords it
    makes at each start (ingest/broker.py); ``external``: a broker of your own, e.g. deploy/mosquitto.conf."""
    mode: Literal["embedded", "external", "off"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65_535)  # 0 = pick a free port (embedded broker only)
    topic_prefix: str = Field(default="pheoc/city", pattern=r"^[A-Za-z0-9_/-]+$")
    # The start of the ingestor's client id; a random part is added once per installation and kept
    # beside the database (ingest.mqtt.installation_client_id says why).
    client_id: str = Field(default="pheoc-ingest", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    session_expiry_s: int = Field(default=7 * 86_400, ge=0)
    # external mode: the variables holding the broker user name and password (never the values here)
    username_env: str | None = None
    password_env: str | None = None
    # external mode: TLS, verifying the broker against tls_ca_file (default: the system's CAs), and
    # a client certificate with its unencrypted key for brokers that require one.
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.tls and self.mode == "embedded":
            raise ValueError("mqtt.tls is for mode 'external'; the embedded broker listens on loopback only")
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            if getattr(self, key) is not None and not self.tls:
                raise ValueError(f"mqtt.{key} is set but mqtt.tls is false (the connection would not use it)")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("mqtt.tls_cert_file and mqtt.tls_key_file go together (a client certificate and its key)")
        if self.password_env and not self.username_env:
            raise ValueError("mqtt.password_env needs mqtt.username_env (a password belongs to a user name)")
        return self

    def credentials(self) -> tuple[str | None, str | None]:
        """Read the broker credentials from the environment variables the config names.

        A variable that is named but not set stops the start with a message naming its key, instead
        of connecting without a password and being refused, or worse, let in anonymously.
        """
        values = []
        for key in ("username_env", "password_env"):
            name = getattr(self, key)
            if name and os.environ.get(name) is None:
                raise ConfigError(f"config 'mqtt.{key}': environment variable {name} is not set")
            values.append(os.environ.get(name) if name else None)
        return values[0], values[1]

    def with_paths_under(self, base_dir: Path) -> "MqttConfig":
        """A copy whose relative TLS file paths are resolved against the config file's folder."""
        keys = ("tls_ca_file", "tls_cert_file", "tls_key_file")
        return self.model_copy(update={k: base_dir / getattr(self, k) for k in keys
                                       if getattr(self, k) is not None and not getattr(self, k).is_absolute()})


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
    # Waitress worker threads in the one serving process (one process owns the DuckDB file). Waitress's
    # default is 4; a wall screen fires up to three callbacks per refresh, so 8 lets two wall screens and
    # a few operators refresh together without queueing. More threads add waiting room, not CPU (one GIL).
    threads: int = Field(default=8, ge=1, le=64)
    # The variable holding the key that signs device cookies (auth.device_trust_days); unset = a random
    # key per start, so browsers are trusted again only after their next sign-in.
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
    # "Full" = this share of staffed beds: New York State's red-zone test (Dec 2020) asked whether
    # hospitals reach 90 % within 21 days. The capacity outlook of the city, each hospital and each
    # area counts days to this share.
    capacity_threshold: float = Field(default=0.9, gt=0, le=1)
    # Cases -> admissions -> occupied beds. Used until the store holds enough linked admissions and
    # discharges to measure them (then the measured ones are used): a few days from report to
    # admission, and stays within the range of published COVID-19 hospital and ICU stays (Rees et al.
    # 2020, "COVID-19 length of hospital stay: a systematic review", BMC Med 18:270).
    admission_lag_days: int = Field(default=3, ge=0, le=30)
    icu_admission_lag_days: int = Field(default=3, ge=0, le=30)
    los_mean_days: float = Field(default=8.0, gt=0, le=90)
    los_std_days: float = Field(default=6.0, gt=0, le=90)
    icu_los_mean_days: float = Field(default=12.0, gt=0, le=90)
    icu_los_std_days: float = Field(default=8.0, gt=0, le=90)
    # Sensor metrics the alarms and indicators read (names as the sensors report them; the demo's).
    wastewater_metric: str = "sars_cov_2_rna"
    fever_metric: str = "fever_alerts"
    run_every_s: int = Field(default=300, ge=5)


class IndicatorsConfig(_Strict):
    """The indicators job: daily series, indicators per area and day, R(t). It skips runs whose inputs
    did not change, so running it often costs little and keeps the wall current."""
    run_every_s: int = Field(default=30, ge=5)


class CapacityConfig(_Strict):
    """Facility capacity, supplies and the bed projection on /capacity."""
    # Facilities report once a day (the NHSN/SANER cadence); two hours of grace before a report is stale.
    stale_after_hours: float = Field(default=26.0, gt=0, le=24 * 30)
    supplies_warn_days: float = Field(default=7.0, gt=0, le=365)  # days on hand (stock / daily use)
    supplies_critical_days: float = Field(default=3.0, gt=0, le=365)
    # Days of history on the facility trend charts (the indicators job keeps 120 days current).
    trend_days: int = Field(default=90, ge=14, le=120)
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
    # Failures on one name within lockout_window_s before its attempts must wait; each further failure
    # doubles the wait from lockout_backoff_s up to lockout_backoff_max_s. No hard lock: an attacker can
    # slow a name down but not shut its user out, and browsers that signed in as that user before (device
    # cookies, device_trust_days) do not wait at all (OWASP "Slow down online guessing attacks with device cookies").
    lockout_failures: int = Field(default=5, ge=1, le=1000)
    lockout_backoff_s: int = Field(default=15, ge=1, le=3600)
    lockout_backoff_max_s: int = Field(default=120, ge=1, le=86_400)
    device_trust_days: int = Field(default=90, ge=1, le=730)  # longer than the longest session (operator, 30 d)
    address_lockout_failures: int = Field(default=20, ge=1, le=100_000)  # per client address, any names
    lockout_window_s: int = Field(default=900, ge=10, le=7 * 86_400)  # failures older than this are forgotten
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

    @model_validator(mode="after")
    def _backoff_within_cap(self):
        if self.lockout_backoff_s > self.lockout_backoff_max_s:
            raise ValueError("auth.lockout_backoff_s must not exceed auth.lockout_backoff_max_s")
        if self.lockout_backoff_max_s > self.lockout_window_s:
            # A wait is counted from failures within the window; a longer wait would outlast its cause.
            raise ValueError("auth.lockout_backoff_max_s must not exceed auth.lockout_window_s")
        return self


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
    indicators: IndicatorsConfig = IndicatorsConfig()
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
