"""Pausing a template while runs its misfire policy owes are still waiting their
turn (`forbid`), on real servers: none of them starts after the pause (each is
recorded paused, for the resume to decide again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from contracts import api
from contracts.schedule import Trigger
from tests.integration.test_scheduler_policies import records, template, until_records
from tests.stack import make_scheduler, running_stack

pytestmark = pytest.mark.timeout(90)

DOWN = 5.0
"""Seconds the scheduler is down: more per-second slots missed than the catch-up limit."""


async def test_a_pause_starts_none_of_the_runs_still_owed(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        tid = await template(stack, "-c 'sleep 2'", overlap="forbid", misfire="catch_up", catch_up_limit=3)
        scheduler = make_scheduler(nats_url)
        await scheduler.start()
        await until_records(stack, tid, lambda rs: len(rs) >= 1)
        await scheduler.stop()
        await asyncio.sleep(DOWN)
        restarted = make_scheduler(nats_url)
        await restarted.start()
        try:
            found = await until_records(
                stack, tid, lambda rs: any(r.trigger is Trigger.CATCH_UP and r.job_id for r in rs), 20
            )
            await stack.client.call("template.pause", api.TemplateRef(id=tid), api.RunTemplate)
            paused = datetime.now(UTC)
            first = next(r.job_id for r in found if r.trigger is Trigger.CATCH_UP and r.job_id)
            assert first is not None
            await stack.final_job(first)
            await asyncio.sleep(2)
            jobs = await stack.jobs(template_id=tid)
            after = await records(stack, tid)
        finally:
            await restarted.stop()
    started = [(j.id, j.dispatched_at) for j in jobs if j.dispatched_at and j.dispatched_at > paused]
    assert started == [], "a run started after its template was paused"
    owed = [r for r in after if r.trigger is Trigger.CATCH_UP]
    assert len(owed) == 3 and [bool(r.job_id) for r in owed] == [True, False, False], owed
