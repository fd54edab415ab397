"""`job.cancel` against real executors: a job cancelled as an executor takes it keeps
its true outcome, and a job no executor can take ends at once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from bus import ApiClient
from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.enums import ErrorKind, Status
from contracts.lifecycle import CancelReply
from contracts.messages import JobEvent, JobMessage
from contracts.records import JobRecord
from tests.faults.harness import Faults, faults
from tests.processes import alive
from tests.stack import Stack, eventually

pytestmark = pytest.mark.timeout(150)

UNSTARTED = "cancelled before it started"
PAIRS = 60
SLOW_TO_DIE = "-c 'trap \"sleep 0.5; exit 0\" TERM; echo $JETJOBS_JOB_ID >> {LEDGER}; sleep 0.3 & wait'"
"""Records that it ran, and takes a moment to die when it is killed."""


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def template(f: Faults, cmdparams: str, **fields: object) -> tuple[Stack, int]:
    """A template of company acme running `sh <cmdparams>`, driven through the API."""
    stack = Stack(f.nats_url, f.database_url, ApiClient(f.bus.nc), f.bus)
    await stack.company("acme")
    app = await stack.app(cmdparams)
    made = await stack.template(name="cancelled", app=app.app.uuid, company="acme", **fields)
    return stack, made.id


async def cancel(client: ApiClient, job_id: str) -> CancelReply:
    return await client.call("job.cancel", api.JobRef(id=job_id), CancelReply)


async def messages_on(f: Faults, pool: str) -> int:
    info = await f.bus.js.stream_info(s.DISPATCH_STREAM, subjects_filter=s.dispatch_subject("acme", pool))
    return sum((info.state.subjects or {}).values())


@asynccontextmanager
async def stalled(f: Faults, first: JobEvent | JobMessage) -> AsyncIterator[None]:
    """The store records nothing more of `first`'s kind meanwhile, as a store lagging
    behind its executors: it writes batches one after another, and `first`, first in
    line, is of a job whose lock this holds (the lock it takes to write a job)."""
    conn = await asyncpg.connect(f.database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock(74, hashtext($1))", first.job_id)
        if isinstance(first, JobEvent):
            await f.bus.publisher.event(first)
        else:
            await f.bus.publisher.dispatch([first])
        await eventually(lambda: waited_on(conn), 15, "the store to wait for the stalled job")
        yield
    finally:
        await conn.close()


async def waited_on(holder: asyncpg.Connection) -> bool:
    query = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
    return bool(await holder.fetchval(query, holder.get_server_pid()))


def other_event() -> JobEvent:
    return JobEvent(
        job_id=uuid.uuid4().hex, company="acme", attempt=1, status=Status.PROCESSED, at=datetime.now(UTC)
    )


def other_message() -> JobMessage:
    now = datetime.now(UTC)
    return JobMessage(
        job_id=uuid.uuid4().hex,
        company="acme",
        pool="stalled",
        argv=["true"],
        scheduled_at=now,
        dispatched_at=now,
        timeout=600.0,
        timeout_ack=30.0,
        timeout_result=60.0,
    )


async def run_and_cancel(stack: Stack, template_id: int) -> str:
    job_id = (await stack.run(template_id)).job_id
    try:
        await cancel(stack.client, job_id)
    except ApiFailure as failure:
        assert failure.code == 409, failure  # it ended before the cancel came
    return job_id


def unstarted(job: JobRecord) -> bool:
    return job.kind is ErrorKind.CANCELLED and (job.reason or "").startswith(UNSTARTED)


async def test_a_job_cancelled_as_an_executor_takes_it_is_never_recorded_unstarted_if_it_ran(
    f: Faults, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await f.ready(f.executor(slots=8))
    stack, template_id = await template(f, SLOW_TO_DIE, env={"LEDGER": str(ledger)})
    async with stalled(f, other_event()):  # every cancel finds its job `dispatched`
        ids = [await run_and_cancel(stack, template_id) for _ in range(PAIRS)]
    await f.all_final(ids, 90)
    ran = set(ledger.read_text().split()) if ledger.exists() else set()
    jobs = {job_id: await stack.job(job_id) for job_id in ids}
    lies = [(j.id, j.status.value, j.reason) for j in jobs.values() if j.id in ran and unstarted(j)]
    assert not lies, f"{len(lies)} of {len(ran)} jobs that ran are recorded as never started: {lies[:3]}"
    for job in jobs.values():
        if job.id not in ran:
            assert job.kind is ErrorKind.CANCELLED, (job.id, job.status, job.reason)
        elif job.status is not Status.PROCESSED:
            assert (job.kind, (job.reason or "").split(":")[0]) == (
                ErrorKind.CANCELLED,
                "cancelled while running",
            )


async def test_a_job_no_executor_can_take_is_cancelled_at_once_and_its_message_removed(f: Faults) -> None:
    stack, template_id = await template(f, "-c true", pool="idle")
    async with stalled(f, other_message()):  # where its message is, the store learns only later
        job_id = (await stack.run(template_id)).job_id
        cancelling = asyncio.create_task(cancel(stack.client, job_id))
        await asyncio.sleep(0.5)
    reply = await cancelling
    assert reply.state == "queued"
    job = await stack.final_job(job_id)
    assert job.status is Status.ERROR and unstarted(job), job.reason
    assert await messages_on(f, "idle") == 0, "the cancel removed its message"


async def test_cancelling_a_running_job_kills_it(f: Faults) -> None:
    await f.ready(f.executor(slots=1))
    stack, template_id = await template(f, "-c 'sleep 30'")
    job_id = (await stack.run(template_id)).job_id
    await eventually(lambda: _is(f, job_id, "started"), 20, "the job to start")
    assert (await cancel(stack.client, job_id)).state == "running"
    job = await stack.final_job(job_id)
    assert (job.status, job.kind, job.attempt) == (Status.ERROR, ErrorKind.CANCELLED, 1)
    assert (job.reason or "").startswith("cancelled while running"), job.reason
    assert job.pid is not None and not alive(job.pid)


async def test_a_lost_job_with_no_executor_left_is_cancelled_at_once_and_never_runs_again(
    f: Faults, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    doomed = f.executor(slots=1)
    await f.ready(doomed)
    stack, template_id = await template(
        f, "-c 'echo $JETJOBS_JOB_ID >> {LEDGER}; sleep 30'", env={"LEDGER": str(ledger)}
    )
    job_id = (await stack.run(template_id)).job_id
    await eventually(lambda: _is(f, job_id, "started"), 20, "the job to start")
    doomed.kill_group()
    await eventually(lambda: _is(f, job_id, "error"), 20, "the reaper to find the job lost")
    assert (await cancel(stack.client, job_id)).state == "queued"
    job = await stack.final_job(job_id)
    assert (job.kind, job.attempt) == (ErrorKind.CANCELLED, 2) and unstarted(job), job.reason
    assert await messages_on(f, "default") == 0, "the cancel removed its message"
    await f.ready(f.executor(slots=1))
    assert ledger.read_text().split() == [job_id], "it ran once, before its executor was lost"


async def test_a_cancelled_job_whose_executor_died_ends_cancelled(f: Faults) -> None:
    doomed = f.executor(slots=1)
    await f.ready(doomed)
    stack, template_id = await template(f, "-c 'sleep 30'")
    job_id = (await stack.run(template_id)).job_id
    await eventually(lambda: _is(f, job_id, "started"), 20, "the job to start")
    doomed.signal(signal.SIGSTOP)
    assert (await cancel(stack.client, job_id)).state == "running"
    job = await stack.final_job(job_id, timeout=30)
    assert (job.status, job.kind, job.attempt) == (Status.ERROR, ErrorKind.CANCELLED, 1), job.reason
    assert "stopped heartbeating while the job was started" in (job.reason or ""), job.reason
    doomed.kill_group()


async def _is(f: Faults, job_id: str, status: str) -> bool:
    return await f.status(job_id) == status


async def test_a_cancelled_job_an_executor_froze_on_ends_cancelled_at_its_deadline(f: Faults) -> None:
    frozen, job_id = await f.frozen_holding(["true"], timeout=4.0)
    await eventually(lambda: _is(f, job_id, "dispatched"), 10, "the job to be recorded")
    assert (await cancel(ApiClient(f.bus.nc), job_id)).state == "taken", "an executor has it"
    frozen.kill_group()
    job = (await f.all_final([job_id], 30))[job_id]
    assert (job["status"], job["kind"]) == ("error", "cancelled"), job["reason"]
    assert job["reason"].startswith(UNSTARTED) and "no executor took it before" in job["reason"]
