"""When a template fires: pure cron arithmetic with the clock passed in.

Cron expressions have 5 fields (minute hour day month weekday), or 6 with the
seconds first, and are read on the wall clock of the template's IANA timezone.
Results are always aware datetimes in UTC. The slot set is part of the
contract (a slot names a job id), so every service computes it the same way.

DST (see docs/scheduling.md):

- A wall time skipped by spring-forward fires once, at the first valid instant
  after it: the transition itself (`30 2 * * *` in Prague on 2026-03-29 fires
  at 03:00 CEST). Several skipped wall times land on that one instant and fire
  once together.
- A wall time repeated by fall-back fires once, at its first occurrence. The
  second pass through the repeated hour fires nothing.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from .models import check_cron, check_timezone, never_fires


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a timezone (use datetime.now(UTC))")


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(check_timezone(name))


_SINGLE_RANGE = re.compile(r"(\d+)-(\d+)(/\d+)?")


def _part(part: str) -> str:
    match = _SINGLE_RANGE.fullmatch(part)
    return match[1] if match and int(match[1]) == int(match[2]) else part


@functools.lru_cache(maxsize=4096)
def _checked(cron: str) -> tuple[str, bool]:
    """The expression as croniter should read it, and whether seconds come first.
    A one-value range (`0-0`) is written as the value: croniter reads it as `*`."""
    check_cron(cron)
    fields = [",".join(_part(p) for p in field.split(",")) for field in cron.split()]
    return " ".join(fields), len(fields) == 6


@functools.lru_cache(maxsize=4096)
def _prototype(expression: str, seconds_first: bool) -> croniter:
    """A parsed expression; each use works on a shallow copy (parsing is the slow part)."""
    return croniter(expression, datetime(2000, 1, 1), second_at_beginning=seconds_first)


def _transition(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first instant in (low, high] whose offset is `high`'s: the end of a gap."""
    offset = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which a naive local wall time fires: itself when it
    exists once, its first occurrence when repeated, the end of the gap when skipped."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if second.astimezone(zone).replace(tzinfo=None) == wall:
        return second
    low, high = sorted((first, second))
    return _transition(zone, low, high)


def _slots(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """Every slot strictly after `after`, in order, without repeats; none for an
    expression that matches no date (one stored before such were refused)."""
    _require_aware("after", after)
    expression, seconds_first = _checked(cron)
    zone = _zone(timezone)
    start = after.astimezone(zone).replace(tzinfo=None)
    walls = copy.copy(_prototype(expression, seconds_first))
    walls.set_current(start, force=True)
    previous = after
    while True:
        try:
            wall: datetime = walls.get_next(datetime)
        except CroniterBadDateError:
            return
        slot = resolve(wall, zone)
        if slot > previous:
            previous = slot
            yield slot


@functools.lru_cache(maxsize=65536)
def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot strictly after `after`; raises ValueError naming a bad
    cron expression, timezone or naive datetime. Remembered, because templates
    sharing a schedule ask for the same slot at once (after each fire, at load)."""
    for slot in _slots(cron, timezone, after):
        return slot
    raise ValueError(never_fires(cron))


def fires_between(
    cron: str, timezone: str, start: datetime, end: datetime, *, limit: int | None = None
) -> list[datetime]:
    """Every slot in (start, end], oldest first; at most `limit` of them when given,
    so a per-second cron over a long outage cannot flood memory."""
    _require_aware("start", start)
    _require_aware("end", end)
    slots: list[datetime] = []
    if end <= start:
        return slots
    for slot in _slots(cron, timezone, start):
        if slot > end or (limit is not None and len(slots) >= limit):
            break
        slots.append(slot)
    return slots


def next_fires(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` slots after `after` (for previews such as `template explain`)."""
    slots: list[datetime] = []
    for slot in _slots(cron, timezone, after):
        if len(slots) >= count:
            break
        slots.append(slot)
    return slots


GAP_SAMPLE = 64
"""Slots looked at to find a schedule's shortest gap."""


def shortest_gap(cron: str, timezone: str, after: datetime) -> float | None:
    """Seconds between the closest two of the next `GAP_SAMPLE` slots after `after`, and
    of as many from just before each change of the zone's UTC offset within a year (a
    DST change can bring two slots closer: an hourly schedule in Australia/Lord_Howe
    has 30 minutes between two of them); None for a schedule with fewer than two.
    Looked at from the hour `after` is in, and remembered: templates share schedules,
    and each look takes a few milliseconds."""
    return _shortest_gap(cron, timezone, after.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=256)
def _shortest_gap(cron: str, timezone: str, after: datetime) -> float | None:
    gaps: list[float] = []
    for start in (after, *(change - timedelta(hours=1) for change in offset_changes(timezone, after))):
        slots = next_fires(cron, timezone, start, GAP_SAMPLE)
        gaps += [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots)]
    return min(gaps) if gaps else None


def offset_changes(timezone: str, after: datetime, days: int = 366) -> list[datetime]:
    """When the zone's UTC offset changes in the `days` after `after`, each to within the
    hour before it (a day-by-day look, then hour by hour within the day it changes)."""
    zone = ZoneInfo(timezone)
    changes: list[datetime] = []
    day, offset = after, after.astimezone(zone).utcoffset()
    for _ in range(days):
        following = day + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:
            hour = day
            while (hour + timedelta(hours=1)).astimezone(zone).utcoffset() == offset:
                hour += timedelta(hours=1)
            changes.append(hour)
            offset = following.astimezone(zone).utcoffset()
        day = following
    return changes
