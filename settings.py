"""Deployment settings: config.yaml validated at start-up (pydantic v2, frozen, unknown keys rejected).

A command centre must not start half-configured: any unknown key or bad value stops start-up with a
message that names the key's full path (e.g. ``mqtt.port``). Secrets are never written in the file;
the file names the environment variable that holds them.
"""
from __future__ import annotations

import os
import re
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
    # A published layer names its fields its own way (NYC Open Data's precincts: "precinct", no name):
    # which feature property holds the id, the name (absent: "<label> <id>") and the population. Ids
    # get ``id_prefix`` so they cannot collide with another layer's (area ids are one namespace).
    id_property: str = Field(default="area_id", min_length=1)
    name_property: str = Field(default="name", min_length=1)
    population_property: str | None = "population"
    id_prefix: str = Field(default="", max_length=20)


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


class ContextLayer(_Strict):
    """A layer drawn under every map for orientation (roads, water, landmarks): GeoJSON, read at start."""
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    label: str = Field(min_length=1)
    file: Path


class MapConfig(_Strict):
    # offline: the city's boundary, areas and context_layers, no tiles; tiles: also tile_url (a tile server
    # inside the command centre's network); mbtiles: also the raster tiles of tile_file, served by pheoc itself.
    basemap: Literal["offline", "tiles", "mbtiles"] = "offline"
    tile_url: str | None = None
    tile_file: Path | None = None  # an MBTiles file (SQLite) of raster tiles, for basemap "mbtiles"
    tile_attribution: str = ""
    h3_resolution: int = Field(default=9, ge=7, le=10)
    recent_days: int = Field(default=14, ge=1, le=365)
    context_layers: tuple[ContextLayer, ...] = ()

    @model_validator(mode="after")
    def _tiles_need_url(self):
        if self.basemap == "tiles" and not self.tile_url:
            raise ValueError("map.tile_url is required when map.basemap is 'tiles'")
        if self.basemap == "mbtiles" and not self.tile_file:
            raise ValueError("map.tile_file is required when map.basemap is 'mbtiles'")
        ids = [layer.id for layer in self.context_layers]
        if len(ids) != len(set(ids)):
            raise ValueError("map.context_layers: each id once")
        return self


class PrivacyConfig(_Strict):
    # Counts below this are shown as "<k" to roles that may not see small counts (re-identification risk).
    min_count: int = Field(default=5, ge=1, le=100)


class PlaylistView(_Strict):
    """One view of a wall playlist: a page, optionally with its query (an area, a precinct), for some seconds."""
    page: str = Field(pattern=r"^/([^/\s#][^\s#]*)?$")  # a path on this site, e.g. /precincts?precinct=P01
    seconds: int = Field(default=30, ge=3, le=3600)


class FeedLimits(_Strict):
    """When a feed (one record kind, any channel) is stale (amber) and dead (red): seconds since pheoc last
    received a record of it."""
    stale_after_s: int = Field(ge=1)
    dead_after_s: int = Field(ge=1)

    @model_validator(mode="after")
    def _dead_after_stale(self):
        if self.dead_after_s < self.stale_after_s:
            raise ValueError("dead_after_s must not be less than stale_after_s")
        return self


# Live feeds (sensor readings, case reports) should speak within minutes; tests, capacity, supplies and
# admissions come once a day (the NHSN/SANER cadence), so they are stale after a day and two hours, as
# capacity.stale_after_hours says of one facility's report.
_DAILY_FEED = FeedLimits(stale_after_s=26 * 3600, dead_after_s=3 * 86_400)
DEFAULT_FEED_LIMITS = {"reading": FeedLimits(stale_after_s=600, dead_after_s=3600),
                       "case": FeedLimits(stale_after_s=6 * 3600, dead_after_s=2 * 86_400),
                       "test": _DAILY_FEED, "capacity": _DAILY_FEED, "supply": _DAILY_FEED, "admission": _DAILY_FEED}


