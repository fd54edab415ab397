"""A consumer an operator deleted, or every stream of a NATS server that came back
with its storage wiped: the service that notices makes again what it needs, says
so once, and goes on, without any service restarting."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError
from structlog.testing import capture_logs

from bus import ApiClient, Bus, Layout, TemplateBoard, dispatch_message
from bus.letters import job_id_of
from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.enums import ErrorKind, Status
from contracts.lifecycle import CancelReply
from contracts.models import RunTemplate
from jetjobs.embedded import NatsServer
from tests.faults.harness import Faults, Proc, faults
from tests.servers import delete_streams
from tests.stack import Stack, eventually, make_scheduler

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


async def fired_since(f: Faults, template_id: int, since: datetime) -> int:
    rows = await f.rows(
        "SELECT count(*) AS n FROM job WHERE template_id = $1 AND scheduled_at > $2", template_id, since
    )
    return int(rows[0]["n"])


async def delete_templates_bucket(server: NatsServer) -> None:
    """An operator deletes the templates bucket; nothing restarts."""
    bus = await Bus.attach(server.url, "operator")
    try:
        await bus.js.delete_stream(f"KV_{s.TEMPLATES_BUCKET}")
    finally:
        await bus.close()


async def wiped(server: NatsServer) -> None:
    await asyncio.to_thread(wipe, server)


@pytest.mark.parametrize("loss", [wiped, delete_templates_bucket], ids=["wiped", "bucket_deleted"])
async def test_after_the_templates_bucket_is_lost_a_running_scheduler_keeps_firing(
    embedded_nats: NatsServer,
    database_url: str,
    tmp_path: Path,
    loss: Callable[[NatsServer], Awaitable[None]],
) -> None:
    async with faults(embedded_nats.url, database_url, tmp_path) as f:
        f.bus.stats.on_reconnect.clear()
        stack = Stack(f.nats_url, f.database_url, ApiClient(f.bus.nc), f.bus)
        await stack.company("acme")
        app = await stack.app("-c 'exit 0'")
        made = await every_second(stack, "tick", app.app.uuid)
        for _ in range(3):  # the board's sequence moves on: a watch resumed after it would miss the new
            await stack.client.call("template.pause", api.TemplateRef(id=made.id), RunTemplate)
            await stack.client.call("template.resume", api.TemplateRef(id=made.id), RunTemplate)
        scheduler = make_scheduler(f.nats_url)
        await scheduler.start()
        try:
            start = datetime.now(UTC)
            await eventually(lambda: _at_least(f, made.id, start, 2), 20, "the template to fire")

            await loss(embedded_nats)
            lost = datetime.now(UTC)
            await eventually(
                lambda: _at_least(f, made.id, lost, 3), 30, "the template to fire after the loss"
            )
            await eventually(lambda: on_board(f, made.id), 10, "the store to put the template back")
            later = await eventually(lambda: template_made(stack, app.app.uuid), 20, "a template to be made")
            await eventually(
                lambda: _at_least(f, later.id, lost, 2), 20, "a template made after the loss to fire"
            )
        finally:
            await scheduler.stop()


async def every_second(stack: Stack, name: str, app: str) -> RunTemplate:
    return await stack.template(
        name=name, app=app, company="acme", interv="c", cron="* * * * * *", pool="idle", overlap="allow"
    )


async def template_made(stack: Stack, app: str) -> RunTemplate | None:
    """A new template firing every second; None while the store cannot put it on the board."""
    try:
        return await every_second(stack, "tock", app)
    except ApiFailure as failure:
        if failure.code != 503:
            raise
        return None


async def on_board(f: Faults, template_id: int) -> bool:
    """Whether the board holds the template again, for a scheduler that starts now."""
    try:
        return template_id in await (await TemplateBoard.open(f.bus.js)).ids()
    except NotFoundError:
        return False


async def _at_least(f: Faults, template_id: int, since: datetime, count: int) -> bool:
    return await fired_since(f, template_id, since) >= count


async def cancel(client: ApiClient, job_id: str) -> CancelReply | None:
    """The reply to a cancel; None while the store's connection is coming back."""
    try:
        return await client.call("job.cancel", api.JobRef(id=job_id), CancelReply)
    except ApiFailure as failure:
        if failure.code != 503:
            raise
        return None


async def submitted(f: Faults, argv: list[str], **fields: object) -> str | None:
    """One job's id; None while its publish fails (NATS coming back)."""
    try:
        [job_id] = await f.submit(1, argv, **fields)
    except Exception:
        return None
    return job_id


async def cancelled_while_running(f: Faults, client: ApiClient) -> None:
    job_id = await eventually(lambda: submitted(f, ["sleep", "30"]), 20, "a job to be queued")
    await eventually(lambda: is_started(f, job_id), 20, "the job to start")
    await eventually(lambda: cancel(client, job_id), 20, "the cancel to be taken")
    rows = await f.all_final([job_id], 20)
    row = rows[job_id]
    assert row["kind"] == ErrorKind.CANCELLED.value, (row["status"], row["kind"], row["reason"])


async def test_after_nats_lost_its_storage_a_cancel_still_reaches_a_running_job(
    embedded_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with faults(embedded_nats.url, database_url, tmp_path) as f:
        f.bus.stats.on_reconnect.clear()
        client = ApiClient(f.bus.nc)
        executor = f.executor(slots=2)
        await f.ready(executor)
        await cancelled_while_running(f, client)  # the watch has seen the bucket's first message

        await asyncio.to_thread(wipe, embedded_nats)
        await cancelled_while_running(f, client)
        assert executor.popen.poll() is None, "the executor was not restarted"


async def job_at(f: Faults, seq: int) -> str | None:
    stored = await dispatch_message(f.bus.js, seq)
    return None if stored is None else job_id_of(stored.data)


async def test_a_cancel_after_nats_lost_its_storage_leaves_another_jobs_message_where_its_was(
    embedded_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    async with faults(embedded_nats.url, database_url, tmp_path) as f:
        [before] = await f.submit(1, ["true"], pool="idle")  # no executor serves the pool
        seq = await eventually(lambda: _dispatch_of(f, before), 20, "the job's message to be recorded")

        await asyncio.to_thread(wipe, embedded_nats)
        after: list[str] = []
        while len(after) < seq:
            after.append(
                await eventually(lambda: submitted(f, ["true"], pool="idle"), 20, "a job to be queued")
            )
        assert await job_at(f, seq) == after[-1]
        await eventually(lambda: _dispatch_of(f, after[-1]), 20, "the new job's message to be recorded")

        reply = await eventually(lambda: cancel(ApiClient(f.bus.nc), before), 20, "the cancel to be taken")
        assert reply.state == "queued", reply
        assert await job_at(f, seq) == after[-1], "the other job's message was deleted"


async def _dispatch_of(f: Faults, job_id: str) -> int | None:
    rows = await f.rows("SELECT stream_seq FROM job_dispatch WHERE job_id = $1", job_id)
    return None if not rows or rows[0]["stream_seq"] is None else int(rows[0]["stream_seq"])


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
