"""A home other than `./.jetjobs` is where commands look for `jetjobs up`, and only
there: none running is an error naming it, never NATS's default port; the banner's
suggested command names that home."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from jetjobs.settings import DEFAULT_NATS_URL, SettingsError, load
from jetjobs.up import banner


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_a_named_home_without_up_is_an_error_naming_it(tmp_path: Path) -> None:
    for settings in (load({"home": "elsewhere"}, {}), load({}, {"JETJOBS_HOME": "elsewhere"})):
        said = f"no jetjobs up is running for home {tmp_path / 'elsewhere'}: start it with `jetjobs up --home elsewhere`"
        with pytest.raises(SettingsError, match="no jetjobs up is running") as nats:
            settings.require_nats()
        assert str(nats.value) == f"{said}, or give --nats-url (JETJOBS_NATS_URL)"
        with pytest.raises(SettingsError) as database:
            settings.require_database()
        assert str(database.value) == f"{said}, or set JETJOBS_DATABASE_URL (or --database-url)"


def test_a_named_home_with_up_or_urls_given_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "endpoints.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:1"}))
    assert load({"home": "elsewhere"}, {}).require_nats() == "nats://127.0.0.1:1"
    given = load({"home": "nowhere", "nats_url": "nats://h:2", "database_url": "postgresql://u@h:3/d"}, {})
    assert (given.require_nats(), given.require_database()) == ("nats://h:2", "postgresql://u@h:3/d")


@pytest.mark.parametrize("home", ["elsewhere", ".jetjobs"])
def test_urls_left_by_an_up_that_is_gone_are_not_used(home: str, tmp_path: Path) -> None:
    folder = tmp_path / home
    folder.mkdir()
    (folder / "endpoints.json").write_text(
        json.dumps({"nats_url": "nats://127.0.0.1:1", "database_url": "postgresql://u@h:2/d"})
    )
    (folder / "up.lock").write_text("1\n")  # no process holds it: the `up` that wrote both is gone
    settings = load({"home": home}, {})
    said = f"no jetjobs up is running for home {folder}: start it with `jetjobs up --home {home}`"
    with pytest.raises(SettingsError) as nats:
        settings.require_nats()
    assert str(nats.value) == f"{said}, or give --nats-url (JETJOBS_NATS_URL)"
    with pytest.raises(SettingsError) as database:
        settings.require_database()
    assert str(database.value) == f"{said}, or set JETJOBS_DATABASE_URL (or --database-url)"
    with (folder / "up.lock").open("a") as held:  # as the running `up` holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        assert (settings.require_nats(), settings.require_database()) == (
            "nats://127.0.0.1:1",
            "postgresql://u@h:2/d",
        )


@pytest.mark.parametrize("home", [None, ".jetjobs", "./.jetjobs"])
def test_the_default_home_without_up_looks_on_the_default_port(home: str | None, tmp_path: Path) -> None:
    settings = load({} if home is None else {"home": home}, {})
    assert settings.require_nats() == DEFAULT_NATS_URL
    assert load({"home": str(tmp_path / ".jetjobs")}, {}).require_nats() == DEFAULT_NATS_URL


def test_the_banner_suggests_the_command_for_its_home(tmp_path: Path) -> None:
    settings = load({"nats_url": "nats://127.0.0.1:14222"}, {})
    assert "  try         jetjobs job list    ·    nats --server nats://127.0.0.1:14222" in banner(settings)
    named = load({"home": "my home", "nats_url": "nats://127.0.0.1:14222"}, {})
    assert f"  try         jetjobs --home '{tmp_path / 'my home'}' job list    ·" in banner(named)
