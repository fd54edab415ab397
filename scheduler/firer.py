"""One round of firing: decide what each due slot gets (a run, or a skip with
its reason), publish the runs pipelined, settle the plan, record every slot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from bus import CancelBoard, Publisher
from bus.slots import SlotLog
from contracts.schedule import Overlap, SlotReason, SlotRecord, Trigger

from . import records
from .firing import Failed, Firing, Outcome, Unbuildable, build
from .flow_fire import publish_firings
from .metrics import SchedulerMetrics
from .plan import Plan
from .policy import Due, is_late
from .runs import Run, Runs, horizon

log = structlog.get_logger("jetjobs.scheduler")

PAUSED_DETAIL = "the template or its company is paused"


class Firer:
    """Fires what the plan says is due, as the leader."""

    def __init__(
        self,
        plan: Plan,
        runs: Runs,
        publisher: Publisher,
        slots: SlotLog,
        cancels: CancelBoard,
        metrics: SchedulerMetrics,
        *,
        holder: str,
        late_after: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._plan, self._runs = plan, runs
        self._publisher, self._slots, self._cancels = publisher, slots, cancels
        self._metrics = metrics
        self._holder, self._late_after, self._clock = holder, late_after, clock

    async def round(self, now: datetime) -> None:
        """Act on every slot due at `now`."""
        dues = self._plan.take_due(now)
        if not dues:
            return
        firings: list[Firing] = []
        written: list[SlotRecord] = []
        for due in dues:
            decision = self._decide(due, now)
            if isinstance(decision, Firing):
                firings.append(decision)
            else:
                written.append(decision)
        await self._cancel([f for f in firings if f.replaces])
        outcomes = await publish_firings(self._publisher, firings)
        acked = self._clock()
        failed: list[Due] = []
        for firing, outcome in zip(firings, outcomes, strict=True):
            record = self._settle(firing, outcome, acked, failed)
            if record is not None:
                written.append(record)
        self._settle_backlog(dues, failed, acked)
        await self._record(written)

    def _decide(self, due: Due, now: datetime) -> Firing | SlotRecord:
        template = due.template
        if due.skip is not None:
            return self._skip(due, due.skip, due.detail, now)
        if template.paused and due.trigger is Trigger.SCHEDULE:
            return self._skip(due, SlotReason.PAUSED, PAUSED_DETAIL, now)
        run = self._active(template.id, template.overlap, now)
        if run is not None and template.overlap is Overlap.FORBID:
            return self._skip(
                due, SlotReason.OVERLAP, f"job {run.job_id} of this template is still active", now
            )
        match build(due, now, None if run is None else run.job_id):
            case Unbuildable(reason=reason):
                log.error("schedule.skipped", template_id=template.id, slot=due.slot, reason=reason)
                return self._skip(due, SlotReason.INVALID, reason, now)
            case Firing() as firing:
                return firing

    def _active(self, template_id: int, overlap: Overlap, now: datetime) -> Run | None:
        return None if overlap is Overlap.ALLOW else self._runs.active(template_id, now)

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
        run = self._active(template.id, template.overlap, now)
        return records.skipped(
            due,
            reason,
            detail,
            now=now,
            scheduler=self._holder,
            anchor=self._plan.anchor(template.id),
            running_job=None if run is None else run.job_id,
        )

    async def _cancel(self, firings: Sequence[Firing]) -> None:
        """Overlap `replace`: ask executors to stop the run being replaced."""
        for firing in firings:
            assert firing.replaces is not None
            reason = f"replaced by job {firing.message.job_id} (overlap policy replace)"
            try:
                await self._cancels.mark(firing.replaces, reason)
            except Exception as error:
                log.warning("schedule.cancel_failed", job_id=firing.replaces, error=repr(error))
            self._runs.finished(firing.replaces)

    def _settle(
        self, firing: Firing, outcome: Outcome, acked: datetime, failed: list[Due]
    ) -> SlotRecord | None:
        due, message = firing.due, firing.message
        template = due.template
        bound = log.bind(template_id=template.id, company=template.company, job_id=message.job_id, attempt=1)
        if isinstance(outcome, Failed):
            retry_at = self._plan.retry(template.id, due.slot, acked) if due.from_timer else None
            if not due.from_timer:
                failed.append(due)
            bound.error("schedule.publish_failed", slot=due.slot, reason=outcome.reason, retry_at=retry_at)
            return None
        self._plan.mark(template.id, due.slot)
        if due.from_timer:
            self._plan.advance(template.id, due.slot)
        if template.overlap is not Overlap.ALLOW and not outcome.duplicate:
            self._runs.started(template.id, Run(message.job_id, template.company, horizon(template, acked)))
        lateness = (acked - message.scheduled_at).total_seconds()
        late = is_late(message.scheduled_at, acked, self._late_after)
        self._metrics.fired(template.id, due.slot, lateness)
        self._metrics.slot("late" if late else "fired")
        bound.info(
            "schedule.fired",
            slot=due.slot,
            trigger=due.trigger.value,
            lateness_ms=round(lateness * 1000, 1),
            duplicate=outcome.duplicate,
        )
        return records.fired(
            due,
            message.job_id,
            message.scheduled_at,
            lateness,
            late=late,
            now=acked,
            scheduler=self._holder,
            anchor=self._plan.anchor(template.id),
            running_job=self._running_job(template.id, template.overlap, acked),
            detail="already stored (published before)" if outcome.duplicate else None,
        )

    def _running_job(self, template_id: int, overlap: Overlap, now: datetime) -> str | None:
        run = self._active(template_id, overlap, now)
        return None if run is None else run.job_id

    def _settle_backlog(self, dues: Sequence[Due], failed: list[Due], now: datetime) -> None:
        if failed:
            self._plan.requeue(failed, now)
        elif any(not due.from_timer for due in dues):
            self._plan.settled_backlog()

    async def _record(self, written: Sequence[SlotRecord]) -> None:
        if not written:
            return
        try:
            await self._slots.record(written)
        except Exception as error:
            log.error("schedule.record_failed", count=len(written), error=repr(error))
