"""The scheduling policies as pure functions of a template, its slots and the clock:
misfire after downtime or a pause, and jitter."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.cron import fires_between
from contracts.schedule import Misfire, SlotReason, Trigger

from .entry import Entry

MAX_MISSED = 10_000
"""Most missed slots looked at after an outage; older ones are not recorded one by one."""

WINDOW_LOOKS = 64
"""Most windows looked at to find the latest missed slots (halving a window of
years down to a second takes about 35)."""


@dataclass(frozen=True)
class Due:
    """One slot of one template to act on: fire it, or record why it is skipped."""

    template: Entry
    slot: datetime
    trigger: Trigger = Trigger.SCHEDULE
    skip: SlotReason | None = None
    detail: str | None = None
    from_timer: bool = True
    """Whether the template's heap timer produced it (and must be advanced after)."""

    @property
    def owed(self) -> bool:
        """Whether a misfire policy owes it (after an outage or a pause), rather than
        the template's timer being due."""
        return not self.from_timer


def jitter(template: Entry, slot: datetime) -> timedelta:
    """The start delay of one slot: random-looking but the same in every scheduler,
    so a standby or a restart agrees on it; whole milliseconds."""
    if template.jitter <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{template.id}:{slot.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(milliseconds=int(fraction * template.jitter * 1000))


def missed_slots(template: Entry, anchor: datetime, until: datetime) -> list[datetime]:
    """Slots in (anchor, until]. After a very long outage only the earliest and the
    latest MAX_MISSED are returned, so memory stays bounded and `fire_once` /
    `catch_up` still pick the latest slots."""
    cron, zone = template.cron, template.timezone
    first = fires_between(cron, zone, anchor, until, limit=MAX_MISSED)
    if len(first) < MAX_MISSED:
        return first
    return first + _latest(cron, zone, first[-1], until, first[-1] - first[0])


def _latest(cron: str, zone: str, after: datetime, until: datetime, guess: timedelta) -> list[datetime]:
    """The latest MAX_MISSED slots in (after, until], found by narrowing a window
    ending at `until` until it holds between MAX_MISSED and twice as many: slots
    need not be spread evenly (office hours, weekdays), so a window as long as the
    earliest slots took (`guess`, and a margin) may hold far more or far fewer.
    Each look is bounded."""
    whole = until - after
    short, long = timedelta(0), None
    found: list[datetime] = []
    window = min(guess * 1.1 + timedelta(seconds=1), whole)
    for _ in range(WINDOW_LOOKS):
        slots = fires_between(cron, zone, until - window, until, limit=2 * MAX_MISSED + 1)
        if len(slots) > 2 * MAX_MISSED:
            long = window
        elif len(slots) >= MAX_MISSED or window >= whole:
            return slots[-MAX_MISSED:]
        else:
            short, found = window, slots
        window = (short + long) / 2 if long is not None else min(2 * window, whole)
    return found


def misfire(template: Entry, missed: list[datetime], *, recorded: bool) -> list[Due]:
    """What the template's misfire policy makes of slots missed while the scheduler
    was down (`recorded` False) or the template paused (`recorded` True: each slot
    already has its `paused` record, so only runs are added)."""
    if not missed:
        return []
    match template.misfire:
        case Misfire.SKIP:
            fired: list[datetime] = []
            trigger = Trigger.SCHEDULE
        case Misfire.FIRE_ONCE:
            fired, trigger = missed[-1:], Trigger.FIRE_ONCE
        case Misfire.CATCH_UP:
            fired, trigger = missed[-template.catch_up_limit :], Trigger.CATCH_UP
    chosen = set(fired)
    dues = [Due(template, slot, trigger, from_timer=False) for slot in fired]
    if not recorded:
        detail = _skip_detail(template.misfire)
        dues += [
            Due(template, slot, Trigger.SCHEDULE, SlotReason.MISFIRE, detail, from_timer=False)
            for slot in missed
            if slot not in chosen
        ]
    return sorted(dues, key=lambda due: due.slot)


def _skip_detail(policy: Misfire) -> str:
    return {
        Misfire.SKIP: "missed while the scheduler was down (or its clock jumped ahead); misfire policy skip",
        Misfire.FIRE_ONCE: "missed while the scheduler was down (or its clock jumped ahead); "
        "a later missed slot ran (fire_once)",
        Misfire.CATCH_UP: "missed while the scheduler was down (or its clock jumped ahead); "
        "beyond the catch-up limit",
    }[policy]
