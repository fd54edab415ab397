"""A job the store knows only from its events (an executor's `acknowledged` and
`started`, with no job message ever dispatched) has nothing that could redeliver or
retry it: it ends for good once its runner is gone, or when cancelled, instead of
staying unfinished for ever."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from bus import Layout
from contracts import api
from contracts.api import ApiFailure
from contracts.enums import ErrorKind, Status
from contracts.lifecycle import CancelReply, RunnerList, RunnerQuery
from contracts.messages import JobEvent
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(60)

LAYOUT = Layout(ack_wait=2.0)
"""A runner TTL, and so the reaper's wait before it rules, of 2 s."""

JOB = "ghost-job-1"
NO_MESSAGE = "no job message of it was ever recorded (the store has only seen events of it)"


async def _report(stack: Stack, runner: str, *statuses: Status, **error: Any) -> None:
    """Publish, as an executor of acme could, events of attempt 1 of `JOB`."""
    for status in statuses:
        fields = error if status is Status.ERROR else {}
        event = JobEvent(
            job_id=JOB,
            company="acme",
            attempt=1,
            status=status,
            at=datetime.now(UTC),
            runner=runner,
            **fields,
        )
        await stack.bus.publisher.event(event)


async def _rows(database_url: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, JOB))
    finally:
        await conn.close()


async def _attempts(database_url: str) -> list[tuple[str, str | None]]:
    found = await _rows(
        database_url, "SELECT status, kind FROM job_attempt WHERE job_id = $1 ORDER BY attempt"
    )
    return [(r["status"], r["kind"]) for r in found]


async def test_a_job_known_only_from_events_ends_lost_once_its_runner_is_gone(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False, layout=LAYOUT) as stack:
        await stack.company("acme")
        await _report(stack, "fake", Status.ACKNOWLEDGED, Status.STARTED)

        job = await stack.final_job(JOB, 20)
        assert (job.status, job.kind, job.attempt, job.company) == (Status.ERROR, ErrorKind.LOST, 1, "acme")
        assert job.reason is not None and job.reason.startswith(
            "runner fake stopped heartbeating while the job was started"
        )
        assert NO_MESSAGE in job.reason and "nothing can run it again" in job.reason, job.reason
        assert await _attempts(database_url) == [("error", "lost")]
        assert await _rows(database_url, "SELECT 1 FROM dead_letter WHERE job_id = $1") == [], (
            "no message to file, nor to replay"
        )


async def test_a_job_known_only_from_events_waiting_for_a_redelivery_ends_undelivered(
    nats_url: str, database_url: str
) -> None:
    """As an earlier reaper left one: lost and redelivered, with no message to redeliver."""
    async with running_stack(nats_url, database_url, scheduler=False, layout=LAYOUT) as stack:
        await stack.company("acme")
        lost = {
            "kind": ErrorKind.LOST,
            "reason": "runner fake stopped heartbeating while the job was started: redelivered",
            "final": False,
            "retry_in": 0.0,
        }
        await _report(stack, "fake", Status.ACKNOWLEDGED, Status.STARTED, Status.ERROR, **lost)

        job = await stack.final_job(JOB, 20)
        assert (job.status, job.kind, job.attempt) == (Status.ERROR, ErrorKind.UNDELIVERED, 2)
        assert job.reason == f"attempt 2 cannot come: {NO_MESSAGE}, so nothing can run it again"
        assert await _attempts(database_url) == [("error", "lost"), ("error", "undelivered")]


async def test_a_job_known_only_from_events_can_be_cancelled_once_no_message_can_come(
    nats_url: str, database_url: str
) -> None:
    """Held by a live runner, the reaper leaves it to that runner; a cancel ends it once
    its dispatch can no longer be on its way, instead of asking to try again for ever."""
    async with running_stack(nats_url, database_url, scheduler=False, layout=LAYOUT) as stack:
        await stack.company("acme")
        live = await eventually(
            lambda: stack.client.call("runner.list", RunnerQuery(), RunnerList), what="the executor's runner"
        )
        runner = live.runners[0].id
        await _report(stack, runner, Status.ACKNOWLEDGED, Status.STARTED)
        await eventually(lambda: _rows(database_url, "SELECT 1 FROM job WHERE id = $1"), what="the job's row")

        with pytest.raises(ApiFailure, match="not recorded as dispatched yet") as early:
            await stack.client.call("job.cancel", api.JobRef(id=JOB), CancelReply)
        assert early.value.code == 409 and "try again in a moment" in str(early.value)

        async def cancelled() -> CancelReply | None:
            try:
                return await stack.client.call("job.cancel", api.JobRef(id=JOB), CancelReply)
            except ApiFailure as failure:
                assert failure.code == 409 and "not recorded as dispatched yet" in str(failure), failure
                return None

        reply = await eventually(cancelled, 15, "the cancel to end the job")
        assert reply.state == "queued"
        job = await stack.final_job(JOB, 10)
        assert (job.status, job.kind, job.attempt) == (Status.ERROR, ErrorKind.CANCELLED, 1)
        assert job.reason is not None and NO_MESSAGE in job.reason, job.reason
        assert await _attempts(database_url) == [("error", "cancelled")]
