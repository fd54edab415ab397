"""Cluster proof: three nats-server processes on loopback, R3 streams, one node
killed mid-run; every job still completes and is recorded once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from bus import ApiClient, Bus, Layout
from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from executor import ExecutorConfig, ExecutorService
from jetjobs.embedded import NatsServer, free_port
from store import StoreConfig, StoreService
from tests.servers import shutdown
from tests.stack import Stack, eventually

JOBS = 24


@contextlib.contextmanager
def cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    """Three JetStream nodes routed to each other, stopped (by pid) at the end."""
    ports = [free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in ports)
    servers: list[NatsServer] = []
    try:
        for index, port in enumerate(ports, start=1):
            args = ["--server_name", f"n{index}", "--cluster_name", "jetjobs"]
            args += ["--cluster", f"nats://127.0.0.1:{port}", "--routes", routes]
            servers.append(NatsServer.start(tmp_path / f"n{index}", extra_args=args))
        yield servers
    finally:
        for server in servers:
            shutdown(server)


async def _jetstream_ready(url: str) -> None:
    """Wait until the cluster has a meta leader and accepts R3 streams."""

    async def ready() -> bool:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    await eventually(ready, timeout=30, what="the cluster to elect a JetStream leader")


async def _run_through_failover(stack: Stack, template_id: int) -> str:
    """Run now, retrying while the store reconnects to a surviving node (the
    API answers 503 "no responders" for a moment, as any client would see).
    A 504 does not say the run was not queued, so each retry names the same key."""
    request = api.RunNow(id=template_id, key=f"failover-{uuid.uuid4()}")

    async def attempt() -> str | None:
        try:
            return (await stack.client.call("template.run", request, api.JobQueued)).job_id
        except ApiFailure as failure:
            if failure.code not in (503, 504):
                raise
            return None

    return await eventually(attempt, timeout=30, what="the API to answer after the failover")


async def _stream_leader(bus: Bus, stream: str) -> str:
    info = await bus.js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader
    return str(info.cluster.leader)


@pytest.mark.timeout(240)
async def test_jobs_survive_losing_a_node_of_an_r3_cluster(tmp_path: Path, database_url: str) -> None:
    with cluster(tmp_path) as nodes:
        url = ",".join(node.url for node in nodes)
        await _jetstream_ready(nodes[0].url)
        layout = Layout(replicas=3)
        store = StoreService(StoreConfig(nats_url=url, database_url=database_url), layout)
        executors = [
            ExecutorService(ExecutorConfig(nats_url=url, slots=4, runner_id=f"r{i}"), layout) for i in (1, 2)
        ]
        started: list[StoreService | ExecutorService] = []
        bus = await Bus.attach(url, "jetjobs-test", layout)
        try:
            for service in (store, *executors):
                await service.start()
                started.append(service)
            stack = Stack(url, database_url, ApiClient(bus.nc), bus, list(started))
            info = await bus.js.stream_info(s.DISPATCH_STREAM)
            assert info.config.num_replicas == 3

            await stack.company("acme")
            app = await stack.app("-c 'sleep 0.4; echo done'")
            template = await stack.template(name="slow", app=app.app.uuid, company="acme")
            queued = [(await stack.run(template.id)).job_id for _ in range(JOBS // 2)]

            async def some_started() -> bool:
                return sum(e.running for e in executors) > 0

            await eventually(some_started, what="jobs to start")
            leader = await _stream_leader(bus, s.DISPATCH_STREAM)
            victim = next(n for i, n in enumerate(nodes, start=1) if f"n{i}" == leader)
            victim.kill()
            queued += [await _run_through_failover(stack, template.id) for _ in range(JOBS - len(queued))]

            finished = [await stack.final_job(job_id, timeout=90) for job_id in queued]
            assert [job.status.value for job in finished] == ["processed"] * JOBS
            assert all(job.stdout == "done\n" for job in finished)
            recorded = await stack.jobs(company="acme", limit=1000)
            assert sorted(job.id for job in recorded) == sorted(queued)
            assert await _stream_leader(bus, s.DISPATCH_STREAM) != leader
        finally:
            for service in reversed(started):
                await asyncio.wait_for(service.stop(), 60)
            await bus.nc.close()
