"""Next-fire computation against an independent reference, over random cron
expressions, zones and instants, concentrated around DST transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cron import fires_between, next_fire

ZONES = ["Europe/Prague", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Asia/Tehran", "UTC"]
TRANSITIONS = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Europe spring forward
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Europe fall back
    datetime(2026, 3, 8, 7, tzinfo=UTC),  # New York spring forward
    datetime(2026, 11, 1, 6, tzinfo=UTC),  # New York fall back
    datetime(2026, 4, 4, 15, tzinfo=UTC),  # Lord Howe: 30-minute shift back
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),  # Lord Howe: 30-minute shift forward
    datetime(2026, 4, 5, 3, tzinfo=UTC),  # Santiago fall back (midnight transitions)
    datetime(2026, 9, 6, 4, tzinfo=UTC),  # Santiago spring forward
]


def _field(values: st.SearchStrategy[int], low: int, high: int) -> st.SearchStrategy[str]:
    single = values.map(str)
    listed = st.lists(values, min_size=2, max_size=4, unique=True).map(
        lambda v: ",".join(map(str, sorted(v)))
    )
    ranged = st.tuples(values, values).map(lambda p: f"{min(p)}-{max(p)}")
    step = st.integers(2, 15).map(lambda n: f"*/{n}")
    return st.one_of(st.just("*"), single, listed, ranged, step)


minutes = _field(st.integers(0, 59), 0, 59)
hours = _field(st.integers(0, 23), 0, 23)
crons = st.tuples(minutes, hours).map(lambda mh: f"{mh[0]} {mh[1]} * * *")


def _values(field: str, low: int, high: int) -> set[int]:
    """An independent reading of one cron field."""
    found: set[int] = set()
    for part in field.split(","):
        if part == "*":
            found |= set(range(low, high + 1))
        elif part.startswith("*/"):
            found |= set(range(low, high + 1, int(part[2:])))
        elif "-" in part:
            a, b = map(int, part.split("-"))
            found |= set(range(a, b + 1))
        else:
            found.add(int(part))
    return found


def _offsets(zone: ZoneInfo, around: datetime) -> set[timedelta]:
    """Every UTC offset the zone uses within two days of `around` (sampled hourly)."""
    found = set()
    for hour in range(-48, 49):
        offset = (around + timedelta(hours=hour)).astimezone(zone).utcoffset()
        assert offset is not None
        found.add(offset)
    return found


def _instant_of(zone: ZoneInfo, wall: datetime, offsets: set[timedelta]) -> datetime:
    """The earliest instant whose wall clock reads `wall`; for a skipped wall time,
    the first whole minute whose wall clock is past it."""
    candidates = [
        instant
        for offset in offsets
        if (instant := (wall - offset).replace(tzinfo=UTC)).astimezone(zone).replace(tzinfo=None) == wall
    ]
    if candidates:
        return min(candidates)
    probe = (wall - max(offsets)).replace(tzinfo=UTC)
    while probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += timedelta(minutes=1)
    return probe


def reference_next(cron: str, zone_name: str, after: datetime) -> datetime:
    """Walk wall-clock minutes, map each matching one to its instant independently."""
    zone = ZoneInfo(zone_name)
    offsets = _offsets(zone, after)
    minute_field, hour_field = cron.split()[:2]
    mins, hrs = _values(minute_field, 0, 59), _values(hour_field, 0, 23)
    wall = (after.astimezone(zone) - timedelta(hours=3)).replace(tzinfo=None, second=0, microsecond=0)
    best: datetime | None = None
    for _ in range(4 * 24 * 60):
        wall += timedelta(minutes=1)
        if best is not None and (wall - max(offsets)).replace(tzinfo=UTC) > best + timedelta(hours=4):
            return best
        if wall.minute in mins and wall.hour in hrs:
            instant = _instant_of(zone, wall, offsets)
            if instant > after and (best is None or instant < best):
                best = instant
    assert best is not None
    return best


instants = st.tuples(st.sampled_from(TRANSITIONS), st.integers(-6 * 3600, 6 * 3600)).map(
    lambda pair: pair[0] + timedelta(seconds=pair[1])
)


@settings(max_examples=150, deadline=None)
@given(cron=crons, zone=st.sampled_from(ZONES), after=instants)
def test_next_fire_matches_the_reference(cron: str, zone: str, after: datetime) -> None:
    assert next_fire(cron, zone, after) == reference_next(cron, zone, after)


@settings(max_examples=40, deadline=None)
@given(cron=crons, zone=st.sampled_from(ZONES), after=instants)
def test_slots_are_increasing_and_each_wall_time_fires_once(cron: str, zone: str, after: datetime) -> None:
    slots = fires_between(cron, zone, after, after + timedelta(hours=12))
    assert slots == sorted(set(slots))
    walls = [s.astimezone(ZoneInfo(zone)).replace(tzinfo=None) for s in slots]
    assert len(walls) == len(set(walls)), "a wall time fired twice"
    for slot in slots[:50]:
        assert next_fire(cron, zone, slot - timedelta(microseconds=1)) == slot
