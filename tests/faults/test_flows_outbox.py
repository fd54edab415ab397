"""A store killed between a flow step's commit and its publish: the next store
sends what the step kept in its outbox, once (the same Nats-Msg-Id), and the flow
finishes with every node run once and every flow event stored once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import asyncpg

from bus import ApiClient, Bus, Layout
from contracts import api
from contracts.flows import FlowEvent, FlowRef, FlowRun, FlowRunRequest, FlowSpec, FlowStatus, NodeStatus
from contracts.models import Company
from executor import ExecutorConfig, ExecutorService
from tests.faults.harness import ACK_WAIT, Proc
from tests.faults.test_flows_restart import answering, spawn_store
from tests.stack import eventually

WIDTH = 300
"""Nodes one step makes ready: their messages and events take a while to publish."""
TRIES = 3
"""Flow runs started until one's store is stopped inside the window."""
SENT = (
    "SELECT count(*) FROM flow_node WHERE run_id = $1 AND status <> 'waiting_for_prerequisites' "
    "AND NOT EXISTS (SELECT 1 FROM flow_outbox)"
)
"""Nodes of the run past waiting while the outbox is empty: its wide step already went out."""


def wide(app: str) -> FlowSpec:
    nodes = [{"name": "root", "app": app, "env": {"SCRIPT": "sleep 1"}}]
    nodes += [
        {"name": f"w{i}", "app": app, "env": {"SCRIPT": "true"}, "depends": ["root"]} for i in range(WIDTH)
    ]
    return FlowSpec.model_validate({"name": "wide", "company": "acme", "nodes": nodes})


async def stop_inside_the_window(database_url: str, proc: Proc, run_id: str) -> int:
    """SIGSTOP the store as soon as a step's outbox rows are committed, SIGKILL it
    after; how many rows it left unsent (none when the run's wide step was sent
    before this saw it)."""
    conn = await asyncpg.connect(database_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            if await conn.fetchval("SELECT count(*) FROM flow_outbox") >= WIDTH:
                proc.signal(signal.SIGSTOP)
                break
            if await conn.fetchval(SENT, run_id) > WIDTH:
                break
            await asyncio.sleep(0.002)
        await asyncio.to_thread(proc.kill_group)
        return int(await conn.fetchval("SELECT count(*) FROM flow_outbox"))
    finally:
        await conn.close()


async def flow_events(bus: Bus, run_id: str) -> list[FlowEvent]:
    """Every flow event of the run stored in the stream."""
    sub = await bus.js.pull_subscribe(f"jetjobs.events.acme.flow.{run_id}", durable=None)
    events: list[FlowEvent] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=1.0)
            except TimeoutError:  # nats-py raises both its own and the plain one
                return events
            events += [FlowEvent.model_validate_json(m.data) for m in batch]
    finally:
        await sub.unsubscribe()


async def test_a_store_killed_after_a_step_commits_loses_and_duplicates_nothing(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    procs: list[Proc] = []
    bus = await Bus.attach(nats_url, "jetjobs-test")
    executor: ExecutorService | None = None
    try:
        procs.append(spawn_store(nats_url, database_url, tmp_path, 0))
        client = ApiClient(bus.nc)
        await answering(client, procs)
        await client.call("company.create", Company(code="acme", name="ACME"), Company)
        document = {"name": "sh", "executable": "sh", "cmdparams": "-c ${SCRIPT}"}
        app = await client.call("app.import", api.AppImport(document=document), api.AppImported)
        executor = ExecutorService(ExecutorConfig(nats_url=nats_url, slots=8), Layout(ack_wait=ACK_WAIT))
        await executor.start()
        for _ in range(TRIES):  # on a loaded machine the poll may see the window too late
            run = await client.call("flow.run", FlowRunRequest(spec=wide(app.app.uuid)), FlowRun)
            unsent = await stop_inside_the_window(database_url, procs[-1], run.id)
            procs.append(spawn_store(nats_url, database_url, tmp_path, len(procs)))
            await answering(client, procs[-1:])
            if unsent > 0:
                break

        async def ended() -> FlowRun | None:
            current = await client.call("flow.get", FlowRef(id=run.id), FlowRun)
            return current if current.status is not FlowStatus.STARTED else None

        final = await eventually(ended, 80, "the flow to end after the restart")
        events = await flow_events(bus, run.id)
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.kill_group)
        if executor is not None:
            await executor.stop()
        await bus.close()
    assert unsent > 0, f"each of {TRIES} stores was stopped after it had sent everything: no crash window hit"
    assert final.status is FlowStatus.FINISHED
    assert all(n.status is NodeStatus.SUCCEEDED for n in final.nodes)
    conn = await asyncpg.connect(database_url)
    try:
        attempts = await conn.fetch(
            "SELECT n.node, (SELECT count(*) FROM job_attempt a WHERE a.job_id = n.job_id) AS attempts "
            "FROM flow_node n WHERE n.run_id = $1",
            run.id,
        )
        left = await conn.fetchval("SELECT count(*) FROM flow_outbox")
    finally:
        await conn.close()
    assert len(attempts) == WIDTH + 1 and all(row["attempts"] == 1 for row in attempts)
    assert left == 0
    steps = Counter((e.node, e.node_status) for e in events if e.node is not None)
    assert all(count == 1 for count in steps.values()), steps.most_common(3)
    dispatched = {node for node, status in steps if status is NodeStatus.DISPATCHED}
    assert len(dispatched) == WIDTH + 1  # no event lost either
    assert [e.status for e in events if e.node is None] == [FlowStatus.STARTED, FlowStatus.FINISHED]
