"""The record each settled slot leaves: pure constructors, so what a slot's
record says is tested without servers."""

from __future__ import annotations

from datetime import datetime

from contracts.schedule import SlotOutcome, SlotReason, SlotRecord

from .policy import Due


def skipped(
    due: Due,
    reason: SlotReason,
    detail: str | None,
    *,
    now: datetime,
    scheduler: str,
    anchor: datetime | None,
    running_job: str | None,
) -> SlotRecord:
    """A slot that did not run, and why."""
    return SlotRecord(
        template_id=due.template.id,
        company=due.template.company,
        slot=due.slot,
        outcome=SlotOutcome.SKIPPED,
        reason=reason,
        detail=detail,
        trigger=due.trigger,
        recorded_at=now,
        scheduler=scheduler,
        anchor=anchor,
        running_job=running_job,
    )


def fired(
    due: Due,
    job_id: str,
    scheduled_at: datetime,
    lateness: float,
    *,
    late: bool,
    now: datetime,
    scheduler: str,
    anchor: datetime | None,
    running_job: str | None,
    detail: str | None = None,
) -> SlotRecord:
    """A slot whose job JetStream has stored (late when past the tolerance); for a
    flow template, `job_id` is the id of the flow run it started."""
    return SlotRecord(
        template_id=due.template.id,
        company=due.template.company,
        slot=due.slot,
        outcome=SlotOutcome.LATE if late else SlotOutcome.FIRED,
        detail=detail,
        trigger=due.trigger,
        job_id=None if due.template.flow else job_id,
        flow_run=job_id if due.template.flow else None,
        scheduled_at=scheduled_at,
        lateness=round(lateness, 6),
        recorded_at=now,
        scheduler=scheduler,
        anchor=anchor,
        running_job=running_job,
    )
