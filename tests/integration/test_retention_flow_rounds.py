"""Retention and a flow run in progress, on real servers: no job of a run that has
not ended goes, not even the job of a node's earlier round that failed long ago
(its node names only the job of its current round)."""

from __future__ import annotations

import asyncpg

from contracts.flows import FlowSpec, FlowStatus, flow_job_id
from contracts.retention import DAY, PruneCounts
from executor import ExecutorService
from store.retention import BATCH, Horizons, count, prune
from tests.stack import eventually

from . import old_rows
from .test_flows import ended, flows, node

MONTH = Horizons.ago(30 * DAY, None)
BACKDATE_RUN = "UPDATE flow_run SET created_at = now() - interval '40 days' WHERE id = $1"
BACKDATE_JOB = "UPDATE job SET created_at = now() - interval '40 days', updated_at = now() - interval '40 days' WHERE id = $1"


async def test_a_run_in_progress_keeps_the_job_of_a_round_that_failed_long_ago(
    nats_url: str, database_url: str
) -> None:
    async with flows(nats_url, database_url) as (stack, engine, app):
        spec = FlowSpec.model_validate(
            {"name": "nightly", "company": "acme", "nodes": [node(app, "a", "exit 3")]}
        )
        run = await ended(engine, (await engine.start_run(spec)).id)
        assert run.status is FlowStatus.ERROR
        for service in stack.services:
            if isinstance(service, ExecutorService):
                await service.stop()  # the retried round waits for an executor: the run stays started
        retried = await engine.retry(run.id)
        assert retried.status is FlowStatus.STARTED
        failed, waiting = flow_job_id(run.id, "a", 1), flow_job_id(run.id, "a", 2)

        conn = await asyncpg.connect(database_url)
        try:

            async def recorded() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM job WHERE id = $1", waiting))

            await eventually(recorded, 15, "the retried round's job")
            await conn.execute(BACKDATE_RUN, run.id)
            await conn.execute(BACKDATE_JOB, failed)
            await old_rows.job(conn, "of-an-older-run", 50)
            await conn.execute("UPDATE job SET launched_by = 'flow:nightly' WHERE id = 'of-an-older-run'")

            gone = PruneCounts(jobs=1, attempts=1, events=3, artifacts=1, deadlines=1)
            assert await count(conn, MONTH) == gone
            assert await prune(conn, MONTH, BATCH, None, lambda _: None) == (gone, False)
            left = {r["id"] for r in await conn.fetch("SELECT id FROM job")}
            assert left == {failed, waiting}, "the run's jobs stay; the job of an older run of its flow goes"
            assert await conn.fetchval("SELECT count(*) FROM job_attempt WHERE job_id = $1", failed) == 1
            assert await conn.fetchval("SELECT count(*) FROM job_event WHERE job_id = $1", failed) >= 3
        finally:
            await conn.close()
