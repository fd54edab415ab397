"""Settings: precedence and clear errors for bad values."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from jetjobs.settings import SECONDS_RANGES, Settings, SettingsError, load


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
        ({"JETJOBS_NATS_URL": "nats://[::1"}, "JETJOBS_NATS_URL='nats://[::1' is not a valid URL"),
        ({"JETJOBS_DATABASE_URL": "postgresql://[::1"}, "is not a valid URL"),
        ({"JETJOBS_API_TOKEN": "\udcff"}, "JETJOBS_API_TOKEN: the value is not valid UTF-8"),
        ({"JETJOBS_EXECUTOR_ACTOR": "\udcff"}, "JETJOBS_EXECUTOR_ACTOR: the value is not valid UTF-8"),
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


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('home = ["x"]', 'home = ["x"] in config file'),
        ("pool = 3", "pool = 3 in config file"),
        ("log_level = true", "not a boolean"),
    ],
)
def test_text_settings_in_a_config_file_take_only_strings(tmp_path: Path, line: str, expected: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(line + "\n")
    with pytest.raises(SettingsError, match="give a string in quotes") as caught:
        load({"config": str(config)}, {})
    assert expected in str(caught.value)


def test_a_config_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_bytes(b"\xff\xfe = 1\n")
    with pytest.raises(SettingsError, match="is not UTF-8 text"):
        load({"config": str(config)}, {})


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


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        *[("true", True), ("TRUE", True), (" yes", True), ("On", True), ("1", True)],
        *[("false", False), ("No", False), ("off", False), ("0", False)],
    ],
)
def test_true_or_false_takes_the_usual_spellings(word: str, expected: bool) -> None:
    env = {"JETJOBS_REQUIRE_TOKENS": word, "JETJOBS_COMPANY_LABELS": word, "JETJOBS_BIND_ONLY": word}
    settings = load({}, env)
    assert (settings.require_tokens, settings.company_labels, settings.bind_only) == (expected,) * 3


@pytest.mark.parametrize("name", ["require_tokens", "company_labels", "bind_only"])
def test_a_typo_in_true_or_false_is_refused_not_read_as_false(name: str) -> None:
    variable = f"JETJOBS_{name.upper()}"
    with pytest.raises(SettingsError) as refused:
        load({}, {variable: "ture"})
    assert str(refused.value) == (
        f"{variable}='ture' is not true or false: write true or false (or yes/no, on/off, 1/0)"
    )


def test_the_config_file_takes_toml_booleans_and_refuses_other_words(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("require_tokens = true\ncompany_labels = false\n")
    settings = load({"config": str(config)}, {})
    assert (settings.require_tokens, settings.company_labels) == (True, False)
    config.write_text('require_tokens = "enable"\n')
    with pytest.raises(SettingsError) as refused:
        load({"config": str(config)}, {})
    assert f'require_tokens = "enable" in config file {config} is not true or false' in str(refused.value)


@pytest.mark.parametrize("seconds", ["inf", "-inf", "nan", "Infinity", "1e12", "86401", "0", "0.5", "-3"])
def test_ack_wait_is_refused_outside_one_second_to_a_day(seconds: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load({}, {"JETJOBS_ACK_WAIT": seconds})
    assert str(refused.value) == f"JETJOBS_ACK_WAIT={seconds!r} must be from 1 to 86400 seconds"


@pytest.mark.parametrize(("seconds", "expected"), [("1", 1.0), ("2.5", 2.5), ("86400", 86400.0)])
def test_ack_wait_within_its_range_is_taken(seconds: str, expected: float) -> None:
    assert load({}, {"JETJOBS_ACK_WAIT": seconds}).ack_wait == expected


@pytest.mark.parametrize("toml", ["ack_wait = inf", "ack_wait = nan", "ack_wait = true", 'ack_wait = "soon"'])
def test_ack_wait_in_the_config_file_is_checked_alike(tmp_path: Path, toml: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    with pytest.raises(SettingsError, match=f"^ack_wait = .* in config file {config} must be"):
        load({"config": str(config)}, {})


def test_every_seconds_setting_has_a_range() -> None:
    seconds = {f.name for f in fields(Settings) if isinstance(f.default, float)}
    assert seconds == set(SECONDS_RANGES)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('slots = "abc"', 'slots = "abc" in config file {} must be a whole number'),
        ("slots = 2.5", "slots = 2.5 in config file {} must be a whole number"),
        ("slots = true", "slots = true in config file {} must be a whole number"),
        ("replicas = 0", "replicas = 0 in config file {} must be at least 1"),
        ("metrics_port = 70000", "metrics_port = 70000 in config file {} must be a port number"),
        ('nats_url = "localhost:4222"', 'nats_url = "localhost:4222" in config file {} is not a valid URL'),
        ('log_level = "loud"', 'log_level = "loud" in config file {}: use debug, info, warning or error'),
    ],
)
def test_a_bad_value_in_the_config_file_names_its_key_and_the_file(
    tmp_path: Path, toml: str, expected: str
) -> None:
    config = tmp_path / "jetjobs.toml"
    config.write_text(toml + "\n")
    with pytest.raises(SettingsError) as refused:
        load({"config": str(config)}, {})
    assert str(refused.value).startswith(expected.format(config))
    assert "JETJOBS_" not in str(refused.value)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"replicas": 0}, "--replicas 0 must be at least 1"),
        ({"slots": 0}, "--slots 0 must be at least 1"),
        ({"metrics_port": "web"}, "--metrics-port web must be a port number from 0 (off) to 65535"),
        ({"log_level": "very loud"}, "--log-level 'very loud': use debug, info, warning or error"),
        ({"nats_url": "nats://h:99999"}, "--nats-url nats://h:99999 has an invalid port"),
    ],
)
def test_a_bad_flag_is_named_as_the_flag(flags: dict[str, Any], expected: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load(flags, {"JETJOBS_REPLICAS": "2"})
    assert str(refused.value) == expected


def test_a_value_is_named_where_it_was_taken_from(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("slots = 4\n")
    with pytest.raises(SettingsError, match=r"^JETJOBS_SLOTS='x' must be a whole number$"):
        load({"config": str(config)}, {"JETJOBS_SLOTS": "x"})
    with pytest.raises(SettingsError, match=r"^--slots -1 must be at least 1$"):
        load({"config": str(config), "slots": -1}, {"JETJOBS_SLOTS": "x"})


@pytest.mark.parametrize(("megabytes", "expected"), [("0", 0), ("16", 16), ("2048", 2048)])
def test_a_memory_limit_is_none_or_at_least_16_mib(megabytes: str, expected: int) -> None:
    assert load({}, {"JETJOBS_MEMORY_LIMIT_MB": megabytes}).memory_limit_mb == expected


def test_a_memory_limit_too_small_to_run_is_refused() -> None:
    with pytest.raises(SettingsError) as refused:
        load({}, {"JETJOBS_MEMORY_LIMIT_MB": "5"})
    assert str(refused.value) == "JETJOBS_MEMORY_LIMIT_MB='5' must be 0 (no limit) or at least 16"


def test_unknown_keys_name_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("colour = 1\nack_wiat = 3\n")
    with pytest.raises(SettingsError) as refused:
        load({"config": str(config)}, {})
    assert str(refused.value) == f"unknown setting(s) in config file {config}: ack_wiat, colour"
