"""A host whose clock is off says so: executors, leading schedulers and stores hold
their clock against the time the NATS server stored their heartbeat, lease or job
message at, warn with what the offset does there and how to fix it, and serve it
as a gauge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from bus import ApiClient, Bus, Layout, RunnerBoard
from bus.clock import Clock, ClockCheck
from bus.lease import Lease
from bus.tasks import stop_tasks
from bus.telemetry import Telemetry
from contracts.lifecycle import RunnerInfo
from contracts.messages import JobMessage
from executor.config import ExecutorConfig
from executor.service import ExecutorService
from scheduler.leader import Leadership, clock_effect
from scheduler.metrics import SchedulerMetrics
from store import StoreConfig, StoreService
from store.service import clock_effect as store_clock_effect
from tests.stack import Stack, eventually

pytestmark = pytest.mark.timeout(60)

LAYOUT = Layout(ack_wait=2.0)


def shifted(seconds: float) -> Clock:
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


def runner(at: datetime) -> RunnerInfo:
    fields = {"id": "r1", "host": "h", "pool": "default", "pid": 1, "slots": 1, "running": []}
    return RunnerInfo.model_validate(fields | {"started_at": at, "at": at})


async def measure(check: ClockCheck, board: RunnerBoard) -> float | None:
    before = check.clock()
    seq = await board.beat(runner(datetime.now(UTC)))
    return await check.stored(RunnerBoard.STREAM, seq, before, check.clock())


def skew_warnings(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == "clock.skewed"]


async def test_a_clock_ahead_is_measured_and_warned_once_until_it_is_right_again(nats_url: str) -> None:
    bus = await Bus.open(nats_url, "clock-test", LAYOUT)
    try:
        board = await RunnerBoard.open(bus.js, LAYOUT)
        reported: list[float] = []
        check = ClockCheck(
            bus.js, "executor", lambda offset: "jobs are refused", reported.append, shifted(90)
        )
        with capture_logs() as logs:
            offset = await measure(check, board)
            again = await measure(check, board)
        assert offset is not None and again is not None
        assert 89 < offset < 91 and 89 < again < 91, (offset, again)
        assert reported == [offset, again]
        [warning] = skew_warnings(logs)  # once, not at every measurement
        assert warning["log_level"] == "warning" and warning["service"] == "executor"
        assert "90.0 s ahead of the NATS server's: jobs are refused" in str(warning["problem"])
        assert "NTP" in str(warning["fix"])

        check.clock = shifted(0)
        with capture_logs() as logs:
            right = await measure(check, board)
        assert right is not None and abs(right) < 1
        assert [entry["event"] for entry in logs] == ["clock.synchronised"]
    finally:
        await bus.close()


async def test_a_clock_that_is_right_is_not_reported(nats_url: str) -> None:
    bus = await Bus.open(nats_url, "clock-right", LAYOUT)
    try:
        board = await RunnerBoard.open(bus.js, LAYOUT)
        check = ClockCheck(bus.js, "executor", lambda offset: "never said")
        with capture_logs() as logs:
            offset = await measure(check, board)
        assert offset is not None and abs(offset) < 1
        assert logs == []
    finally:
        await bus.close()


async def test_a_leading_scheduler_behind_the_server_says_its_slots_fire_late(nats_url: str) -> None:
    bus = await Bus.open(nats_url, "clock-lease", LAYOUT)
    try:
        metrics = SchedulerMetrics()
        check = ClockCheck(bus.js, "scheduler", clock_effect, metrics.clock_offset, shifted(-30))
        leadership = Leadership(await Lease.open(bus.js, "s1"), LAYOUT.lease_ttl, lambda: None, check)
        with capture_logs() as logs:
            await leadership.step()
        assert leadership.leading
        [warning] = skew_warnings(logs)
        assert "30.0 s behind the NATS server's: while it leads, every slot fires 30.0 s late" in str(
            warning["problem"]
        )
        offset = metrics.registry.get_sample_value("jetjobs_scheduler_clock_offset_seconds")
        assert offset is not None and -31 < offset < -29
        await leadership.release()
    finally:
        await bus.close()


async def test_an_executor_serves_its_clock_offset(nats_url: str) -> None:
    telemetry = Telemetry()
    service = ExecutorService(ExecutorConfig(nats_url=nats_url, runner_id="clocked"), LAYOUT, telemetry)
    await service.start()
    try:

        async def offset() -> float | None:
            value = telemetry.registry.get_sample_value(
                "jetjobs_executor_clock_offset_seconds", {"pool": "default"}
            )
            return None if value is None else value + 1000  # truthy however small the offset

        measured = await eventually(offset, timeout=10, what="the executor's clock offset") - 1000
        assert abs(measured) < 1
    finally:
        await service.stop()


async def test_a_store_behind_measures_its_clock_from_a_job_it_dispatches(nats_url: str) -> None:
    """The store stamps the jobs it dispatches (run now, retries, backfills, flow
    nodes) with its clock: behind, they look older to executors than they are."""
    bus = await Bus.open(nats_url, "clock-dispatch", LAYOUT)
    reported: list[float] = []
    check = ClockCheck(bus.js, "store", store_clock_effect, reported.append, shifted(-120))
    bus.publisher.clock = check
    measuring = asyncio.create_task(check.follow(5.0))
    try:
        now = datetime.now(UTC)
        job = JobMessage(
            job_id="clocked",
            company="acme",
            argv=["true"],
            scheduled_at=now,
            dispatched_at=now,
            timeout=60,
            timeout_ack=30,
            timeout_result=10,
        )
        with capture_logs() as logs:
            await bus.publisher.dispatch([job])

            async def measured() -> bool:
                return bool(reported)

            await eventually(measured, 10, "the store's clock to be measured")
        assert -121 < reported[0] < -119, reported
        [warning] = skew_warnings(logs)
        assert warning["service"] == "store"
        assert "120.0 s behind the NATS server's" in str(warning["problem"])
        assert "refuse as late (`undelivered`) those whose delivery timeout is under 120 s" in str(
            warning["problem"]
        )
    finally:
        await stop_tasks([measuring])
        await bus.close()


async def test_a_store_serves_its_clock_offset_once_it_dispatched_a_job(
    nats_url: str, database_url: str
) -> None:
    telemetry = Telemetry()
    store = StoreService(StoreConfig(nats_url=nats_url, database_url=database_url), LAYOUT, telemetry)
    await store.start()
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        stack = Stack(nats_url, database_url, ApiClient(bus.nc), bus, [store])
        await stack.company()
        app = await stack.app("-c true")
        template = await stack.template(name="now", app=str(app.app.id), company="acme")
        gauge = "jetjobs_store_clock_offset_seconds"
        assert telemetry.registry.get_sample_value(gauge) == 0, "nothing dispatched, nothing measured"
        await stack.run(template.id)

        async def offset() -> float | None:
            value = telemetry.registry.get_sample_value(gauge)
            return None if not value else value + 1000  # truthy however small the offset

        measured = await eventually(offset, timeout=10, what="the store's clock offset") - 1000
        assert abs(measured) < 1
    finally:
        await bus.nc.close()
        await store.stop()
