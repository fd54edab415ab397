"""/metrics and /readyz while a server hangs (SIGSTOP): every answer comes within the
check timeout, nothing piles up, and what could not be measured is not served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, Layout
from bus.boards import GOODBYE_WAIT, RunnerBoard
from bus.lease import RELEASE_WAIT, Lease
from bus.telemetry import CHECK_TIMEOUT, Telemetry
from contracts.lifecycle import RunnerInfo
from jetjobs.embedded import NatsServer, PostgresServer
from jetjobs.observe.http import MetricsServer
from scheduler import SchedulerConfig, SchedulerService
from scheduler.metrics import SchedulerMetrics
from store import StoreConfig, StoreService
from tests.observe import Scrape, http_get, scrape
from tests.stack import eventually

pytestmark = pytest.mark.timeout(150)

PROMPT = CHECK_TIMEOUT + 1.5
"""An answer slower than this waited on the hung server."""


def family(pid: int) -> list[int]:
    """`pid` and its children (Postgres: the postmaster and its backends, each in a
    session of its own)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return [pid, *children]


@contextlib.contextmanager
def hung(pid: int) -> Iterator[None]:
    """The server stopped (SIGSTOP), with every process it forked: it takes connections
    and answers nothing."""
    stopped = family(pid)
    for each in stopped:
        os.kill(each, signal.SIGSTOP)
    try:
        yield
    finally:
        for each in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGCONT)


@dataclass
class Observed:
    url: str
    telemetry: Telemetry
    store: StoreService


@contextlib.asynccontextmanager
async def store_and_scheduler(nats_url: str, database_url: str) -> AsyncIterator[Observed]:
    """A store and a scheduler sharing one metrics endpoint, as under `jetjobs up`."""
    telemetry = Telemetry()
    server = MetricsServer(telemetry, "127.0.0.1", 0)
    await server.start()
    store = StoreService(StoreConfig(nats_url=nats_url, database_url=database_url), Layout(), telemetry)
    scheduler = SchedulerService(
        SchedulerConfig(nats_url=nats_url), Layout(), SchedulerMetrics(telemetry.registry)
    )
    telemetry.watch_bus("scheduler", lambda: scheduler.bus)
    started: list[Any] = []
    try:
        for service in (store, scheduler):
            await service.start()
            started.append(service)
        yield Observed(server.url, telemetry, store)
    finally:
        for service in reversed(started):
            await service.stop()
        await server.stop()


async def timed(coroutine: Any) -> tuple[Any, float]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await coroutine
    return result, loop.time() - began


def has(scraped: Scrape, name: str) -> bool:
    return any(n == name for n, _ in scraped.samples)


async def test_a_hung_postgres_holds_up_no_scrape_and_no_other_service(
    nats_url: str, embedded_postgres: PostgresServer
) -> None:
    embedded_postgres.create_database("hung")
    async with store_and_scheduler(nats_url, embedded_postgres.dsn("hung")) as observed:
        calls = 0

        async def asks_postgres() -> None:
            nonlocal calls
            calls += 1
            await observed.store._pool.fetchval("SELECT 1")

        observed.telemetry.before_scrape(asks_postgres)
        before = await scrape(observed.url)
        assert before.value("jetjobs_store_flow_outcomes", state="waiting") == 0
        assert has(before, "jetjobs_store_flow_outcomes")

        asked = calls
        with hung(embedded_postgres.pid):
            scraped, took = await timed(scrape(observed.url))
            assert took < PROMPT, f"the first scrape waited {took:.1f} s on Postgres"
            assert not has(scraped, "jetjobs_store_flow_outcomes"), "a value Postgres could not give"
            assert has(scraped, "jetjobs_store_pending_messages"), "JetStream still answers"
            assert has(scraped, "jetjobs_scheduler_templates"), "the scheduler's metrics stay"
            assert scraped.value("jetjobs_nats_connected", service="store") == 1
            assert scraped.value("jetjobs_nats_connected", service="scheduler") == 1

            (status, body), took = await timed(http_get(f"{observed.url}/readyz"))
            assert took < PROMPT, f"/readyz waited {took:.1f} s on Postgres"
            assert status == 503
            assert json.loads(body) == {"scheduler.nats": True, "store.nats": True, "store.postgres": False}

            for _ in range(3):
                again, took = await timed(scrape(observed.url))
                assert took < PROMPT
                assert not has(again, "jetjobs_store_flow_outcomes")
                assert (await timed(http_get(f"{observed.url}/readyz")))[1] < PROMPT
            assert calls == asked + 1, "a refresh still running is not started again"

        async def back() -> bool:  # the refresh that hung may answer first: a new one must follow
            scraped = await scrape(observed.url)
            ready = (await http_get(f"{observed.url}/readyz"))[0] == 200
            return ready and has(scraped, "jetjobs_store_flow_outcomes") and calls > asked + 1

        await eventually(back, timeout=30, what="the store's metrics, readiness and a new refresh")


