"""The runners bucket is kept in memory, so a NATS restart loses it: whoever finds
it missing makes it again, as provisioned, and goes on — executors' heartbeats,
`runner.list` and the store's reaper — without any service restarting."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest
from nats.js.api import StorageType
from nats.js.errors import NotFoundError
from structlog.testing import capture_logs

from bus import ApiClient, Bus, Layout, RunnerBoard
from bus.infra import ensure_consumer
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.lifecycle import RunnerInfo, RunnerList, RunnerQuery
from jetjobs.embedded import NatsServer
from tests.faults.harness import Faults, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)

BUCKET_STREAM = f"KV_{s.RUNNERS_BUCKET}"
LAYOUT = Layout(ack_wait=2.0)


async def lose_bucket(bus: Bus) -> None:
    await bus.js.delete_stream(BUCKET_STREAM)


async def assert_provisioned(bus: Bus) -> None:
    """The bucket exists again, with the configuration it was provisioned with."""
    config = (await bus.js.stream_info(BUCKET_STREAM)).config
    expected = LAYOUT.runners_bucket()
    assert config.storage == StorageType.MEMORY
    assert config.max_age == expected.ttl and config.description == expected.description


async def test_a_board_with_the_layout_makes_the_lost_bucket_again(nats_url: str) -> None:
    bus = await Bus.open(nats_url, "runners-test", LAYOUT)
    try:
        board = await RunnerBoard.open(bus.js, LAYOUT)
        at = "2026-03-01T12:00:00Z"
        fields = {"id": "r1", "host": "h", "pool": "default", "pid": 1, "slots": 1, "running": []}
        info = RunnerInfo.model_validate(fields | {"started_at": at, "at": at})
        await lose_bucket(bus)
        await board.beat(info)
        await assert_provisioned(bus)
        assert [r.id for r in await board.live()] == ["r1"], "the beat that found it missing went on"
        await lose_bucket(bus)
        assert await board.live() == []
        await assert_provisioned(bus)
        await lose_bucket(bus)
        assert await board.made() is None
        assert await board.made() is not None
        read_only = await RunnerBoard.open(bus.js)
        await lose_bucket(bus)
        with pytest.raises(NotFoundError):  # a look without the layout (`jetjobs status`) only reads
            await read_only.live()
    finally:
        await bus.close()


async def test_listing_runners_leaves_no_consumer_behind(nats_url: str) -> None:
    bus = await Bus.open(nats_url, "runners-list", LAYOUT)
    try:
        board = await RunnerBoard.open(bus.js, LAYOUT)
        at = "2026-03-01T12:00:00Z"
        for runner in ("r1", "r2", "r3"):
            fields = {"id": runner, "host": "h", "pool": "default", "pid": 1, "slots": 1, "running": []}
            await board.beat(RunnerInfo.model_validate(fields | {"started_at": at, "at": at}))
        await board.leave(RunnerInfo.model_validate(fields | {"started_at": at, "at": at}))
        for _ in range(3):
            assert [r.id for r in await board.live()] == ["r1", "r2"]
        assert (await bus.js.stream_info(BUCKET_STREAM)).state.consumer_count == 0
    finally:
        await bus.close()


async def listed(client: ApiClient, pid: int) -> bool:
    """Whether `runner.list` lists the executor; False while the store is reconnecting
    (any other failure, such as an internal error, fails the test)."""
    try:
        runners = await client.call("runner.list", RunnerQuery(), RunnerList)
    except ApiFailure as failure:
        if failure.code != 503:
            raise
        return False
    return any(r.pid == pid for r in runners.runners)


async def test_after_a_nats_restart_heartbeats_runner_list_and_the_reaper_go_on(
    embedded_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    """A bind-only executor may not make the bucket: the store does (its reaper, or
    `runner.list`), and must not take the new, still empty bucket for the truth:
    a job older than a TTL on an executor that announces itself again is not reaped."""
    async with faults(embedded_nats.url, database_url, tmp_path, ack_wait=LAYOUT.ack_wait) as f:
        await ensure_consumer(f.bus.js, s.DISPATCH_STREAM, LAYOUT.company_consumer("acme", "default"))
        bound = f.executor(slots=1, JETJOBS_EXECUTOR_COMPANY="acme", JETJOBS_BIND_ONLY="true")
        own = f.executor(slots=1, JETJOBS_POOL="other")
        for runner in (bound, own):
            await f.ready(runner)
        client = ApiClient(f.bus.nc)
        [job_id] = await f.submit(1, ["sleep", "60"], timeout_result=120.0)
        await eventually(lambda: status_is(f, job_id, "started"), 20, "the job to start")
        await asyncio.sleep(LAYOUT.runner_ttl + 0.5)  # older than a TTL: only its runner's beats keep it

        await asyncio.to_thread(embedded_nats.restart)
        for pid in (bound.pid, own.pid):
            await eventually(functools.partial(listed, client, pid), 30, f"executor {pid} listed again")
        await assert_provisioned(f.bus)
        await asyncio.sleep(2 * LAYOUT.runner_ttl)
        assert bound.popen.poll() is None and own.popen.poll() is None, "no executor was restarted"
        assert [a["status"] for a in await f.attempts(job_id)] == ["started"], (
            "not reaped while its runner announced itself again in the new bucket"
        )

        await asyncio.to_thread(bound.kill_group)
        lost = await eventually(lambda: lost_attempt(f, job_id), 30, "the reaper to end the orphaned attempt")
        assert lost["reason"].startswith("runner ") and "stopped heartbeating" in lost["reason"]


async def status_is(f: Faults, job_id: str, status: str) -> bool:
    return await f.status(job_id) == status


async def lost_attempt(f: Faults, job_id: str) -> dict[str, str] | None:
    attempts = await f.attempts(job_id)
    if attempts and (attempts[0]["status"], attempts[0]["kind"]) == ("error", "lost"):
        return dict(attempts[0])
    return None


async def test_remaking_only_the_in_memory_bucket_is_said_at_info_anything_else_warns(nats_url: str) -> None:
    """Every NATS restart loses the runners bucket: each service that makes it again
    says so, but only at info; a stream found gone is still a warning."""
    bus = await Bus.open(nats_url, "runners-remade", LAYOUT)
    try:
        with capture_logs() as logs:
            await lose_bucket(bus)
            assert await bus.healer.restore("test: bucket lost")
            await asyncio.sleep(1.1)  # the healer checks at most once a second
            await bus.js.delete_stream(s.DEAD_STREAM)
            assert await bus.healer.restore("test: stream lost")
        remade = [(e["log_level"], e["missing"]) for e in logs if e["event"] == "bus.remade"]
        assert remade == [("info", [BUCKET_STREAM]), ("warning", [s.DEAD_STREAM])], remade
    finally:
        await bus.close()
