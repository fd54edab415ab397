"""Firing the slots due at one instant, in three steps so that only the hand-off
happens at the instant itself:

1. `prepare`, ahead of the instant: take the due slots from the plan, build and
   encode their job messages (and record the slots a misfire policy skips);
2. `fire`, at the instant: decide each slot (paused, overlap) and hand its
   message to the connection — no ack is awaited, lateness is measured per
   message as it is handed off. A template's owed slots (misfire policy) are
   decided before its on-time slot, and each slot against the runs started
   before it, at the same instant included;
3. `settle`, afterwards: collect the acks (sending again what got none), move
   the plan on, and record every slot.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from bus import CancelBoard
from bus.handoff import Handoff, Sent
from bus.slots import SlotLog
from contracts.schedule import Overlap, SlotReason, SlotRecord

from . import records
from .firing import Firing, Unbuildable, build
from .metrics import SchedulerMetrics
from .plan import Plan
from .policy import Due
from .runs import Run, Runs, horizon

log = structlog.get_logger("jetjobs.scheduler")

PAUSED_DETAIL = "the template or its company is paused"
OWED_PAUSED_DETAIL = f"{PAUSED_DETAIL}; on resume its misfire policy decides whether it runs"


@dataclass
class Batch:
    """The slots due at one instant, their messages built ahead of it."""

    instant: datetime
    firings: list[Firing] = field(default_factory=list)
    written: list[SlotRecord] = field(default_factory=list)
    """Records of slots already settled while preparing (skipped)."""
    backlog: bool = False
    """Whether it holds slots owed by a misfire policy (not from the timers)."""

    def __len__(self) -> int:
        return len(self.firings) + len(self.written)


@dataclass(slots=True)
class Handed:
    """A message handed to the connection, its ack to come."""

    firing: Firing
    sent: Sent
    lateness: float
    """Seconds from the message's scheduled time to its hand-off."""


