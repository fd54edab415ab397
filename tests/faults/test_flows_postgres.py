"""Postgres stopped and started again mid-flow: the orchestrator listens again for
the flow inbox and the run finishes, every node run once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from contracts.flows import FlowStatus, NodeStatus
from jetjobs.embedded import PostgresServer
from tests.faults.test_flows_restart import chain
from tests.integration.test_flows import ended, flows

pytestmark = pytest.mark.timeout(150)


async def test_a_flow_finishes_across_a_postgres_restart(
    nats_url: str, embedded_postgres: PostgresServer
) -> None:
    embedded_postgres.create_database("flow_outage")
    database_url = embedded_postgres.dsn("flow_outage")
    async with flows(nats_url, database_url) as (_, engine, app):
        run = await engine.start_run(chain(app))
        await asyncio.sleep(0.6)
        await asyncio.to_thread(embedded_postgres.stop)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(embedded_postgres.restart)
        done = await ended(engine, run.id, timeout=90)
    assert done.status is FlowStatus.FINISHED, done
    assert all(n.status is NodeStatus.SUCCEEDED and n.round == 1 for n in done.nodes)
    conn = await asyncpg.connect(database_url)
    try:
        counts = await conn.fetch(
            "SELECT job_id, count(*) AS n FROM job_attempt WHERE job_id = ANY($1::text[]) GROUP BY job_id",
            [n.job_id for n in done.nodes],
        )
        assert sorted(c["n"] for c in counts) == [1] * len(done.nodes), "a node ran twice"
        assert await conn.fetchval("SELECT count(*) FROM flow_inbox") == 0
    finally:
        await conn.close()
