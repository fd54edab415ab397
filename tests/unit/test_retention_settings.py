"""Retention's settings and the ages `jetjobs prune` takes, checked before anything runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from contracts.retention import DAY, HOUR, PruneCounts
from jetjobs import settings
from jetjobs.cli import build_parser
from jetjobs.cli_retention import age
from jetjobs.services import store_retention
from store.retention import Retention, RetentionError


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", HOUR), ("30d", 30 * DAY), ("2w", 14 * DAY), (" 12h ", 12 * HOUR)]
)
def test_an_age_is_a_number_and_a_unit(text: str, seconds: float) -> None:
    assert age(text) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", "expected a number and a unit h, d or w"),
        ("1.5d", "expected a number and a unit"),
        ("-3d", "expected a number and a unit"),
        ("0d", "give from 1h to 36500d"),
        ("36501d", "give from 1h to 36500d"),
    ],
)
def test_an_age_out_of_range_is_refused(text: str, expected: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=expected):
        age(text)


def test_history_is_kept_for_ever_by_default() -> None:
    conf = settings.load({}, {})
    assert (conf.retention_days, conf.audit_retention_days) == (0, 0)
    assert not store_retention(conf).active


def test_retention_comes_from_flags_environment_or_file() -> None:
    args = build_parser().parse_args(["store", "--retention-days", "90", "--audit-retention-days", "0"])
    assert (args.retention_days, args.audit_retention_days) == (90, 0)
    conf = settings.load({}, {"JETJOBS_RETENTION_DAYS": "30", "JETJOBS_AUDIT_RETENTION_DAYS": "0"})
    assert store_retention(conf) == Retention(days=30, audit_days=0)
    up = build_parser().parse_args(["up", "--retention-days", "7"])
    assert up.retention_days == 7


def test_a_retention_out_of_range_names_its_setting() -> None:
    with pytest.raises(settings.SettingsError, match="JETJOBS_RETENTION_DAYS='-1' must be at least 0"):
        settings.load({}, {"JETJOBS_RETENTION_DAYS": "-1"})
    with pytest.raises(
        settings.SettingsError, match="JETJOBS_AUDIT_RETENTION_DAYS=50000: give a number of days"
    ):
        store_retention(settings.load({}, {"JETJOBS_AUDIT_RETENTION_DAYS": "50000"}))
    with pytest.raises(RetentionError):
        Retention(days=-1)


def test_counts_add_up_by_kind() -> None:
    total = PruneCounts(jobs=2, events=6).plus(PruneCounts(jobs=1, dead_letters=4))
    assert total == PruneCounts(jobs=3, events=6, dead_letters=4) and total.total == 13


def test_the_readme_prune_lines_parse() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [line.split("#")[0].split()[1:] for line in readme.splitlines() if "bin/jetjobs prune" in line]
    assert len(lines) == 2
    for words in lines:
        args = build_parser().parse_args(words)
        assert args.older_than == 30 * DAY
