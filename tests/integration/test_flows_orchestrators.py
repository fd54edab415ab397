"""Two orchestrators stepping one flow run in turn, on real servers: each keeps the
runs it steps in memory, and must notice when the other (or a hand-made change)
moved the run on since, or it would step from a stale picture of the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from nats.aio.msg import Msg

from bus import Bus
from contracts.enums import Status
from contracts.flows import FlowEvent, FlowSpec, FlowStatus, NodeStatus, flow_events_subject
from contracts.messages import JobEvent
from store.db import open_pool
from store.flow_engine import FlowEngine
from tests.integration.test_flows import node
from tests.stack import running_stack


@asynccontextmanager
async def two_engines(nats_url: str, database_url: str) -> AsyncIterator[tuple[FlowEngine, FlowEngine]]:
    """Two orchestrators with their own pools; no store runs, so outcomes reach
    them only through the inbox rows a test writes."""
    bus = await Bus.attach(nats_url, "jetjobs-test")
    pools = [await open_pool(database_url, 2) for _ in range(2)]
    try:
        yield FlowEngine(pools[0], bus), FlowEngine(pools[1], bus)
    finally:
        for pool in pools:
            await pool.close()
        await bus.close()


async def prepared_apps(nats_url: str, database_url: str) -> tuple[str, str]:
    """Migrate, and create a company and two applications through a store that then stops."""
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        first = await stack.app("-c ${SCRIPT}")
        second = await stack.app("-c ${SCRIPT} second")
        return first.app.uuid, second.app.uuid


def acme_flow(name: str, nodes: list[tuple[str, ...]]) -> FlowSpec:
    """A flow of `true` nodes: (application, name, prerequisites...) each."""
    listed = [node(app, node_name, "true", *depends) for app, node_name, *depends in nodes]
    return FlowSpec.model_validate({"name": name, "company": "acme", "nodes": listed})


async def ended_node(conn: asyncpg.Connection, run_id: str, name: str) -> None:
    """Hand the orchestrators the outcome of a dispatched node's job, as the
    events projection would."""
    job_id = await conn.fetchval("SELECT job_id FROM flow_node WHERE run_id = $1 AND node = $2", run_id, name)
    assert job_id is not None, f"node {name} was never dispatched"
    event = JobEvent(
        job_id=job_id, company="acme", attempt=1, status=Status.PROCESSED, at=datetime.now(UTC), final=True
    )
    await conn.execute(
        "INSERT INTO flow_inbox (job_id, payload) VALUES ($1, $2)", job_id, event.model_dump_json()
    )


async def test_each_orchestrator_sees_the_steps_the_other_took(nats_url: str, database_url: str) -> None:
    app, _ = await prepared_apps(nats_url, database_url)
    spec = acme_flow("chain", [(app, "a"), (app, "b", "a"), (app, "c", "b"), (app, "d", "c")])
    conn = await asyncpg.connect(database_url)
    try:
        async with two_engines(nats_url, database_url) as (first, second):
            run = await first.start_run(spec, "test")  # the first keeps the run: a dispatched
            await ended_node(conn, run.id, "a")
            assert await second.take_outcomes(10) == 1  # the second records a, dispatches b
            await ended_node(conn, run.id, "b")
            assert await first.take_outcomes(10) == 1  # the first must not step from "a dispatched"

            now = await first.get(run.id)
            assert [n.status for n in now.nodes] == [
                NodeStatus.SUCCEEDED,
                NodeStatus.SUCCEEDED,
                NodeStatus.DISPATCHED,
                NodeStatus.WAITING,
            ]
            # A change made by hand counts too: c's outcome recorded outside any orchestrator.
            await conn.execute(
                "UPDATE flow_node SET status = 'succeeded' WHERE run_id = $1 AND node = 'c'", run.id
            )
            await conn.execute(
                "UPDATE flow_node SET status = 'dispatched', job_id = 'by-hand' WHERE run_id = $1 AND node = 'd'",
                run.id,
            )
            await ended_node(conn, run.id, "d")
            assert await first.take_outcomes(10) == 1

            done = await second.get(run.id)
            assert done.status is FlowStatus.FINISHED, done
            assert [n.status for n in done.nodes] == [NodeStatus.SUCCEEDED] * 4
            assert [n.round for n in done.nodes] == [1, 1, 1, 1]
    finally:
        await conn.close()


async def test_a_node_that_cannot_run_when_its_turn_comes_is_skipped_with_its_dependants(
    nats_url: str, database_url: str
) -> None:
    app, doomed = await prepared_apps(nats_url, database_url)
    spec = acme_flow("doomed", [(app, "a"), (doomed, "b", "a"), (app, "c", "b"), (app, "other", "a")])
    conn = await asyncpg.connect(database_url)
    bus = await Bus.attach(nats_url, "jetjobs-test")
    seen: list[FlowEvent] = []
    try:
        async with two_engines(nats_url, database_url) as (engine, _):
            run = await engine.start_run(spec, "test")

            async def collect(msg: Msg) -> None:
                seen.append(FlowEvent.model_validate_json(msg.data))

            watch = await bus.nc.subscribe(flow_events_subject("acme", run.id), cb=collect)
            await conn.execute("DELETE FROM application WHERE uuid = $1", doomed)
            await ended_node(conn, run.id, "a")
            assert await engine.take_outcomes(10) == 1
            await ended_node(conn, run.id, "other")
            assert await engine.take_outcomes(10) == 1
            await bus.nc.flush()
            await watch.unsubscribe()

            done = await engine.get(run.id)
            assert done.status is FlowStatus.FINISHED, done
            b, c = done.node("b"), done.node("c")
            assert b.status is NodeStatus.SKIPPED and b.reason is not None
            assert b.reason.startswith("cannot run:") and doomed in b.reason
            assert c.status is NodeStatus.SKIPPED and c.reason == "b ended skipped, edge needs on: success"
            skipped = [e.node for e in seen if e.node_status is NodeStatus.SKIPPED]
            assert skipped == ["b", "c"], seen
    finally:
        await bus.close()
        await conn.close()
