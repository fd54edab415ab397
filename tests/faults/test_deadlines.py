"""Deadlines for real: a job that runs too long, a job nobody takes, a job cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bus import ApiClient
from contracts import api
from contracts import subjects as s
from contracts.lifecycle import CancelReply, DeadLetterList, DeadLetterQuery, DeadLetterRef, Replayed
from contracts.models import Company
from tests.faults.harness import Faults, faults
from tests.processes import alive
from tests.stack import eventually

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def test_timeout_result_kills_the_group_retries_then_dead_letters(f: Faults, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    f.executor(slots=2)
    script = 'sleep 30 & echo $! >> "$PIDFILE"; echo $$ >> "$PIDFILE"; wait'
    [job_id] = await f.submit(
        1, ["sh", "-c", script], timeout_result=1.0, retries=1, env={"PIDFILE": str(pids)}
    )
    job = (await f.all_final([job_id], 40))[job_id]
    assert (job["status"], job["kind"], job["attempt"]) == ("error", "timeout", 2)
    attempts = await f.attempts(job_id)
    assert [(a["status"], a["kind"]) for a in attempts] == [("error", "timeout")] * 2
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 4 and not any(alive(p) for p in started), "every process of the job was killed"

    async def buried() -> list[Any] | None:
        rows = await f.rows("SELECT * FROM dead_letter WHERE job_id = $1", job_id)
        return rows or None

    [letter] = await eventually(buried, 15, "the dead letter")
    assert "no retry is left" in letter["reason"] and "timeout" in letter["reason"]
    assert job_id in letter["payload"] and letter["subject"] == s.dispatch_subject("acme", "default")

    client = ApiClient(f.bus.nc)
    await client.call("company.create", Company(code="acme", name="Acme"), Company)  # to filter by it
    listed = await client.call("dlq.list", DeadLetterQuery(company="acme"), DeadLetterList)
    assert [d.job_id for d in listed.dead_letters] == [job_id]
    replayed = await client.call("dlq.replay", DeadLetterRef(id=listed.dead_letters[0].id), Replayed)
    assert replayed.attempt == 3

    async def replay_ran() -> bool:
        rows = await f.attempts(job_id)
        return len(rows) == 4 and rows[-1]["status"] == "error"

    await eventually(replay_ran, 40, "the replay with a fresh budget (attempts 3 and 4)")


async def test_no_executor_within_timeout_means_undelivered_and_never_run(f: Faults) -> None:
    [job_id] = await f.submit(1, ["true"], timeout=1.0)
    job = (await f.all_final([job_id], 20))[job_id]
    assert (job["status"], job["kind"], job["final"]) == ("error", "undelivered", True)
    stream = await f.bus.js.stream_info(s.DISPATCH_STREAM)
    assert stream.state.messages == 0, "the stale message left the stream"
    late = f.executor(slots=1)
    await f.ready(late)
    await asyncio.sleep(1.0)
    events = await f.rows("SELECT status FROM job_event WHERE job_id = $1", job_id)
    assert [e["status"] for e in events] == ["error"], "no executor ever acknowledged it"

    client = ApiClient(f.bus.nc)
    listed = await client.call("dlq.list", DeadLetterQuery(), DeadLetterList)
    [letter] = listed.dead_letters
    assert letter.job_id == job_id and letter.reason.startswith("never run: no executor took the job before")
    await client.call("dlq.replay", DeadLetterRef(id=letter.id), Replayed)
    replayed = (await f.all_final([job_id], 20))[job_id]
    assert (replayed["status"], replayed["attempt"]) == ("processed", 2), "the replay ran it"


async def test_cancel_stops_a_queued_job_and_kills_a_running_one(f: Faults) -> None:
    client = ApiClient(f.bus.nc)
    [queued] = await f.submit(1, ["true"])
    await eventually(lambda: _is(f, queued, "dispatched"), 10, "the job to be recorded")
    reply = await client.call("job.cancel", api.JobRef(id=queued), CancelReply)
    assert reply.state == "queued"
    runner = f.executor(slots=1)
    await f.ready(runner)
    job = (await f.all_final([queued], 20))[queued]
    assert (job["status"], job["kind"]) == ("error", "cancelled")

    [running] = await f.submit(1, ["sh", "-c", "sleep 30"])
    await eventually(lambda: _is(f, running, "started"), 20, "the job to start")
    reply = await client.call("job.cancel", api.JobRef(id=running), CancelReply)
    assert reply.state == "running"
    job = (await f.all_final([running], 20))[running]
    assert (job["status"], job["kind"], job["attempt"]) == ("error", "cancelled", 1)
    assert job["pid"] is not None and not alive(int(job["pid"]))


async def _is(f: Faults, job_id: str, status: str) -> bool:
    return await f.status(job_id) == status
