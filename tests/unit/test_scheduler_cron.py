"""Schedule arithmetic: every interval code, seconds, timezones, boundaries, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from contracts.cron import next_fires, offset_changes, shortest_gap
from contracts.enums import Interval
from contracts.models import RunTemplate, TemplateSpec, cron_for
from scheduler.cron import fires_between, next_fire


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


AFTER = utc(2026, 3, 11, 10, 17, 42)  # a Wednesday

INTERVAL_NEXT = {
    Interval.MINUTELY: utc(2026, 3, 11, 10, 18),
    Interval.HOURLY: utc(2026, 3, 11, 11, 0),
    Interval.DAILY: utc(2026, 3, 12, 0, 0),
    Interval.WEEKLY: utc(2026, 3, 16, 0, 0),  # the next Monday
    Interval.MONTHLY: utc(2026, 4, 1, 0, 0),
    Interval.YEARLY: utc(2027, 1, 1, 0, 0),
}


@pytest.mark.parametrize(("interv", "expected"), INTERVAL_NEXT.items())
def test_every_interval_code_fires_on_its_slot(interv: Interval, expected: datetime) -> None:
    cron = cron_for(interv, None)
    assert cron is not None
    assert next_fire(cron, "UTC", AFTER) == expected


def test_custom_and_manual_intervals() -> None:
    assert cron_for(Interval.NONE, None) is None
    assert next_fire(cron_for(Interval.CUSTOM, "*/5 * * * *") or "", "UTC", AFTER) == utc(2026, 3, 11, 10, 20)


def test_result_is_strictly_after_even_on_a_slot() -> None:
    slot = utc(2026, 3, 11, 10, 18)
    assert next_fire("* * * * *", "UTC", slot) == utc(2026, 3, 11, 10, 19)
    assert next_fire("* * * * *", "UTC", slot - timedelta(microseconds=1)) == slot


def test_result_is_aware_utc_whatever_the_input_zone() -> None:
    after = datetime(2026, 3, 11, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    slot = next_fire("0 * * * *", "UTC", after)
    assert slot.tzinfo is UTC
    assert slot == utc(2026, 3, 11, 11, 0)


def test_six_fields_put_seconds_first() -> None:
    assert next_fire("* * * * * *", "UTC", AFTER) == AFTER + timedelta(seconds=1)
    assert next_fire("*/15 * * * * *", "UTC", AFTER) == utc(2026, 3, 11, 10, 17, 45)
    assert next_fire("30 0 12 * * *", "UTC", AFTER) == utc(2026, 3, 11, 12, 0, 30)


def test_fractional_start_lands_on_whole_seconds() -> None:
    after = AFTER + timedelta(milliseconds=500)
    assert next_fire("* * * * * *", "UTC", after) == AFTER + timedelta(seconds=1)


def test_cron_is_read_in_the_template_timezone() -> None:
    # 09:00 in Prague is 08:00Z in winter (CET) and 07:00Z in summer (CEST).
    assert next_fire("0 9 * * *", "Europe/Prague", utc(2026, 1, 10, 12)) == utc(2026, 1, 11, 8)
    assert next_fire("0 9 * * *", "Europe/Prague", utc(2026, 7, 10, 12)) == utc(2026, 7, 11, 7)
    assert next_fire("0 9 * * *", "UTC", utc(2026, 7, 10, 12)) == utc(2026, 7, 11, 9)


def test_daily_midnight_in_prague_is_the_evening_before_in_utc() -> None:
    assert next_fire("0 0 * * *", "Europe/Prague", utc(2026, 1, 10, 12)) == utc(2026, 1, 10, 23)


def test_month_and_year_boundaries() -> None:
    assert next_fire("0 0 1 * *", "UTC", utc(2026, 1, 31, 23, 59, 59)) == utc(2026, 2, 1)
    assert next_fire("0 0 1 1 *", "UTC", utc(2026, 12, 31, 23, 59, 59)) == utc(2027, 1, 1)
    assert next_fire("0 0 31 * *", "UTC", utc(2026, 4, 1)) == utc(2026, 5, 31)
    assert next_fire("0 0 29 2 *", "UTC", utc(2026, 1, 1)) == utc(2028, 2, 29)
    # Prague's 1 January begins at 23:00Z on 31 December.
    assert next_fire("0 0 1 1 *", "Europe/Prague", utc(2026, 6, 1)) == utc(2026, 12, 31, 23)


def test_fires_between_excludes_start_and_includes_end() -> None:
    start, end = utc(2026, 3, 11, 10, 0), utc(2026, 3, 11, 10, 3)
    assert fires_between("* * * * *", "UTC", start, end) == [
        utc(2026, 3, 11, 10, 1),
        utc(2026, 3, 11, 10, 2),
        utc(2026, 3, 11, 10, 3),
    ]
    assert fires_between("* * * * *", "UTC", end, start) == []


def test_fires_between_across_a_year_boundary_in_prague() -> None:
    slots = fires_between("0 0 1 * *", "Europe/Prague", utc(2026, 11, 15), utc(2027, 2, 15))
    assert slots == [utc(2026, 11, 30, 23), utc(2026, 12, 31, 23), utc(2027, 1, 31, 23)]


def test_fires_between_honours_the_limit() -> None:
    slots = fires_between("* * * * * *", "UTC", AFTER, AFTER + timedelta(days=30), limit=5)
    assert slots == [AFTER + timedelta(seconds=n) for n in range(1, 6)]


def test_spring_forward_moves_a_missing_slot_to_the_end_of_the_gap() -> None:
    # Prague 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    slots = fires_between("30 2 * * *", "Europe/Prague", utc(2026, 3, 28), utc(2026, 3, 30, 12))
    assert slots == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]


def test_spring_forward_hourly_has_no_slot_in_the_gap() -> None:
    slots = fires_between("0 * * * *", "Europe/Prague", utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2, 30))
    assert slots == [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)]


def test_fall_back_fires_a_repeated_slot_once_at_its_first_occurrence() -> None:
    # Prague 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    slots = fires_between("30 2 * * *", "Europe/Prague", utc(2026, 10, 24), utc(2026, 10, 26, 12))
    assert slots == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_fall_back_hourly_skips_the_second_pass_of_the_repeated_hour() -> None:
    # 02:00 local happens at 00:00Z (CEST) and again at 01:00Z (CET): only the first fires.
    slots = fires_between("0 * * * *", "Europe/Prague", utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 3, 30))
    assert slots == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)]


def test_spring_forward_several_skipped_times_fire_once_together() -> None:
    slots = fires_between("0,15,45 2 * * *", "Europe/Prague", utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert slots == [utc(2026, 3, 29, 1, 0)]


def test_starting_inside_the_repeated_hour_does_not_fire_its_first_pass_again() -> None:
    # 01:10Z is 02:10 CET, in the second pass: 02:30's first occurrence (00:30Z) is past.
    assert next_fire("30 2 * * *", "Europe/Prague", utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("* * *", "UTC", "invalid cron expression"),
        ("61 * * * *", "UTC", "invalid cron expression"),
        ("* * * * *", "Mars/Olympus", "unknown timezone"),
    ],
)
def test_bad_input_names_what_is_wrong(cron: str, zone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next_fire(cron, zone, AFTER)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="must carry a timezone"):
        next_fire("* * * * *", "UTC", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="must carry a timezone"):
        fires_between("* * * * *", "UTC", AFTER, datetime(2026, 1, 1))


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 30 2 *"])
def test_a_cron_that_matches_no_date_is_refused_with_the_reason(cron: str) -> None:
    with pytest.raises(ValueError, match="never fires: no date has the day of month and month"):
        TemplateSpec(name="t", app="1", company="acme", interv=Interval.CUSTOM, cron=cron)


def test_a_leap_day_or_a_weekday_alternative_still_fires() -> None:
    for cron in ("0 0 29 2 *", "0 0 30 2 1"):
        TemplateSpec(name="t", app="1", company="acme", interv=Interval.CUSTOM, cron=cron)
    assert next_fire("0 0 29 2 *", "UTC", AFTER) == utc(2028, 2, 29)


def test_a_stored_template_that_never_fires_loads_and_has_no_slot() -> None:
    stored = RunTemplate(id=7, name="t", app="1", company="acme", interv=Interval.CUSTOM, cron="0 0 30 2 *")
    assert stored.cron == "0 0 30 2 *"
    assert next_fires("0 0 30 2 *", "UTC", AFTER, 3) == []
    assert fires_between("0 0 30 2 *", "UTC", AFTER, AFTER + timedelta(days=3000)) == []
    with pytest.raises(ValueError, match="never fires"):
        next_fire("0 0 30 2 *", "UTC", AFTER)


def test_the_jitter_check_sees_the_gaps_a_dst_change_shortens() -> None:
    """An hourly schedule in Australia/Lord_Howe (a 30-minute DST shift) has two slots
    30 minutes apart on the day it changes; a jitter of 40 minutes was accepted, and
    that day a slot started after the next one was due."""
    september = datetime(2026, 9, 1, tzinfo=UTC)
    assert shortest_gap("0 * * * *", "Australia/Lord_Howe", september) == 1800
    assert shortest_gap("0 * * * *", "Europe/Prague", september) == 3600  # a whole hour shift
    assert shortest_gap("0 * * * *", "UTC", september) == 3600
    assert offset_changes("Europe/Prague", september) == [
        datetime(2026, 10, 25, 0, tzinfo=UTC),  # within the hour before 01:00Z
        datetime(2027, 3, 28, 0, tzinfo=UTC),
    ]
