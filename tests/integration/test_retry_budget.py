"""A job's retries count its own failures: attempts handed back by an executor that
stopped (or lost with one that died, or let go before they started) spend none of
them. Counted as runs, a rolling restart left a failing job fewer retries than it
was given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bus import Bus, Layout
from contracts import subjects as s
from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from executor import ExecutorConfig, ExecutorService
from executor.budget import may_spare, spared
from tests.integration.test_executor import Events, sh

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    opened = await Bus.open(nats_url, "retry-budget-test", Layout())
    yield opened
    await opened.close()


@pytest.fixture
async def events(bus: Bus) -> AsyncIterator[Events]:
    seen = Events()
    sub = await bus.nc.subscribe(s.EVENTS_ALL, cb=seen.receive)
    yield seen
    await sub.unsubscribe()


async def executor(nats_url: str, runner: str, **fields: float) -> ExecutorService:
    service = ExecutorService(ExecutorConfig(nats_url=nats_url, runner_id=runner, **fields), Layout())
    await service.start()
    return service


async def test_an_attempt_handed_back_by_a_stopping_executor_spends_no_retry(
    nats_url: str, bus: Bus, events: Events
) -> None:
    first = await executor(nats_url, "runner-1", drain_timeout=0.5, grace=0.5)
    message = sh('if [ "$JETJOBS_ATTEMPT" = 1 ]; then exec sleep 60; fi; echo failing; exit 1', retries=2)
    await bus.publisher.dispatch([message])
    await events.until(lambda: (1, Status.STARTED) in events.statuses(message.job_id))
    await first.stop()  # attempt 1 is handed back: not a failure of the job's
    second = await executor(nats_url, "runner-2")
    try:
        final = await events.final(message.job_id, timeout=60)
    finally:
        await second.stop()
    ended = [(e.attempt, e.kind, e.final) for e in events.of(message.job_id) if e.status is Status.ERROR]
    assert ended == [
        (1, ErrorKind.LOST, False),
        (2, ErrorKind.EXIT, False),
        (3, ErrorKind.EXIT, False),  # the second retry it was given, though its third delivery
        (4, ErrorKind.EXIT, True),
    ], ended
    assert final.attempt == 4 and final.retry_in is None


def event(attempt: int, status: Status, kind: ErrorKind | None = None) -> JobEvent:
    at = datetime.now(UTC)
    return JobEvent(job_id="j", company="acme", attempt=attempt, status=status, kind=kind, at=at, runner="r")


def test_only_failures_of_the_job_spend_its_retries() -> None:
    message = sh("exit 1", retries=2, attempt=3)  # a replayed dead letter's fresh budget starts at 3
    story = [
        event(1, Status.ERROR, ErrorKind.EXIT),  # before the replay: not this message's
        event(3, Status.ACKNOWLEDGED),
        event(3, Status.ERROR, ErrorKind.LOST),  # handed back
        event(4, Status.STARTED),
        event(4, Status.ERROR, ErrorKind.TIMEOUT),
        # attempt 5 let go before it was acknowledged: no event
        event(6, Status.ERROR, ErrorKind.EXIT),
    ]
    assert not may_spare(message, 4)  # within the budget by count: no lookup
    assert may_spare(message, 7)
    assert spared(story, message, 7) == 2  # attempts 3 and 5
    assert not may_spare(sh("exit 1", retries=0), 9)  # no retries: nothing to spare