class Firer:
    """Fires what the plan says is due, as the leader."""

    def __init__(
        self,
        plan: Plan,
        runs: Runs,
        handoff: Handoff,
        slots: SlotLog,
        cancels: CancelBoard,
        metrics: SchedulerMetrics,
        *,
        holder: str,
        late_after: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._plan, self._runs = plan, runs
        self._handoff, self._slots, self._cancels = handoff, slots, cancels
        self._metrics = metrics
        self._holder, self._late_after, self._clock = holder, late_after, clock

    # -- 1. ahead of the instant --------------------------------------------------

    async def prepare(self, instant: datetime) -> Batch:
        """Take every slot due at or before `instant` and build its message. Its
        messages are dispatched, and its skipped slots recorded, at the instant or
        now if that is later: owed slots (misfire, resume) come at the earliest of
        them, long past, and that stale time would date a skip record before its
        own slot and make an executor refuse a run as not taken within its timeout."""
        await self._handoff.open()
        dues = self._plan.take_due(instant)
        batch = Batch(instant, backlog=any(due.owed for due in dues))
        now = max(instant, self._clock())
        batch.firings = self._build(dues, batch, now)
        await self._handoff.ensure_pools({f.message.pool for f in batch.firings})
        return batch

    def _build(self, dues: Sequence[Due], batch: Batch, now: datetime) -> list[Firing]:
        """The messages of the slots that are to run; the others are recorded in the batch."""
        firings: list[Firing] = []
        for due in dues:
            if due.skip is not None:
                batch.written.append(self._skip(due, due.skip, due.detail, now))
                continue
            match build(due, now, self._handoff.prepare):
                case Unbuildable(reason=reason):
                    log.error("schedule.skipped", template_id=due.template.id, slot=due.slot, reason=reason)
                    batch.written.append(self._skip(due, SlotReason.INVALID, reason, now))
                case Firing() as firing:
                    firings.append(firing)
        return firings

    # -- 2. at the instant ------------------------------------------------------------

    async def fire(self, batch: Batch) -> list[Handed]:
        """Decide each slot, then hand every message that fires to the connection,
        awaiting no ack. The garbage collector waits until the batch is out (a full
        collection can take tens of milliseconds)."""
        now = self._clock()
        firing: list[Firing] = []
        replaced: list[tuple[Firing, str]] = []
        for prepared in self._owed_first(batch, now) + batch.firings:
            decision = self._fire_slot(prepared, now)
            if isinstance(decision, SlotRecord):
                batch.written.append(decision)
            elif decision is not None:
                current, running = decision
                firing.append(current)
                if running is not None:
                    replaced.append((current, running))
        collecting = gc.isenabled()
        gc.disable()
        try:
            sent = await self._handoff.send([f.prepared for f in firing])
        finally:
            if collecting:
                gc.enable()
        handed: list[Handed] = []
        owed: list[Due] = []
        for current, (outcome, at) in zip(firing, sent, strict=True):
            if isinstance(outcome, Exception):
                owed += self._failed(current, str(outcome), now)
            else:
                handed.append(Handed(current, outcome, at - current.due_at))
                self._handed(current)
        if owed:
            self._plan.requeue(owed, now)
        await self._cancel(replaced)
        return handed

    def _owed_first(self, batch: Batch, now: datetime) -> list[Firing]:
        """The owed slots of the templates whose slot fires now, owed since the batch
        was prepared (a resume just before the slot): decided first, so that the
        on-time slot is decided against them, never they against it."""
        if not self._plan.owes():
            return []
        dues = self._plan.take_owed({f.due.template.id for f in batch.firings if not f.due.owed})
        batch.backlog = batch.backlog or bool(dues)
        return self._build(dues, batch, now)

    def _fire_slot(self, firing: Firing, now: datetime) -> SlotRecord | tuple[Firing, str | None] | None:
        """Decide one slot at its instant: None when its template left the board,
        a record of why it does not run now, or the firing (rebuilt if the template
        changed since it was prepared) with the job id of the run it replaces, if
        any. A run that goes counts as the template's active run from here, for
        the slots decided after it."""
        current = self._current(firing, now)
        if current is None:
            return None
        decision = self._decide(current, now)
        if isinstance(decision, SlotRecord):
            return decision
        template = current.due.template
        if template.overlap is not Overlap.ALLOW:
            run = Run(current.message.job_id, template.company, horizon(template, now), started=now)
            self._runs.started(template.id, run)
        return current, decision

    def _current(self, firing: Firing, now: datetime) -> Firing | None:
        """The firing as the template is now: None when it left the board since it
        was prepared, rebuilt when it changed."""
        due = firing.due
        entry = self._plan.entry(due.template.id)
        if entry is None:
            return None
        if entry is due.template:
            return firing
        fresh = build(
            Due(entry, due.slot, due.trigger, from_timer=due.from_timer), now, self._handoff.prepare
        )
        return fresh if isinstance(fresh, Firing) else None

    def _decide(self, firing: Firing, now: datetime) -> SlotRecord | str | None:
        """A skip record (or the record of an owed run that waits for the template's
        active run, `forbid`), or the job id of the run this one replaces (None: no
        run to replace). A paused template starts nothing, not even a run its misfire
        policy owes: that slot is recorded paused, and the resume decides again."""
        due = firing.due
        template = due.template
        if template.paused and not due.owed:
            return self._skip(due, SlotReason.PAUSED, PAUSED_DETAIL, now)
        if template.paused:
            self._plan.paused_owed(due)
            detail = f"owed ({due.trigger.value}): {OWED_PAUSED_DETAIL}"
            return self._skip(due, SlotReason.PAUSED, detail, now)
        run = self._active(template.id, template.overlap, now)
        if run is None:
            return None
        if template.overlap is not Overlap.FORBID:
            return run.job_id
        if due.owed:
            return self._waits(due, run, now)
        return self._skip(due, SlotReason.OVERLAP, f"job {run.job_id} of this template is still active", now)

    def _waits(self, due: Due, run: Run, now: datetime) -> SlotRecord:
        """An owed run waits for the template's active run to end, then goes. Its slot
        is recorded meanwhile (a new leader would not owe it again), and becomes
        fired when it runs; the schedule's anchor does not move for it."""
        template = due.template
        self._plan.hold(due, run.until)
        log.info(
            "schedule.owed_run_waits",
            template_id=template.id,
            company=template.company,
            slot=due.slot,
            trigger=due.trigger.value,
            running_job=run.job_id,
        )
        detail = f"owed ({due.trigger.value}): waits for job {run.job_id} of this template to end, then runs"
        return records.skipped(
            due,
            SlotReason.OVERLAP,
            detail,
            now=now,
            scheduler=self._holder,
            anchor=self._plan.anchor(template.id),
            running_job=run.job_id,
        )

    def _handed(self, firing: Firing) -> None:
        """The message is on its way: schedule the template's next slot."""
        if firing.due.from_timer:
            self._plan.advance(firing.due.template.id, firing.due.slot)

    def _failed(self, firing: Firing, reason: str, now: datetime) -> list[Due]:
        """JetStream did not take the message: a timer's slot is tried again after a
        back-off; a backlog slot is returned, to be owed again."""
        due = firing.due
        template = due.template
        self._over(firing.message.job_id)
        retry_at = self._plan.retry(template.id, due.slot, now) if due.from_timer else None
        log.error(
            "schedule.publish_failed",
            template_id=template.id,
            company=template.company,
            job_id=firing.message.job_id,
            slot=due.slot,
            reason=reason,
            retry_at=retry_at,
        )
        return [] if due.from_timer else [due]

    async def _cancel(self, replaced: Sequence[tuple[Firing, str]]) -> None:
        """Overlap `replace`: ask executors to stop the runs being replaced."""
        for firing, job_id in replaced:
            reason = f"replaced by job {firing.message.job_id} (overlap policy replace)"
            try:
                await self._cancels.mark(job_id, reason)
            except Exception as error:
                log.warning("schedule.cancel_failed", job_id=job_id, error=repr(error))
            self._over(job_id)

    # -- 3. afterwards -------------------------------------------------------------

    async def settle(self, batch: Batch, handed: Sequence[Handed]) -> None:
        """Collect the acks, move the plan on, and record every slot of the batch."""
        results = await self._handoff.settle([(h.firing.prepared, h.sent) for h in handed])
        now = self._clock()
        written = batch.written
        owed: list[Due] = []
        for item, result in zip(handed, results, strict=True):
            if isinstance(result, Exception):
                owed += self._failed(item.firing, f"{type(result).__name__}: {result}", now)
            else:
                written.append(self._settled(item, result, now))
        if owed:
            self._plan.requeue(owed, now)
        elif batch.backlog:
            self._plan.settled_backlog()
        await self._record(written)

    def _settled(self, item: Handed, duplicate: bool, now: datetime) -> SlotRecord:
        """JetStream stored the message (or already had it: `duplicate`)."""
        firing = item.firing
        due, message = firing.due, firing.message
        template = due.template
        self._plan.mark(template.id, due.slot)
        if duplicate:
            self._over(message.job_id)
        late = item.lateness > self._late_after
        self._metrics.fired(due.slot, item.lateness)
        self._metrics.slot("late" if late else "fired")
        log.info(
            "schedule.fired",
            template_id=template.id,
            company=template.company,
            job_id=message.job_id,
            attempt=1,
            slot=due.slot,
            trigger=due.trigger.value,
            lateness_ms=round(item.lateness * 1000, 1),
            duplicate=duplicate,
        )
        return records.fired(
            due,
            message.job_id,
            message.scheduled_at,
            item.lateness,
            late=late,
            now=now,
            scheduler=self._holder,
            anchor=self._plan.anchor(template.id),
            running_job=self._running_job(template.id, template.overlap, now),
            detail="already stored (published before)" if duplicate else None,
        )

    # -- shared --------------------------------------------------------------------

    def _active(self, template_id: int, overlap: Overlap, now: datetime) -> Run | None:
        return None if overlap is Overlap.ALLOW else self._runs.active(template_id, now)

    def _over(self, job_id: str) -> None:
        """The run no longer counts as active: the owed runs waiting for it may go."""
        template_id = self._runs.finished(job_id)
        if template_id is not None:
            self._plan.release(template_id)

    def _running_job(self, template_id: int, overlap: Overlap, now: datetime) -> str | None:
        run = self._active(template_id, overlap, now)
        return None if run is None else run.job_id

    def _skip(self, due: Due, reason: SlotReason, detail: str | None, now: datetime) -> SlotRecord:
        template = due.template
        if reason is not SlotReason.PAUSED:
            self._plan.mark(template.id, due.slot)
        if due.from_timer:
            self._plan.advance(template.id, due.slot)
        self._metrics.slot("skipped")
        log.info(
            "schedule.slot_skipped",
            template_id=template.id,
            company=template.company,
            slot=due.slot,
            reason=reason.value,
        )
        return records.skipped(
            due,
            reason,
            detail,
            now=now,
            scheduler=self._holder,
            anchor=self._plan.anchor(template.id),
            running_job=self._running_job(template.id, template.overlap, now),
        )

    async def _record(self, written: Sequence[SlotRecord]) -> None:
        if not written:
            return
        try:
            await self._slots.record(written)
        except Exception as error:
            log.error("schedule.record_failed", count=len(written), error=repr(error))
