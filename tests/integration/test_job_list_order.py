"""`job list` is newest first by when each job was dispatched, not by when the store
wrote it: a store catching up after an outage writes hours of jobs in one batch,
and they must not come out in the order of their ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from contracts import api
from tests.stack import Stack, eventually, running_stack
from tests.unit.jobs import message

IDLE_POOL = "nobody-serves"
"""A pool no executor takes from: the jobs stay dispatched while the test reads them."""


async def _listed(stack: Stack, wanted: int) -> list[str]:
    async def all_recorded() -> list[str] | None:
        reply = await stack.client.call("job.list", api.JobQuery(company="acme"), api.JobList)
        return [job.id for job in reply.jobs] if len(reply.jobs) == wanted else None

    return await eventually(all_recorded, 20, f"{wanted} jobs recorded")


async def test_jobs_recorded_together_list_newest_dispatched_first(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        now = datetime.now(UTC)
        ids = [str(uuid.uuid4()) for _ in range(12)]
        jobs = [
            message(
                job_id=job_id, pool=IDLE_POOL, timeout=3600, dispatched_at=now - timedelta(minutes=60 - i)
            )
            for i, job_id in enumerate(ids)
        ]
        await stack.bus.publisher.dispatch(jobs)
        assert await _listed(stack, len(ids)) == ids[::-1]


async def test_a_job_dated_in_the_future_lists_as_recorded_now(nats_url: str, database_url: str) -> None:
    """Anyone who may publish a job message sets its date: one from next year must not
    stay at the top of every list."""
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        future = message(
            job_id=str(uuid.uuid4()),
            pool=IDLE_POOL,
            timeout=3600,
            dispatched_at=datetime.now(UTC) + timedelta(days=365),
        )
        await stack.bus.publisher.dispatch([future])
        await _listed(stack, 1)
        later = message(
            job_id=str(uuid.uuid4()), pool=IDLE_POOL, timeout=3600, dispatched_at=datetime.now(UTC)
        )
        await stack.bus.publisher.dispatch([later])
        assert await _listed(stack, 2) == [later.job_id, future.job_id]
