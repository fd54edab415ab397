"""Settings: precedence and clear errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jetjobs.settings import SettingsError, load


def test_flags_win_over_environment_over_file(tmp_path: Path) -> None:
    config = tmp_path / "jetjobs.toml"
    config.write_text('pool = "from-file"\nslots = 3\nlog_level = "debug"\n')
    env = {"JETJOBS_CONFIG": str(config), "JETJOBS_SLOTS": "5"}
    settings = load({"pool": "from-flag"}, env)
    assert settings.pool == "from-flag"
    assert settings.slots == 5
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"JETJOBS_NATS_URL": "localhost:4222"}, "JETJOBS_NATS_URL='localhost:4222' is not a valid URL"),
        ({"JETJOBS_DATABASE_URL": "mysql://x/y"}, "JETJOBS_DATABASE_URL"),
        ({"JETJOBS_NATS_URL": "nats://host:99999"}, "invalid port"),
        ({"JETJOBS_SLOTS": "many"}, "must be a whole number"),
        ({"JETJOBS_SLOTS": "0"}, "at least 1"),
        ({"JETJOBS_LOG_LEVEL": "loud"}, "use debug, info, warning or error"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load({}, env)
    assert expected in str(caught.value)


def test_unknown_and_broken_config_files_are_reported(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("colour = 1\n")
    with pytest.raises(SettingsError, match="unknown setting"):
        load({"config": str(config)}, {})
    config.write_text("=")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load({"config": str(config)}, {})
    with pytest.raises(SettingsError, match="cannot read config file"):
        load({"config": str(tmp_path / "missing.toml")}, {})


def test_urls_announced_by_jetjobs_up_are_found(tmp_path: Path) -> None:
    (tmp_path / "endpoints.json").write_text(
        json.dumps({"nats_url": "nats://127.0.0.1:1", "database_url": "postgresql://u@h:2/d"})
    )
    settings = load({"home": str(tmp_path)}, {})
    assert settings.require_nats() == "nats://127.0.0.1:1"
    assert settings.require_database() == "postgresql://u@h:2/d"


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="JETJOBS_DATABASE_URL"):
        load({"home": str(tmp_path)}, {}).require_database()