class WallConfig(_Strict):
    refresh_s: int = Field(default=10, ge=1, le=3600)
    rotation: tuple[str, ...] = ("/",)
    rotation_s: int = Field(default=60, ge=5, le=3600)
    # Named playlists for ?playlist=NAME (kiosk mode: add ?kiosk=1): each view shown for its seconds, in turn.
    playlists: dict[str, tuple[PlaylistView, ...]] = {}
    # The freshness strip on every page: per record kind, when it turns amber (stale) and red (dead).
    feeds: dict[Literal["reading", "case", "test", "capacity", "supply", "admission"], FeedLimits] = \
        DEFAULT_FEED_LIMITS

    @field_validator("rotation")
    @classmethod
    def _paths(cls, v):
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"rotation entries are page paths starting with '/': {p!r}")
        return v

    @field_validator("playlists")
    @classmethod
    def _playlists(cls, v):
        for name, views in v.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,40}", name):
                raise ValueError(f"playlist names are lower-case letters, digits, - and _: {name!r}")
            if not views:
                raise ValueError(f"playlist {name!r} has no views")
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
    study_days: int = Field(default=120, ge=14, le=730)
    replications: int = Field(default=999, ge=9, le=99_999)
    # End the Monte Carlo once this many replicates beat the day's most likely cluster (analytics.scan:
    # p-values below (1 + n) / (replications + 1) are unchanged); null runs every replication.
    stop_after_exceedances: int | None = Field(default=50, ge=10)
    seed: int = 1
    min_cases: int = Field(default=3, ge=1)
    zone_rulebook: Path = Path("rulebooks/zones_nys_cai_2020.yaml")
    # Which scan, its windows, lag and reporting bar (recurrence interval): NYC DOHMH's by default.
    scan_rulebook: Path = Path("rulebooks/scan_nyc_dohmh_2020.yaml")
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


class WarningRecipient(_Strict):
    """An agency (or the public topic) that warnings go to, over one channel (see docs/alerts.md)."""
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    name: str = Field(min_length=1)
    agency: Literal["police", "fire", "hospital", "public_health", "emergency_management", "public"]
    # mqtt: the retained message on warnings.mqtt_topic; webhook: HTTP POST signed with HMAC-SHA256;
    # email: SMTP through warnings.smtp; none: reads and acknowledges warnings on /alerts only.
    channel: Literal["mqtt", "webhook", "email", "none"] = "none"
    url: str | None = None  # webhook only
    secret_env: str | None = None  # webhook only: the variable holding the HMAC key (never the key here)
    email: str | None = None  # email only
    acknowledges: bool = True  # an agency is asked to acknowledge; the public topic is not

    @model_validator(mode="after")
    def _channel_fields(self):
        if self.channel == "webhook":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError(f"recipient {self.id}: a webhook needs url (http:// or https://)")
            if not self.secret_env:
                raise ValueError(f"recipient {self.id}: a webhook needs secret_env (the variable holding its key)")
        elif self.url or self.secret_env:
            raise ValueError(f"recipient {self.id}: url and secret_env are for channel webhook")
        if self.channel == "email" and not (self.email and "@" in self.email):
            raise ValueError(f"recipient {self.id}: channel email needs an email address")
        if self.channel != "email" and self.email:
            raise ValueError(f"recipient {self.id}: email is for channel email")
        return self


class WarningRule(_Strict):
    """Whether an event proposes a warning, and whether a person with issue_warnings must approve it."""
    propose: bool = True
    approval: Literal["required", "automatic"] = "required"


class SmtpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65_535)
    from_address: str = "pheoc@localhost"
    starttls: bool = False
    username_env: str | None = None  # variables holding the SMTP login, if the relay needs one
    password_env: str | None = None


