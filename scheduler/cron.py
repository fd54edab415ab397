"""When a template fires: pure cron arithmetic with the clock passed in.

Cron expressions have 5 fields (minute hour day month weekday), or 6 with the
seconds first, and are read on the wall clock of the template's IANA timezone.
Results are always aware datetimes in UTC.

DST, as croniter 7 behaves today (pinned by `tests/unit/test_scheduler_cron.py`):

- Spring forward (Europe/Prague, 2026-03-29, 02:00 → 03:00): a slot inside the
  missing hour (`30 2 * * *`) fires once, at 03:00 local, the first instant
  after the gap; hourly and per-minute schedules simply have no slots in the gap.
- Fall back (2026-10-25, 03:00 → 02:00): a slot inside the repeated hour fires
  twice, once per UTC offset (`30 2 * * *` fires at 00:30Z and 01:30Z). Vixie
  cron fires such a daily job once; making that exact is a later change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from contracts.models import check_cron, check_timezone


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a timezone (use datetime.now(UTC))")


def _iterator(cron: str, timezone: str, after: datetime) -> croniter:
    """A croniter positioned at `after`, on the template's local wall clock."""
    check_cron(cron)
    zone = ZoneInfo(check_timezone(timezone))
    seconds_first = len(cron.split()) == 6
    return croniter(cron, after.astimezone(zone), second_at_beginning=seconds_first)


def _next(iterator: croniter, after: datetime) -> datetime:
    """The iterator's next slot, in UTC, guaranteed strictly after `after`."""
    while True:
        local: datetime = iterator.get_next(datetime)
        slot = local.astimezone(UTC)
        if slot > after:
            return slot


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot strictly after `after`; raises ValueError naming a bad
    cron expression, timezone or naive datetime."""
    _require_aware("after", after)
    return _next(_iterator(cron, timezone, after), after)


def fires_between(
    cron: str, timezone: str, start: datetime, end: datetime, *, limit: int | None = None
) -> list[datetime]:
    """Every slot in (start, end], oldest first; at most `limit` of them when given,
    so a per-second cron over a long outage cannot flood memory."""
    _require_aware("start", start)
    _require_aware("end", end)
    iterator = _iterator(cron, timezone, start)
    slots: list[datetime] = []
    previous = start
    while limit is None or len(slots) < limit:
        slot = _next(iterator, previous)
        if slot > end:
            break
        slots.append(slot)
        previous = slot
    return slots
