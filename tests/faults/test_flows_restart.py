"""Killing an orchestrating store mid-flow: the standby resumes it, no node runs twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from bus import ApiClient, Bus, Layout
from contracts import api
from contracts.api import ApiFailure
from contracts.flows import FlowRef, FlowRun, FlowRunRequest, FlowSpec, FlowStatus, NodeStatus
from contracts.models import Company
from executor import ExecutorConfig, ExecutorService
from tests.faults.harness import ACK_WAIT, ROOT, Proc
from tests.stack import eventually

CHAIN = 6


def spawn_store(nats_url: str, database_url: str, tmp: Path, index: int) -> Proc:
    environ = {
        **os.environ,
        "JETJOBS_NATS_URL": nats_url,
        "JETJOBS_DATABASE_URL": database_url,
        "JETJOBS_ACK_WAIT": str(ACK_WAIT),
        "JETJOBS_METRICS_PORT": "0",
        "JETJOBS_LOG_LEVEL": "info",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp / f"store-{index}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "jetjobs", "store"],
            env=environ,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(popen, log)


async def answering(client: ApiClient, procs: list[Proc]) -> None:
    async def probe() -> bool:
        for proc in procs:
            assert proc.popen.poll() is None, proc.tail()
        try:
            await client.call("company.list", api.CompanyFilter(), api.CompanyList)
        except (ApiFailure, TimeoutError, Exception):
            return False
        return True

    await eventually(probe, 30, "the stores to answer")


async def record_of_the_chain(database_url: str) -> list[asyncpg.Record]:
    """Every node's job with its attempts, once all of them are recorded as processed."""
    conn = await asyncpg.connect(database_url)
    seen: list[asyncpg.Record] = []
    try:

        async def recorded() -> list[asyncpg.Record] | None:
            nonlocal seen
            seen = await conn.fetch(
                "SELECT j.id, j.status, j.launched_by, "
                "(SELECT count(*) FROM job_attempt a WHERE a.job_id = j.id) AS attempts "
                "FROM job j WHERE j.company = 'acme'"
            )
            chained = [r for r in seen if r["launched_by"] == "flow:chain"]
            done = len(chained) == CHAIN and all(r["status"] == "processed" for r in chained)
            return chained if done else None

        try:
            return await eventually(recorded, 30, "every node's job to be recorded as processed")
        except AssertionError as error:
            raise AssertionError(f"{error}; last seen: {[dict(r) for r in seen]}") from None
    finally:
        await conn.close()


def chain(app: str) -> FlowSpec:
    nodes = [
        {"name": f"n{i}", "app": app, "env": {"SCRIPT": "sleep 0.4"}, "depends": [f"n{i - 1}"] if i else []}
        for i in range(CHAIN)
    ]
    return FlowSpec.model_validate({"name": "chain", "company": "acme", "nodes": nodes})


async def test_a_killed_orchestrator_is_resumed_without_running_a_node_twice(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    procs: list[Proc] = []
    bus = await Bus.attach(nats_url, "jetjobs-test")
    executor: ExecutorService | None = None
    try:
        procs.append(spawn_store(nats_url, database_url, tmp_path, 0))
        client = ApiClient(bus.nc)
        await answering(client, procs)
        procs.append(spawn_store(nats_url, database_url, tmp_path, 1))
        executor = ExecutorService(ExecutorConfig(nats_url=nats_url, slots=4), Layout(ack_wait=ACK_WAIT))
        await executor.start()
        await client.call("company.create", Company(code="acme", name="ACME"), Company)
        document = {"name": "sh", "executable": "sh", "cmdparams": "-c ${SCRIPT}"}
        app = await client.call("app.import", api.AppImport(document=document), api.AppImported)
        await asyncio.sleep(2)  # let the second store start its orchestrator too
        run = await client.call("flow.run", FlowRunRequest(spec=chain(app.app.uuid)), FlowRun)

        poller = ApiClient(bus.nc, timeout=2)

        async def node_done(name: str) -> FlowRun | None:
            try:
                current = await poller.call("flow.get", FlowRef(id=run.id), FlowRun)
            except ApiFailure as failure:
                # a request that reached the store as it was killed gets no answer
                if failure.code == 504:
                    return None
                raise
            done = {n.name for n in current.nodes if n.status is NodeStatus.SUCCEEDED}
            return current if name in done or current.status is not FlowStatus.STARTED else None

        await eventually(lambda: node_done("n1"), 30, "n1 to succeed")
        procs[0].kill_group()
        ended = await eventually(lambda: node_done(f"n{CHAIN - 1}"), 60, "the flow to end")
        assert ended.status is FlowStatus.FINISHED, [
            (n.name, n.status, n.job_status, n.reason) for n in ended.nodes
        ]
        # The killed store may have held some dispatches and events unacked: they
        # reach the survivor after the ack wait, so the record completes a little
        # after the flow ends, while the survivor still runs.
        rows = await record_of_the_chain(database_url)
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.kill_group)
        if executor is not None:
            await executor.stop()
        await bus.close()
    assert all(row["attempts"] == 1 for row in rows), [dict(r) for r in rows]
