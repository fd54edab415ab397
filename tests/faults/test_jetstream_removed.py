"""A consumer an operator deleted, or every stream of a NATS server that came back
with its storage wiped: the service that notices makes again what it needs, says
so once, and goes on, without any service restarting."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError
from structlog.testing import capture_logs

from bus import ApiClient, Bus, Layout
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.enums import Status
from jetjobs.embedded import NatsServer
from tests.faults.harness import Faults, Proc, faults
from tests.servers import delete_streams
from tests.stack import Stack, eventually

pytestmark = pytest.mark.timeout(90)


async def consumer_exists(bus: Bus, stream: str, durable: str) -> bool:
    try:
        await bus.js.consumer_info(stream, durable)
    except NotFoundError:
        return False
    return True


def said(proc: Proc, event: str) -> bool:
    return event in proc.log.read_text(errors="replace")


async def processed(f: Faults, ids: list[str], timeout: float) -> None:
    rows = await f.all_final(ids, timeout)
    assert {r["status"] for r in rows.values()} == {Status.PROCESSED.value}, [
        (r["status"], r["reason"]) for r in rows.values()
    ]


async def test_a_pool_consumer_deleted_under_a_running_executor_is_made_again(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    async with faults(nats_url, database_url, tmp_path) as f:
        executor = f.executor(slots=2)
        await f.ready(executor)
        await processed(f, await f.submit(1, ["true"]), 20)  # the test's publisher has made the consumer

        await f.bus.js.delete_consumer(s.DISPATCH_STREAM, s.pool_consumer("default"))
        made = await eventually(
            lambda: consumer_exists(f.bus, s.DISPATCH_STREAM, s.pool_consumer("default")),
            10,
            "the executor to make its consumer again",
        )
        assert made
        await processed(f, await f.submit(3, ["true"], timeout=15.0), 20)
        assert said(executor, "bus.remade"), executor.tail()
        assert executor.popen.poll() is None


async def test_a_deleted_store_consumer_is_made_again_and_nothing_logs_a_traceback(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    async with faults(nats_url, database_url, tmp_path) as f:
        await f.ready(f.executor(slots=2))
        with capture_logs() as logs:
            await f.bus.js.delete_consumer(s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER)
            await processed(f, await f.submit(3, ["true"], timeout=15.0), 20)
            await asyncio.sleep(1.0)  # a few reaper rounds (every 0.67 s) after it
        tracebacks = [e["event"] for e in logs if e.get("exc_info")]
        assert not tracebacks, tracebacks
        remade = [e for e in logs if e["event"] == "bus.remade"]
        assert [e["missing"] for e in remade] == [[f"{s.EVENTS_STREAM}/{s.STORE_EVENTS_CONSUMER}"]], remade


async def is_started(f: Faults, job_id: str) -> bool:
    return await f.status(job_id) == Status.STARTED.value


def wipe(server: NatsServer) -> None:
    """Restart the server with its JetStream storage gone (a container without a volume)."""
    server.stop()
    shutil.rmtree(server.data_dir / "jetstream")
    server.restart()


async def run_now(stack: Stack, template_id: int) -> str | None:
    """The job of a run-now; None while the store's connection is coming back."""
    try:
        return (await stack.run(template_id)).job_id
    except ApiFailure as failure:
        if failure.code != 503:
            raise
        return None


async def test_after_nats_lost_its_storage_run_nows_run_and_are_recorded(
    embedded_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with faults(embedded_nats.url, database_url, tmp_path) as f:
        f.bus.stats.on_reconnect.clear()  # the test's own connection makes nothing again: the services must
        executor = f.executor(slots=2)
        await f.ready(executor)
        stack = Stack(f.nats_url, f.database_url, ApiClient(f.bus.nc), f.bus)
        await stack.company("acme")
        app = await stack.app("-c 'exit 0'")
        template_id = (await stack.template(name="wiped", app=app.app.uuid, company="acme")).id
        await processed(f, [(await stack.run(template_id)).job_id], 20)
        slow = await stack.app("-c 'sleep 3'")
        slow_id = (await stack.template(name="across", app=slow.app.uuid, company="acme")).id
        running = (await stack.run(slow_id)).job_id
        await eventually(lambda: is_started(f, running), 20, "the slow job to start")

        await asyncio.to_thread(wipe, embedded_nats)
        ids = [await eventually(lambda: run_now(stack, template_id), 20, "a run-now to be queued")]
        ids += [(await stack.run(template_id)).job_id for _ in range(2)]
        await processed(f, [*ids, running], 30)  # the job running across it reports its end too
        assert executor.popen.poll() is None, "the executor was not restarted"


async def test_services_making_the_same_streams_and_consumers_again_at_once_all_succeed(
    nats_url: str,
) -> None:
    buses = [await Bus.open(nats_url, f"healer-{i}", Layout(), store=i % 2 == 0) for i in range(4)]
    try:
        for bus in buses:
            bus.healer.declare(s.DISPATCH_STREAM, bus.layout.pool_consumer("default"))
        await delete_streams(nats_url)
        assert await asyncio.gather(*(bus.healer.restore("a test") for bus in buses)) == [True] * 4
        for stream, durable in [
            (s.DISPATCH_STREAM, s.pool_consumer("default")),
            (s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER),
        ]:
            assert await consumer_exists(buses[0], stream, durable)
    finally:
        for bus in buses:
            await bus.close()