class WarningsConfig(_Strict):
    """CAP 1.2 warnings, their approval and delivery, and the alert inbox (docs/alerts.md)."""
    # CAP <sender> (an address that identifies the originator) and <senderName>.
    sender: str = Field(default="pheoc@localhost", pattern=r"^[^\s,<&]+$")
    sender_name: str = "Public-health emergency operations centre"
    scope: Literal["Public", "Restricted"] = "Public"
    language: str = "en-US"
    # CAP <expires> of an issued warning: a zone or level is reviewed daily, so a warning that nobody
    # updates stops applying after a day and a bit rather than hanging on receivers' screens for ever.
    expires_hours: int = Field(default=36, ge=1, le=24 * 30)
    # Retained CAP messages go to <mqtt_topic>/<series>; outside mqtt.topic_prefix (the ingestor reads
    # everything under that prefix and would quarantine them).
    mqtt_topic: str = Field(default="pheoc/warnings", pattern=r"^[A-Za-z0-9_/-]+$")
    # mqtt.mode external: the variables holding the login allowed to write there (deploy/mosquitto.acl);
    # the embedded broker gives its publisher identity write access to mqtt_topic instead.
    mqtt_username_env: str | None = None
    mqtt_password_env: str | None = None
    smtp: SmtpConfig = SmtpConfig()
    recipients: tuple[WarningRecipient, ...] = ()
    zone_declared: WarningRule = WarningRule()
    zone_lifted: WarningRule = WarningRule()
    level_change: WarningRule = WarningRule()
    # Retries: the wait doubles from retry_backoff_s up to retry_backoff_max_s; after max_attempts the
    # delivery is final "failed" and shows on /alerts and /healthz.
    max_attempts: int = Field(default=10, ge=1, le=1000)
    retry_backoff_s: float = Field(default=5.0, gt=0, le=3600)
    retry_backoff_max_s: float = Field(default=900.0, gt=0, le=86_400)
    send_timeout_s: float = Field(default=10.0, gt=0, le=300)
    worker_interval_s: float = Field(default=1.0, gt=0, le=60)
    run_every_s: int = Field(default=60, ge=5)  # the warnings job: proposals for new zone and level decisions
    # Signs the acknowledgement links sent to agencies; unset = a random key per start (links die on restart).
    link_secret_env: str = "PHEOC_WARNING_LINK_KEY"
    link_valid_hours: int = Field(default=72, ge=1, le=24 * 30)
    # The address receivers reach this server at, for cap_url and acknowledgement links in messages.
    public_url: str = Field(default="http://127.0.0.1:8050", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # Other agencies' CAP 1.2 alerts dropped here as .xml files are read and shown on /alerts.
    inbound_dir: Path = Path("var/cap-inbox")

    @model_validator(mode="after")
    def _consistent(self):
        ids = [r.id for r in self.recipients]
        if len(ids) != len(set(ids)):
            raise ValueError("warnings.recipients: each id once")
        if self.retry_backoff_s > self.retry_backoff_max_s:
            raise ValueError("warnings.retry_backoff_s must not exceed warnings.retry_backoff_max_s")
        if (self.smtp.password_env is None) != (self.smtp.username_env is None):
            raise ValueError("warnings.smtp.username_env and password_env go together")
        return self


class DrillConfig(_Strict):
    """Drill mode (`python app.py drill`): a scripted scenario on synthetic data in its own database."""
    workdir: Path = Path("var/drill")
    seed: int = 2024
    days: int = Field(default=45, ge=14, le=365)


class PoliceConfig(_Strict):
    """Precinct risk and the address check before entering a house (/precincts, docs/security.md)."""
    # A counted case reported within this many days makes its address "active". 10 days: the isolation
    # period of CDC's COVID-19 guidance (July 2020, "10 days after symptom onset") and of WHO's
    # 2020 criteria for mild cases; a city following other guidance sets its own.
    isolation_days: int = Field(default=10, ge=1, le=60)
    # What an officer is told to do when the address has an active case (shown after "take precautions").
    precautions: str = Field(default=(
        "Wear a medical mask and gloves, keep 2 m from the occupants where you can, stay no longer than the "
        "call needs, and clean your hands when you leave."), min_length=1, max_length=500)


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
    # Address checks (GET /api/v1/address-check, /precincts) per user, and per address checked by anyone:
    # an officer checks a door or two per call; 30 a minute is far above that and far below a sweep.
    address_check_rate_per_min: int = Field(default=30, ge=1, le=10_000)
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


class BriefingConfig(_Strict):
    """The mayor's daily briefing (/briefing, its PDF and the outbox) and the open-data export."""
    # Written each day at this local time (city.timezone), for the latest complete day: a mayor's
    # morning meeting reads yesterday's figures. HH:MM, 24 h.
    time: str = Field(default="07:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    scheduled: bool = True  # false: no outbox; the page, the API and the CLI still make briefings
    outbox: Path = Path("var/outbox/briefing")  # <date>.pdf and <date>.json per day
    check_every_s: int = Field(default=60, ge=5, le=3600)
    # The PDF is printed by headless Chromium (Debian package chromium); None: found on PATH.
    chromium: Path | None = None
    render_timeout_s: float = Field(default=60.0, gt=0, le=600)
    # H3 resolution of the open-data cells. 7 averages 5.2 km² (h3geo.org, "Tables of cell statistics"),
    # the size of a community area; 8 (0.74 km²) is a few blocks and would make cells a map of households,
    # so it is not allowed: open data is released at the public's detail level.
    open_data_resolution: int = Field(default=7, ge=5, le=7)
    open_data_days: int = Field(default=28, ge=1, le=366)  # days of daily counts in each export
    # Who gets each day's scheduled briefing through the delivery channels (ids of warnings.recipients);
    # none: it is only written to the outbox. Not "all recipients" by default: a public MQTT topic or a
    # partner agency's webhook should not receive the mayor's briefing unless someone chose so.
    recipients: tuple[str, ...] = ()


class SensorKind(_Strict):
    """How pheoc reads one kind of sensor (sensors.kind in the store): the reading that is its state, when it
    is above threshold, when it is silent, and what a crossing raises."""
    label: str = Field(min_length=1)
    metric: str = Field(min_length=1)  # the reading that is the sensor's state (as the sensors report it)
    unit: str = ""
    # How often it reports; silent after sensors.silent_factor times this without any reading. None: it
    # speaks only when something happens (a panic button) and is never called silent.
    expected_interval_s: int | None = Field(default=None, ge=1)
    threshold: float | None = None  # a latest reading above this is "above threshold" (None: no threshold)
    # Per-sensor thresholds, CSV with a header sensor_id,threshold (footfall: each place's capacity in
    # people/h); a sensor not listed has ``threshold``.
    thresholds_file: Path | None = None
    severity: Literal["info", "warning", "critical"] = "warning"  # of the alert a crossing raises
    # Its readings count people's health (fever alerts): per-sensor values are cut like case counts
    # (cells level, small counts withheld), and its threshold may not be a small count.
    counts_people: bool = False
    # A reading of this kind is an incident (a panic-button press): raised at once, on every wall screen
    # until someone acknowledges it.
    incident: bool = False


# The demo city's kinds (demo/epidemic.py METRICS). Thresholds:
# - air quality: 35.5 µg/m³ PM2.5, the lower breakpoint of "Unhealthy for Sensitive Groups" in the US EPA
#   Air Quality Index (2024 revision; a 24-hour breakpoint, used here on the latest reading as a screen);
# - fever kiosks: 5 alerts an hour, the smallest rate that is not itself a small count at privacy.min_count 5;
# - footfall: each place's capacity (thresholds_file); 600 people/h where none is given.
DEFAULT_SENSOR_KINDS = {
    "wastewater": SensorKind(label="Wastewater sampler", metric="sars_cov_2_rna", unit="copies/L",
                             expected_interval_s=3600),
    "footfall": SensorKind(label="Footfall counter", metric="footfall", unit="people/h", expected_interval_s=3 * 3600,
                           threshold=600.0),
    "fever_kiosk": SensorKind(label="Fever-screening kiosk", metric="fever_alerts", unit="alerts/h",
                              expected_interval_s=3 * 3600, threshold=5.0, counts_people=True),
    "air_quality": SensorKind(label="Air-quality monitor", metric="pm2_5", unit="µg/m³", expected_interval_s=3 * 3600,
                              threshold=35.5),
    "panic_button": SensorKind(label="Panic button", metric="panic_press", unit="press", severity="critical",
                               incident=True),
}


class SensorsConfig(_Strict):
    """The sensors page (/sensors), sensor states and their alerts, panic-button incidents (docs/figures.md)."""
    # The sensor job: states, threshold crossings, silent sensors and panic presses. It runs on its own
    # thread, so a long cluster scan never holds a panic press back.
    run_every_s: int = Field(default=2, ge=1, le=3600)
    # Silent: no reading for this many expected intervals (one missed reading is a blip, two a silence).
    silent_factor: float = Field(default=2.0, ge=1, le=100)
    # Presses older than this when first seen (a backlog replayed from files) are not raised as incidents.
    incident_lookback_h: float = Field(default=24.0, gt=0, le=24 * 30)
    health_metric: str = "battery_pct"  # the reading that is a sensor's battery, where it reports one
    battery_low_pct: float = Field(default=20.0, ge=0, le=100)
    history_days: int = Field(default=7, ge=1, le=120)  # a clicked sensor's history
    # Wastewater's lead over cases: cross-correlation of week-on-week changes over this many days, lags
    # 0..max (analytics.sensors). 90 days: on 8 weeks of the demo city the peak was still blurred.
    lead_window_days: int = Field(default=90, ge=28, le=365)
    lead_max_lag_days: int = Field(default=14, ge=1, le=28)
    lead_every_s: int = Field(default=300, ge=5)  # the lead job (daily figures: reruns only on new data)
    kinds: dict[str, SensorKind] = DEFAULT_SENSOR_KINDS

    @model_validator(mode="after")
    def _one_threshold_source(self):
        for name, kind in self.kinds.items():
            if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
                raise ValueError(f"sensors.kinds: a kind is lower-case letters, digits and _: {name!r}")
            if kind.incident and (kind.threshold is not None or kind.thresholds_file is not None):
                raise ValueError(f"sensors.kinds.{name}: an incident kind has no threshold (every press is raised)")
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
    police: PoliceConfig = PoliceConfig()
    warnings: WarningsConfig = WarningsConfig()
    drill: DrillConfig = DrillConfig()
    briefing: BriefingConfig = BriefingConfig()
    sensors: SensorsConfig = SensorsConfig()
    base_dir: Path = PROJECT_ROOT  # relative paths in the file are relative to the file's folder

    @model_validator(mode="after")
    def _briefing_recipients_known(self):
        known = {r.id for r in self.warnings.recipients}
        for i, rid in enumerate(self.briefing.recipients):
            if rid not in known:
                raise ValueError(f"briefing.recipients.{i}: no recipient {rid!r} in warnings.recipients")
        return self

    @model_validator(mode="after")
    def _people_thresholds_not_small(self):
        # A crossing says "at least the threshold": below privacy.min_count that would tell a small count.
        for name, kind in self.sensors.kinds.items():
            if kind.counts_people and kind.threshold is not None and kind.threshold < self.privacy.min_count:
                raise ValueError(f"sensors.kinds.{name}.threshold: a kind that counts people needs a threshold of "
                                 f"at least privacy.min_count ({self.privacy.min_count})")
        return self

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
