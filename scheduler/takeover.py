"""What a new leader learns from the slot records before it fires: which
templates still have a run active (the overlap policy needs it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from bus import Bus
from bus.slots import last_event
from contracts.schedule import Overlap, SlotRecord

from .entry import Entry
from .plan import Plan
from .runs import Run, Runs, horizon

CHUNK = 256
"""Jobs whose last event is asked for at once."""


async def restore_runs(
    bus: Bus, runs: Runs, plan: Plan, latest: Mapping[int, SlotRecord], now: datetime
) -> None:
    """Mark as active each recorded run that has no final event yet and could still be running."""
    runs.clear()
    candidates: list[tuple[Entry, SlotRecord, datetime]] = []
    for template_id, record in latest.items():
        template = plan.entry(template_id)
        if template is None or record.running_job is None or template.overlap is Overlap.ALLOW:
            continue
        until = horizon(template, record.recorded_at)
        if until > now:
            candidates.append((template, record, until))
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        events = await asyncio.gather(
            *(last_event(bus.js, t.company, r.running_job or "") for t, r, _ in chunk)
        )
        for (template, record, until), event in zip(chunk, events, strict=True):
            if (event is None or not event.final) and record.running_job is not None:
                runs.started(template.id, Run(record.running_job, template.company, until))
