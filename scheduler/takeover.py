"""What a new leader learns from the slot records before it fires: which
templates still have a run active (the overlap policy needs it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from bus import Bus
from bus.slots import last_events
from contracts.schedule import Overlap, SlotRecord

from .plan import Plan
from .runs import Run, Runs, horizon


async def restore_runs(
    bus: Bus, runs: Runs, plan: Plan, latest: Mapping[int, SlotRecord], now: datetime
) -> None:
    """Mark as active each recorded run that has no final event yet and could still be running."""
    runs.clear()
    candidates: list[tuple[int, Run]] = []
    for template_id, record in latest.items():
        template = plan.entry(template_id)
        if template is None or record.running_job is None or template.overlap is Overlap.ALLOW:
            continue
        until = horizon(template, record.recorded_at)
        if until > now:
            # the company the job ran under, where its events are: the template may have moved since
            run = Run(record.running_job, record.company, until, started=record.recorded_at)
            candidates.append((template.id, run))
    events = await last_events(bus.js, [(run.company, run.job_id) for _, run in candidates])
    for (template_id, run), event in zip(candidates, events, strict=True):
        if event is None or not event.final:
            runs.started(template_id, run)
