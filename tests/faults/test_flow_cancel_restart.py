"""A store killed between a flow cancel's commit and its kills: the kills wait in
the flow outbox, and the next store stops the running jobs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import asyncpg

from bus import ApiClient, Bus, CancelBoard, Layout
from contracts import api
from contracts.api import ApiFailure
from contracts.flows import FlowCancelled, FlowRef, FlowRun, FlowRunRequest, FlowSpec, FlowStatus, NodeStatus
from contracts.models import Company
from executor import ExecutorConfig, ExecutorService
from tests.faults.harness import ACK_WAIT, Proc
from tests.faults.test_flows_restart import answering, spawn_store
from tests.stack import eventually

WAITING = 1500
"""Nodes waiting behind the running one: the cancel publishes a `skipped` event for
each before its kill, which keeps the store between its commit and its kill a while."""


def doomed(app: str) -> FlowSpec:
    nodes = [{"name": "long", "app": app, "env": {"SCRIPT": "sleep 60"}}]
    nodes += [
        {"name": f"w{i}", "app": app, "env": {"SCRIPT": "true"}, "depends": ["long"]} for i in range(WAITING)
    ]
    return FlowSpec.model_validate({"name": "doomed", "company": "acme", "nodes": nodes})


async def job_row(conn: asyncpg.Connection, job_id: str) -> Any:
    return await conn.fetchrow("SELECT status::text, final, kind::text FROM job WHERE id = $1", job_id)


async def kill_after_the_commit(conn: asyncpg.Connection, proc: Proc, run_id: str) -> None:
    """SIGSTOP the store as soon as the cancel is committed, SIGKILL it after."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        if await conn.fetchval("SELECT status FROM flow_run WHERE id = $1", run_id) == "cancelled":
            proc.signal(signal.SIGSTOP)
            break
        await asyncio.sleep(0.002)
    await asyncio.to_thread(proc.kill_group)


async def test_a_store_killed_right_after_a_cancel_commits_leaves_no_job_running(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    procs: list[Proc] = []
    bus = await Bus.attach(nats_url, "jetjobs-test")
    executor: ExecutorService | None = None
    conn = await asyncpg.connect(database_url)
    try:
        procs.append(spawn_store(nats_url, database_url, tmp_path, 0))
        client = ApiClient(bus.nc, timeout=60)
        await answering(client, procs)
        await client.call("company.create", Company(code="acme", name="ACME"), Company)
        document = {"name": "sh", "executable": "sh", "cmdparams": "-c ${SCRIPT}"}
        app = await client.call("app.import", api.AppImport(document=document), api.AppImported)
        executor = ExecutorService(ExecutorConfig(nats_url=nats_url, slots=2), Layout(ack_wait=ACK_WAIT))
        await executor.start()
        run = await client.call("flow.run", FlowRunRequest(spec=doomed(app.app.uuid)), FlowRun)
        job_id = run.node("long").job_id
        assert job_id is not None

        async def started() -> bool:
            row = await job_row(conn, job_id)
            return row is not None and row["status"] == "started"

        await eventually(started, 30, "the long job to start")
        cancel = asyncio.create_task(client.call("flow.cancel", FlowRef(id=run.id), FlowCancelled))
        await kill_after_the_commit(conn, procs[0], run.id)
        cancel.cancel()  # no answer comes: the store died on it
        with contextlib.suppress(asyncio.CancelledError, ApiFailure):
            await cancel
        killed_before = await (await CancelBoard.open(bus.js)).reason(job_id)
        left = await conn.fetchval("SELECT count(*) FROM flow_outbox WHERE kind = 'kill'")

        procs.append(spawn_store(nats_url, database_url, tmp_path, 1))
        await answering(client, procs[1:])

        async def ended() -> Any:
            row = await job_row(conn, job_id)
            return row if row["final"] else None

        final = await eventually(ended, 30, "the restarted store to stop the cancelled run's job")
        after = await client.call("flow.get", FlowRef(id=run.id), FlowRun)
        undone = await conn.fetchval("SELECT count(*) FROM flow_outbox")
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.kill_group)
        if executor is not None:
            await executor.stop()
        await conn.close()
        await bus.close()
    assert killed_before is None, "the store stopped the job before it was killed: no crash window hit"
    assert left == 1, "the kill was not kept in the outbox"
    assert (final["status"], final["kind"]) == ("error", "cancelled"), dict(final)
    assert after.status is FlowStatus.CANCELLED
    assert (
        after.node("long").status is NodeStatus.FAILED and after.node("long").reason == "cancelled by request"
    )
    assert undone == 0
