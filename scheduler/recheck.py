"""Asking the events stream how runs stand: how a leader finds the runs that ended
while it could not hear their final event (a plain subscription gets nothing
published while its connection is down)."""

from __future__ import annotations

from collections.abc import Sequence

from bus import Bus
from bus.slots import last_events

from .runs import Run


async def ended(bus: Bus, runs: Sequence[Run]) -> list[Run]:
    """The runs whose final event is in the events stream."""
    events = await last_events(bus.js, [(run.company, run.job_id) for run in runs])
    return [run for run, event in zip(runs, events, strict=True) if event is not None and event.final]
