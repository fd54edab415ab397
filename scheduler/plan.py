"""The scheduler's memory: the templates it knows, the next slot of each, the
latest slot each has run through (its misfire anchor), and extra slots owed by
a misfire policy (ready, or waiting for the template's active run to end).

Everything here is synchronous and takes `now` as an argument, so the rules
(what a change does to a pending slot, what happens after a fire, a failed
publish, a pause or an outage) are tested without servers or sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from contracts.models import ActiveTemplate, UnknownZone
from contracts.schedule import SlotReason

from .cron import next_fire
from .entry import Entry
from .heap import Timer, TimerHeap
from .policy import Due, jitter, misfire, missed_slots
from .waiting import Waiting

log = structlog.get_logger("jetjobs.scheduler")

__all__ = ["Backoff", "Due", "Plan"]

UNSCHEDULABLE = (ValueError, OverflowError)
"""What a template that cannot be scheduled raises (a pydantic ValidationError is a
ValueError): caught per template, so one bad template never stops the others."""


def missing_zone(zone: str) -> str:
    """Why a template the store accepted has a zone this scheduler does not know."""
    return (
        f"this host's time zone database lacks the template's zone {zone!r}, which the store's "
        "knows: update the host's tzdata package, or the `tzdata` Python package jetjobs installs"
    )


@dataclass(frozen=True)
class Backoff:
    """How long a template waits before publishing a failed slot again:
    `first` seconds, doubling with each failure in a row, at most `cap`."""

    first: float = 1.0
    cap: float = 30.0

    def delay(self, failures: int) -> timedelta:
        """The pause after the `failures`-th failure in a row (1 for the first)."""
        return timedelta(seconds=min(self.cap, self.first * 2 ** min(failures - 1, 32)))


class Plan:
    """Templates by id, a timer heap holding each one's next slot, and a backlog."""

    def __init__(self, backoff: Backoff | None = None, grace: float = 1.0) -> None:
        self._templates: dict[int, Entry] = {}
        self._heap = TimerHeap()
        self._backoff = backoff or Backoff()
        self._grace = timedelta(seconds=grace)
        self._failures: dict[int, int] = {}
        self._taken: dict[int, datetime] = {}
        """Templates whose timer was taken to be fired, with the slot it was for."""
        self._anchors: dict[int, datetime] = {}
        self._anchors_read = False
        """Whether the anchors are those the slot records say (`rebase`): before, a
        template without one may only not have been read yet."""
        self._records_from: datetime | None = None
        """The earliest instant slot records reach back to, when known: an anchor
        from before it may be gone with them."""
        self._paused_owed: dict[int, list[datetime]] = {}
        """Slots of owed runs not started because their template was paused: its resume counts them."""
        self._backlog: list[Due] = []
        self._jumped: dict[int, datetime] = {}
        """Templates being fired when the clock jumped ahead, with the instant their
        next slot is counted from (`overdue`)."""
        self._waiting = Waiting()
        self._refused: set[int] = set()
        """Templates on the board this scheduler cannot schedule (`refused`)."""
        self._backlog_failures = 0
        self._backlog_after: datetime | None = None

    def __len__(self) -> int:
        return len(self._templates)

    def refused(self) -> int:
        """How many templates on the board this scheduler cannot schedule: the store
        accepted them, so something of this host's differs (most often its time zone
        database lacks their zone). They never fire until it is mended."""
        return len(self._refused)

    def entry(self, template_id: int) -> Entry | None:
        """The template as last seen on the board, as the scheduler holds it."""
        return self._templates.get(template_id)

    def template(self, template_id: int) -> ActiveTemplate | None:
        """The whole template as last seen on the board (decoded: for inspection, not firing)."""
        entry = self._templates.get(template_id)
        return None if entry is None else entry.template()

    def ids(self) -> set[int]:
        """Every template currently scheduled."""
        return set(self._templates)

    def timer(self, template_id: int) -> Timer | None:
        """The pending slot of a template (None while it is being published)."""
        return self._heap.get(template_id)

    def anchor(self, template_id: int) -> datetime | None:
        """The latest slot the template's schedule has run through (fired or skipped,
        paused slots excluded); missed slots are counted from it."""
        return self._anchors.get(template_id)

    def backlog(self) -> list[Due]:
        """Slots owed by a misfire policy, not yet acted on (those waiting excluded)."""
        return list(self._backlog)

    def next_due(self) -> datetime | None:
        """When something is next to be done: the backlog, the earliest timer, or
        the horizon of a run that owed runs wait for."""
        times = [self._heap.peek_due(), self._waiting.next_expiry()]
        if self._backlog:
            times.append(self._backlog_after or min(d.slot for d in self._backlog))
        return min((t for t in times if t is not None), default=None)

    def count_due(self, when: datetime) -> int:
        """At most how many slots `take_due(when)` would return (owed ones included)."""
        return self._heap.count_until(when) + len(self._backlog)

    # -- templates -------------------------------------------------------------

    def put(self, template: ActiveTemplate | Entry, now: datetime, raw: bytes | None = None) -> None:
        """Add or replace a template (`raw`: its board bytes). Its pending slot stays
        when the schedule (cron and timezone) is unchanged; otherwise it moves to
        the first slot after `now`. A template seen again after an outage owes its
        missed slots to its misfire policy; a resumed one owes those of its pause.
        A template that cannot be scheduled (values out of bounds, a schedule that
        cannot be evaluated) is dropped with an error logged; the others go on."""
        try:
            self._put(template if isinstance(template, Entry) else Entry.of(template, raw), now)
        except UNSCHEDULABLE as error:
            self._invalid(template.id, error)
        else:
            self._refused.discard(template.id)

    def _put(self, template: Entry, now: datetime) -> None:
        old = self._templates.get(template.id)
        pending = self._heap.get(template.id)
        waiting = pending is not None or template.id in self._taken
        if old is not None and waiting and _same_schedule(old, template):
            self._templates[template.id] = template
            if pending is not None:
                self._heap.push(self._kept(pending, old, template))
            if old.paused and not template.paused:
                upcoming = pending.slot if pending is not None else self._taken[template.id]
                self._resumed(template, upcoming, now)
            return
        if old is not None and not _same_schedule(old, template):
            self._anchors.pop(template.id, None)
            self._paused_owed.pop(template.id, None)
        timer = self._first_timer(template, now)
        self._templates[template.id] = template
        self._heap.push(timer)

    def _invalid(self, template_id: int, error: Exception) -> None:
        reason = missing_zone(error.zone) if isinstance(error, UnknownZone) else str(error)
        log.error("schedule.invalid_template", template_id=template_id, reason=reason)
        self.refuse(template_id)

    def refuse(self, template_id: int) -> None:
        """Stop scheduling a template on the board that cannot be scheduled, and count it."""
        self.remove(template_id)
        self._refused.add(template_id)

    def _kept(self, pending: Timer, old: Entry, new: Entry) -> Timer:
        """The pending timer of a template whose schedule stays: the new revision,
        and its due time moved by a new jitter (a retry keeps its back-off)."""
        if new.jitter != old.jitter and pending.retry_of is None:
            return self._timer(new, pending.slot)
        return replace(pending, revision=new.revision)

    def _counted_from(self, template: Entry, now: datetime) -> datetime | None:
        """Where the template's missed slots are counted from: its anchor, never
        before it was put on the schedule (a store clock ahead moves nothing past
        `now`). Without an anchor (no slot run through yet, or a new schedule
        since), from when it was put on the schedule, but no further back than
        slot records reach (an anchor may be gone with them: aged out, or a new
        NATS). None for a template saved before that was recorded, and before
        the anchors are read."""
        anchor = self._anchors.get(template.id)
        if template.since is None or (anchor is None and not self._anchors_read):
            return anchor
        since = min(template.since, now)
        if anchor is not None:
            return max(anchor, since)
        return since if self._records_from is None else max(since, min(self._records_from, now))

    def _first_timer(self, template: Entry, now: datetime) -> Timer:
        """The first pending slot; slots between the anchor and `now` go to the backlog,
        none from before the template was put on the schedule."""
        anchor = self._counted_from(template, now)
        start = now
        if anchor is not None:
            cutoff = now - self._grace
            start = max(anchor, cutoff)
            self._owe(template, missed_slots(template, anchor, cutoff) if anchor < cutoff else [])
        return self._timer(template, next_fire(template.cron, template.timezone, start))

    def _owe(self, template: Entry, missed: list[datetime]) -> None:
        """Slots the scheduler missed: recorded paused, or as the misfire policy says."""
        if template.paused:
            self._backlog += [
                Due(template, slot, skip=SlotReason.PAUSED, from_timer=False) for slot in missed
            ]
        else:
            self._backlog += misfire(template, missed, recorded=False)

    def _resumed(self, template: Entry, upcoming: datetime, now: datetime) -> None:
        """A paused template is back: its paused slots are recorded; its misfire
        policy says which of them run now. They are every slot since the anchor
        before `upcoming`, the template's slot not yet decided (pending, or being
        prepared: it is decided with the template as it is now, so it runs on time),
        and the owed runs the pause held back; not those still owed (they go as owed)."""
        anchor = self._counted_from(template, now)
        missed = set(self._paused_owed.pop(template.id, []))
        if anchor is not None and anchor < upcoming:
            missed.update(slot for slot in missed_slots(template, anchor, upcoming) if slot < upcoming)
        owed = {due.slot for due in self._backlog if due.template.id == template.id}
        chosen = sorted(missed - owed - self._waiting.slots(template.id))
        self._backlog += misfire(template, chosen, recorded=True)
        if chosen:
            self.mark(template.id, chosen[-1])

    def remove(self, template_id: int) -> None:
        """Forget a template; its pending slot never fires."""
        if self._templates.pop(template_id, None) is not None:
            log.info("schedule.template_removed", template_id=template_id)
        self._heap.remove(template_id)
        self._taken.pop(template_id, None)
        self._jumped.pop(template_id, None)
        self._failures.pop(template_id, None)
        self._anchors.pop(template_id, None)
        self._paused_owed.pop(template_id, None)
        self._waiting.drop(template_id)
        self._refused.discard(template_id)

    def retain(self, template_ids: set[int]) -> None:
        """Forget every template not in `template_ids` (after re-reading the board)."""
        for template_id in (self.ids() | self._refused) - template_ids:
            self.remove(template_id)

    def rebase(
        self, anchors: Mapping[int, datetime], now: datetime, records_from: datetime | None = None
    ) -> None:
        """Start over from the anchors a new leader read (slot records reaching back
        to `records_from`, when known): every template's first slot, and what its
        misfire policy owes for the slots missed since. Only templates on the
        board keep their anchor: one that is not (inactive) owes nothing for its
        time away, as when `remove` dropped it while leading."""
        templates = list(self._templates.values())
        self._templates, self._heap, self._taken = {}, TimerHeap(), {}
        self._failures, self._backlog, self._waiting, self._jumped = {}, [], Waiting(), {}
        self._backlog_failures, self._backlog_after = 0, None
        self._anchors = {t.id: anchors[t.id] for t in templates if t.id in anchors}
        self._anchors_read, self._records_from, self._paused_owed = True, records_from, {}
        for template in templates:
            self.put(template, now)

    # -- firing ------------------------------------------------------------------

    def take_due(self, now: datetime) -> list[Due]:
        """The backlog (when not backing off) and every timer due at or before `now`,
        owed slots first; each template's timer leaves the heap until `advance` or
        `retry` settles it (meanwhile the template counts as taken: a board change
        with the same schedule does not reschedule it)."""
        self._backlog += self._waiting.expired(now)
        ready: list[Due] = []
        if self._backlog and (self._backlog_after is None or self._backlog_after <= now):
            ready = self._current(self._backlog)
            self._backlog, self._backlog_after = [], None
        for timer in self._heap.pop_due(now):
            template = self._templates.get(timer.template_id)
            if template is not None:
                ready.append(Due(template, timer.slot))
                self._taken[template.id] = timer.slot
        return ready

    def owes(self) -> bool:
        """Whether slots owed by a misfire policy are ready to be acted on."""
        return bool(self._backlog)

    def take_owed(self, template_ids: set[int]) -> list[Due]:
        """The owed slots of these templates, whose timer's slot fires now: they
        go before it (also when they became owed after it was prepared, by a
        resume just before it), whether or not the backlog is backing off."""
        owed = [due for due in self._backlog if due.template.id in template_ids]
        if owed:
            self._backlog = [due for due in self._backlog if due.template.id not in template_ids]
        return self._current(owed)

    def hold(self, due: Due, until: datetime) -> None:
        """An owed run waits for the template's active run to end (`forbid`); that
        run's horizon is `until`."""
        self._waiting.hold(due, until)

    def paused_owed(self, due: Due) -> None:
        """An owed run did not start, its template being paused: the resume owes its
        slot again, with the slots missed while paused, to the misfire policy."""
        if due.template.id in self._templates:
            self._paused_owed.setdefault(due.template.id, []).append(due.slot)

    def release(self, template_id: int) -> bool:
        """The template's active run is over: its waiting runs are ready (True if any)."""
        dues = self._waiting.release(template_id)
        self._backlog += dues
        return bool(dues)

    def _current(self, dues: list[Due]) -> list[Due]:
        """Owed slots in slot order (a template's owed runs go one after another), with
        their template's latest definition; those of templates off the board are dropped."""
        return [
            replace(due, template=self._templates[due.template.id])
            for due in sorted(dues, key=lambda due: due.slot)
            if due.template.id in self._templates
        ]

    def mark(self, template_id: int, slot: datetime) -> None:
        """The schedule has run through `slot` (fired or skipped, not paused)."""
        if template_id in self._templates:
            current = self._anchors.get(template_id)
            if current is None or slot > current:
                self._anchors[template_id] = slot

    def advance(self, template_id: int, slot: datetime) -> None:
        """`slot` is settled: schedule the template's next slot after it, unless
        the template was removed or rescheduled meanwhile (or, when the clock jumped
        ahead while it was being fired, after the slots the jump skipped)."""
        self._failures.pop(template_id, None)
        self._taken.pop(template_id, None)
        cutoff = self._jumped.pop(template_id, None)
        template = self._templates.get(template_id)
        if template is None or template_id in self._heap:
            return
        try:
            if cutoff is not None and cutoff > slot:
                self._heap.push(self._skipped(template, slot, cutoff, first=False))
            else:
                self._heap.push(self._timer(template, next_fire(template.cron, template.timezone, slot)))
        except UNSCHEDULABLE as error:
            self._invalid(template_id, error)

    def overdue(self, now: datetime) -> int:
        """The wall clock jumped ahead (an NTP step, a VM or laptop resumed): the slots
        it skipped, those of timers due more than the grace before `now` and every
        slot after them until then, go to each template's misfire policy, as slots
        missed while the scheduler was down do, instead of all firing at once; each
        template's timer moves to its first slot after. Returns how many templates
        had slots skipped."""
        cutoff = now - self._grace
        behind = 0
        for timer in self._heap.pop_due(cutoff):
            template = self._templates.get(timer.template_id)
            if template is None:
                continue
            if timer.retry_of is not None:  # a failed publish waiting out its back-off: tried as before
                self._heap.push(timer)
                continue
            behind += 1
            try:
                self._heap.push(self._skipped(template, timer.slot, cutoff, first=True))
            except UNSCHEDULABLE as error:
                self._invalid(template.id, error)
        for template_id in self._taken:
            self._jumped[template_id] = cutoff
        return behind

    def _skipped(self, template: Entry, after: datetime, cutoff: datetime, *, first: bool) -> Timer:
        """Owe the slots from `after` (itself too when `first`) to `cutoff` to the
        template's misfire policy, and return its timer for the first slot past them."""
        missed = missed_slots(template, after, cutoff)
        self._owe(template, [after, *missed] if first else missed)
        return self._timer(template, next_fire(template.cron, template.timezone, cutoff))

    def settled_backlog(self) -> None:
        """The backlog taken last was published: stop backing off."""
        self._backlog_failures = 0

    def requeue(self, dues: list[Due], now: datetime) -> datetime:
        """Backlog slots that could not be published wait and are tried again."""
        self._backlog_failures += 1
        self._backlog += dues
        self._backlog_after = now + self._backoff.delay(self._backlog_failures)
        return self._backlog_after

    def retry(self, template_id: int, slot: datetime, now: datetime) -> datetime | None:
        """`slot` could not be published: make it pending again, after a back-off
        that grows with each failure in a row, with the template's latest
        definition. Returns when it will be tried, or None when the template is
        gone. Other templates keep their own timers, so one failing template
        never delays the rest."""
        self._taken.pop(template_id, None)
        template = self._templates.get(template_id)
        if template is None:
            return None
        failures = self._failures.get(template_id, 0) + 1
        self._failures[template_id] = failures
        pending = self._heap.get(template_id)
        if pending is not None and pending.slot <= slot:
            return pending.due
        due = now + self._backoff.delay(failures)
        self._heap.push(Timer(due, template_id, template.revision, retry_of=slot))
        return due

    @staticmethod
    def _timer(template: Entry, slot: datetime) -> Timer:
        delay = jitter(template, slot)
        if not delay:
            return Timer(slot, template.id, template.revision)
        return Timer(slot + delay, template.id, template.revision, planned=slot)


def _same_schedule(old: Entry, new: Entry) -> bool:
    return old.cron == new.cron and old.timezone == new.timezone