async def test_a_hung_nats_is_unready_at_once_and_dropped_within_30_s(
    embedded_nats: NatsServer, database_url: str
) -> None:
    async with store_and_scheduler(embedded_nats.url, database_url) as observed:
        assert (await http_get(f"{observed.url}/readyz"))[0] == 200
        with hung(embedded_nats.pid):
            (status, body), took = await timed(http_get(f"{observed.url}/readyz"))
            assert took < PROMPT, f"/readyz waited {took:.1f} s on NATS"
            assert (status, json.loads(body)) == (
                503,
                {"scheduler.nats": False, "store.nats": False, "store.postgres": True},
            )
            scraped, took = await timed(scrape(observed.url))
            assert took < PROMPT
            assert scraped.value("jetjobs_nats_connected", service="store") == 0
            assert scraped.value("jetjobs_nats_connected", service="scheduler") == 0
            assert not has(scraped, "jetjobs_store_pending_messages"), "no stale lag"

            async def given_up() -> bool:
                scraped = await scrape(observed.url)
                return scraped.value("jetjobs_nats_disconnects_total", service="store") >= 1

            await eventually(given_up, timeout=40, what="the connection to give the hung server up")

        async def ready_again() -> bool:
            return (await http_get(f"{observed.url}/readyz"))[0] == 200

        await eventually(ready_again, timeout=30, what="/readyz once NATS answers")
        scraped = await scrape(observed.url)
        assert scraped.value("jetjobs_nats_reconnects_total", service="store") >= 1
        assert scraped.value("jetjobs_nats_connected", service="store") == 1


async def test_a_short_nats_hang_leaves_the_connection_working(
    embedded_nats: NatsServer, database_url: str
) -> None:
    """Probes left waiting through a hang shorter than the ping timeout get their answer
    late; the connection must go on reading (nats-py's reader dies on an answer to a
    ping its caller gave up)."""
    async with store_and_scheduler(embedded_nats.url, database_url) as observed:
        with hung(embedded_nats.pid):
            await eventually(
                lambda: _status(observed.url, 503), timeout=PROMPT, what="/readyz to see NATS hang"
            )
            await asyncio.sleep(4)
        await eventually(lambda: _status(observed.url, 200), timeout=5, what="/readyz once NATS answers")
        for _ in range(3):
            scraped = await scrape(observed.url)
            assert has(scraped, "jetjobs_store_pending_messages"), "the store's requests are answered"
            assert scraped.value("jetjobs_nats_connected", service="store") == 1
            await asyncio.sleep(1)
        assert scraped.value("jetjobs_nats_disconnects_total", service="store") == 0


async def _status(url: str, wanted: int) -> bool:
    return (await http_get(f"{url}/readyz"))[0] == wanted


async def test_a_stopping_scheduler_gives_its_lease_up_without_waiting_on_a_hung_nats(
    embedded_nats: NatsServer,
) -> None:
    """With NATS hung the lease lapses by its TTL all the same; the stop must not wait on it."""
    bus = await Bus.open(embedded_nats.url, "jetjobs-test", Layout(), store=True)
    try:
        lease = await Lease.open(bus.js, "stopping")
        assert await lease.take()
        loop = asyncio.get_running_loop()
        with hung(embedded_nats.pid):
            began = loop.time()
            await lease.release()
            took = loop.time() - began
        assert took < RELEASE_WAIT + 1, f"release waited {took:.1f} s on a hung NATS"
    finally:
        await bus.close()


async def test_a_stopping_executor_leaves_the_runners_board_without_waiting_on_a_hung_nats(
    embedded_nats: NatsServer,
) -> None:
    """Its key lapses by the bucket's TTL all the same; the stop must not wait on it."""
    bus = await Bus.open(embedded_nats.url, "jetjobs-test", Layout(), store=True)
    try:
        board = await RunnerBoard.open(bus.js, Layout())
        now = datetime.now(UTC)
        info = RunnerInfo(id="stopping", host="here", pool="default", pid=1, slots=1, started_at=now, at=now)
        await board.beat(info)
        loop = asyncio.get_running_loop()
        with hung(embedded_nats.pid):
            began = loop.time()
            await board.leave(info)
            took = loop.time() - began
        assert took < GOODBYE_WAIT + 1, f"leaving waited {took:.1f} s on a hung NATS"
    finally:
        await bus.close()
