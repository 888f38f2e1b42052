"""Config validation: unknown keys and bad values stop start-up with the key's name."""
from __future__ import annotations

import pytest
import yaml

from settings import ConfigError, load_settings, parse_settings
from tests.conftest import ROOT


def _base():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_shipped_config_is_valid():
    s = load_settings(ROOT / "config.yaml")
    assert s.city.slug == "putrajaya"
    assert 7 <= s.map.h3_resolution <= 10


def test_settings_are_frozen():
    s = load_settings(ROOT / "config.yaml")
    with pytest.raises(Exception):
        s.map.h3_resolution = 8


@pytest.mark.parametrize("section,key,value,expected", [
    ("mqtt", "bogus", 1, "unknown key 'mqtt.bogus'"),
    ("map", "h3_resolution", 12, "'map.h3_resolution'"),
    ("mqtt", "port", 70000, "'mqtt.port'"),
    ("mqtt", "mode", "cloud", "'mqtt.mode'"),
    ("privacy", "min_count", 0, "'privacy.min_count'"),
    ("wall", "rotation", ["overview"], "'wall.rotation'"),
    ("city", "slug", "Bad Slug!", "'city.slug'"),
    ("ingest", "batch_max_rows", -5, "'ingest.batch_max_rows'"),
])
def test_bad_values_name_the_key(section, key, value, expected):
    cfg = _base()
    cfg[section][key] = value
    with pytest.raises(ConfigError) as err:
        parse_settings(cfg)
    assert expected in str(err.value)


def test_unknown_top_level_section():
    cfg = _base()
    cfg["mqqt"] = {}
    with pytest.raises(ConfigError, match="unknown key 'mqqt'"):
        parse_settings(cfg)


def test_nested_area_layer_key_is_named():
    cfg = _base()
    cfg["city"]["area_layers"][1]["colour"] = "red"
    with pytest.raises(ConfigError, match=r"city\.area_layers\.1\.colour"):
        parse_settings(cfg)


def test_tiles_need_a_url():
    cfg = _base()
    cfg["map"]["basemap"] = "tiles"
    with pytest.raises(ConfigError, match="tile_url"):
        parse_settings(cfg)


def test_missing_required_section():
    cfg = _base()
    del cfg["city"]
    with pytest.raises(ConfigError, match="'city'"):
        parse_settings(cfg)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("city: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_secrets_come_from_environment(monkeypatch):
    s = load_settings(ROOT / "config.yaml")
    monkeypatch.setenv("PHEOC_MQTT_USER", "ops")
    monkeypatch.setenv("PHEOC_MQTT_PASSWORD", "s3cret")
    assert s.mqtt.credentials() == ("ops", "s3cret")
    assert "s3cret" not in (ROOT / "config.yaml").read_text()


def test_cli_reports_config_error(tmp_path, capsys):
    from app import main
    cfg = _base()
    cfg["server"]["colour"] = "blue"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--config", str(path)])
    assert exit_info.value.code == 2
    assert "unknown key 'server.colour'" in capsys.readouterr().err
