"""The rulebook files of this folder (and any the config names) and their one loader.

Rulebooks are configuration, like config.yaml: the jobs that assess levels and zones and the read
models that show them read them through here, so both always use the same thresholds. Parsing
and validation are analytics.rulebooks / analytics.zones (pure); this module reads the files,
caches them until a file changes, and checks that every indicator a rulebook names is one pheoc
computes (analytics.catalog), naming the file and the key when it is not.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml

from analytics.catalog import CATALOG
from analytics.rulebooks import Rulebook, RulebookError, parse_rulebook
from analytics.scan_rules import ScanRulebook, ScanRulebookError, parse_scan_rulebook
from analytics.zones import ZoneRulebook, parse_zone_rulebook
from settings import ConfigError, Settings

log = logging.getLogger(__name__)


class UnknownRulebook(ValueError):
    """The rulebook id is not among the configured rulebooks."""


def load_rulebooks(settings: Settings) -> dict[str, Rulebook]:
    """The configured early-warning rulebooks by id, in the configured order (re-read when a file changes)."""
    paths = tuple(settings.path(p) for p in settings.early_warning.rulebooks)
    stamps = tuple((str(p), p.stat().st_mtime_ns if p.exists() else 0) for p in paths)
    return dict(_load_rulebooks(stamps))


@lru_cache(maxsize=8)
def _load_rulebooks(stamps: tuple[tuple[str, int], ...]) -> tuple[tuple[str, Rulebook], ...]:
    loaded: dict[str, Rulebook] = {}
    for i, (path_text, _mtime) in enumerate(stamps):
        path = Path(path_text)
        key = f"early_warning.rulebooks.{i}"
        try:
            rulebook = parse_rulebook(yaml.safe_load(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"config '{key}': cannot read {path}: {exc.strerror}") from None
        except (RulebookError, yaml.YAMLError) as exc:
            raise ConfigError(f"config '{key}': {path}: {exc}") from None
        named = [r.name for r in rulebook.indicators] + ([rulebook.selector] if rulebook.selector else [])
        unknown = [name for name in named if name not in CATALOG]
        if unknown:
            raise ConfigError(f"config '{key}': {path}: indicators.{unknown[0]} is not an indicator pheoc computes "
                              f"(see GET /api/v1/indicators or analytics/catalog.py)")
        if rulebook.id in loaded:
            raise ConfigError(f"config '{key}': two files define rulebook id {rulebook.id!r} ({path})")
        loaded[rulebook.id] = rulebook
    return tuple(loaded.items())


def active_rulebook(rulebooks: Mapping[str, Rulebook], chosen_id: str | None, default_id: str) -> Rulebook:
    """The operator's latest choice if it is still configured, else the configured default, else the first."""
    if chosen_id is not None and chosen_id in rulebooks:
        return rulebooks[chosen_id]
    if default_id in rulebooks:
        return rulebooks[default_id]
    first = next(iter(rulebooks.values()))
    log.warning("early_warning.active_rulebook %r is not among the rulebooks; using %r", default_id, first.id)
    return first


_zone_rulebooks: dict[tuple[str, int], ZoneRulebook] = {}
_zone_lock = threading.Lock()


def load_zone_rulebook(settings: Settings) -> ZoneRulebook:
    """The containment-zone rulebook (clusters.zone_rulebook), cached until the file changes."""
    path = settings.path(settings.clusters.zone_rulebook)
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        raise ConfigError(f"config 'clusters.zone_rulebook': cannot read {path}: {exc.strerror}") from None
    with _zone_lock:
        if key not in _zone_rulebooks:
            _zone_rulebooks.clear()
            _zone_rulebooks[key] = parse_zone_rulebook(yaml.safe_load(path.read_text(encoding="utf-8")))
        return _zone_rulebooks[key]


_scan_rulebooks: dict[tuple[str, int], ScanRulebook] = {}


def load_scan_rulebook(settings: Settings) -> ScanRulebook:
    """The cluster-scan rulebook (clusters.scan_rulebook), cached until the file changes."""
    path = settings.path(settings.clusters.scan_rulebook)
    key_name = "clusters.scan_rulebook"
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        raise ConfigError(f"config '{key_name}': cannot read {path}: {exc.strerror}") from None
    with _zone_lock:
        if key not in _scan_rulebooks:
            try:
                rulebook = parse_scan_rulebook(yaml.safe_load(path.read_text(encoding="utf-8")))
            except (ScanRulebookError, yaml.YAMLError) as exc:
                raise ConfigError(f"config '{key_name}': {path}: {exc}") from None
            _scan_rulebooks.clear()
            _scan_rulebooks[key] = rulebook
        return _scan_rulebooks[key]
