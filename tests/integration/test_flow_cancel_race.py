"""A flow cancel racing a job that just succeeded, on real servers: the node ends as
its job did, whether the store recorded the job's outcome before the cancel (the
orchestrator had not stepped it yet) or only after (the outcome was still on its
way from the events stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from contracts.flows import FlowCancelled, FlowEvent, FlowRef, FlowRun, FlowSpec, FlowStatus, NodeStatus
from tests.integration.test_flows import WRITE, flows, inbox_empty, node
from tests.stack import Stack, eventually

CANCELLED = "cancelled by request"


@asynccontextmanager
async def holding(database_url: str, sql: str, *args: Any) -> AsyncIterator[asyncpg.Connection]:
    """A transaction holding the row locks `sql` takes, until the block ends."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(sql, *args)
            yield conn
    finally:
        await conn.close()


async def waited_on(conn: asyncpg.Connection, holder: asyncpg.Connection) -> bool:
    """Whether some session waits for a lock `holder` holds."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
    return bool(await conn.fetchval(query, holder.get_server_pid()))


async def job_status(conn: asyncpg.Connection, job_id: str) -> str | None:
    return await conn.fetchval("SELECT status::text FROM job WHERE id = $1", job_id)


def race(app: str, before_a: str = "true") -> FlowSpec:
    """`a` writes a result (after `before_a`) and `b` waits for it; `c` runs until it is killed."""
    nodes = [
        node(app, "a", f"{before_a}; {WRITE}", KEY="k", VALUE="v"),
        node(app, "b", "true", "a"),
        node(app, "c", "sleep 60"),
    ]
    return FlowSpec.model_validate({"name": "race", "company": "acme", "nodes": nodes})


async def events_of(stack: Stack, run_id: str, seen: list[FlowEvent]) -> None:
    async def receive(msg: Any) -> None:
        seen.append(FlowEvent.model_validate_json(msg.data))

    await stack.bus.nc.subscribe(f"jetjobs.events.acme.flow.{run_id}", cb=receive)


async def settled(stack: Stack, database_url: str) -> None:
    """Until every job of the flow has ended and the orchestrator took every outcome."""
    conn = await asyncpg.connect(database_url)
    try:

        async def done() -> bool:
            open_jobs = await conn.fetchval("SELECT count(*) FROM job WHERE NOT final")
            return open_jobs == 0 and await inbox_empty(database_url)

        await eventually(done, 20, "every job to end and its outcome to be taken")
        await stack.bus.nc.flush()
    finally:
        await conn.close()


async def test_a_node_whose_job_ended_before_the_cancel_keeps_its_outcome(
    nats_url: str, database_url: str
) -> None:
    """The orchestrator is held in another run's step (that run's lock is taken), so
    `a`'s outcome waits in the flow inbox, recorded but not stepped, when the cancel
    comes."""
    seen: list[FlowEvent] = []
    conn = await asyncpg.connect(database_url)
    try:
        async with flows(nats_url, database_url) as (stack, engine, app):
            decoy = await engine.start_run(
                FlowSpec.model_validate(
                    {"name": "decoy", "company": "acme", "nodes": [node(app, "x", "sleep 1")]}
                )
            )
            async with holding(
                database_url, "SELECT 1 FROM flow_run WHERE id = $1 FOR UPDATE", decoy.id
            ) as held:
                await eventually(
                    lambda: waited_on(conn, held), 15, "the orchestrator to wait in the decoy's step"
                )
                run = await engine.start_run(race(app))
                await events_of(stack, run.id, seen)
                jobs = {n.name: n.job_id or "" for n in run.nodes if n.job_id}

                async def ready() -> bool:
                    waiting = await conn.fetchval(
                        "SELECT count(*) FROM flow_inbox WHERE job_id = $1", jobs["a"]
                    )
                    return bool(waiting) and await job_status(conn, jobs["c"]) == "started"

                await eventually(ready, 15, "a's outcome in the inbox, and c running")
                reply = await stack.client.call("flow.cancel", FlowRef(id=run.id), FlowCancelled)
            await settled(stack, database_url)
            after = await engine.get(run.id)
    finally:
        await conn.close()
    assert reply.cancelled_jobs == [jobs["c"]]
    for view in (reply.run, after):
        assert view.status is FlowStatus.CANCELLED
        states = {n.name: (n.status, n.reason) for n in view.nodes}
        assert states == {
            "a": (NodeStatus.SUCCEEDED, None),
            "b": (NodeStatus.SKIPPED, CANCELLED),
            "c": (NodeStatus.FAILED, CANCELLED),
        }
        assert view.result == {"a": {"k": "v"}}
    assert after.node("a").job_status == "processed" and after.node("c").job_status == "error"
    ends = [(e.node, e.node_status) for e in seen if e.node_status is not NodeStatus.DISPATCHED]
    assert ends == [
        ("a", NodeStatus.SUCCEEDED),
        ("c", NodeStatus.FAILED),
        ("b", NodeStatus.SKIPPED),
        (None, None),
    ], "every node's end, then the run's, and nothing after it"
    assert seen[-1].status is FlowStatus.CANCELLED and seen[-1].result == {"a": {"k": "v"}}


async def test_a_node_whose_job_succeeded_as_the_cancel_came_ends_succeeded(
    nats_url: str, database_url: str
) -> None:
    """`a`'s `processed` is in the events stream, but the store cannot record it yet
    (the test holds a's job row) when the cancel comes: the cancel fails `a` and
    asks its job to stop, too late; the success, recorded after, turns `a` succeeded."""
    seen: list[FlowEvent] = []
    outcomes: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        async with flows(nats_url, database_url) as (stack, engine, app):
            run = await engine.start_run(race(app, before_a="sleep 1"))
            await events_of(stack, run.id, seen)
            jobs = {n.name: n.job_id or "" for n in run.nodes if n.job_id}

            async def ended(msg: Any) -> None:
                outcomes.append(msg.data.decode())

            await stack.bus.nc.subscribe(f"jetjobs.events.acme.{jobs['a']}", cb=ended)

            async def running() -> bool:
                return [await job_status(conn, jobs[n]) for n in "ac"] == ["started", "started"]

            await eventually(running, 15, "a and c to start")
            async with holding(database_url, "SELECT 1 FROM job WHERE id = $1 FOR UPDATE", jobs["a"]) as held:
                await eventually(
                    lambda: _true(any('"processed"' in o for o in outcomes)), 15, "a's success in the stream"
                )
                await eventually(lambda: waited_on(conn, held), 15, "the store to wait to record it")
                reply = await stack.client.call("flow.cancel", FlowRef(id=run.id), FlowCancelled)
            await settled(stack, database_url)

            async def succeeded() -> FlowRun | None:
                current = await engine.get(run.id)
                return current if current.node("a").status is NodeStatus.SUCCEEDED else None

            after = await eventually(succeeded, 10, "a to take its job's success")
            await stack.bus.nc.flush()
    finally:
        await conn.close()
    assert sorted(reply.cancelled_jobs) == sorted([jobs["a"], jobs["c"]]), "both looked running"
    assert reply.run.node("a").status is NodeStatus.FAILED and reply.run.node("a").job_status == "started"
    assert after.status is FlowStatus.CANCELLED
    states = {n.name: (n.status, n.reason) for n in after.nodes}
    assert states == {
        "a": (NodeStatus.SUCCEEDED, None),
        "b": (NodeStatus.SKIPPED, CANCELLED),
        "c": (NodeStatus.FAILED, CANCELLED),
    }
    assert after.result == {"a": {"k": "v"}}
    assert after.node("a").job_status == "processed" and after.node("c").job_status == "error"
    ends = [(e.node, e.node_status, e.status) for e in seen if e.node_status is not NodeStatus.DISPATCHED]
    assert ends == [
        ("a", NodeStatus.FAILED, FlowStatus.STARTED),
        ("c", NodeStatus.FAILED, FlowStatus.STARTED),
        ("b", NodeStatus.SKIPPED, FlowStatus.STARTED),
        (None, None, FlowStatus.CANCELLED),
        ("a", NodeStatus.SUCCEEDED, FlowStatus.CANCELLED),
    ], "the late success is published after the run's end; c's kill publishes nothing"


async def _true(value: object) -> bool:
    return bool(value)
