"""Projecting dispatch messages, lifecycle events and dead letters into Postgres,
through real NATS JetStream and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from nats.aio.msg import Msg

from bus import Bus, Delivery, Layout, encode
from contracts import api
from contracts import subjects as s
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent, JobMessage
from contracts.records import JobRecord
from jetjobs.embedded import PostgresServer
from store import StoreConfig, StoreService, migrate
from store.queries import Queries
from store.writers import project_dispatches, write_dead_letters, write_dispatches, write_events
from tests.integration.test_store import Harness, eventually, harness, job_when

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(job_id: str, **fields: Any) -> JobMessage:
    values = {
        "job_id": job_id,
        "company": "acme",
        "argv": ["echo", "hi"],
        "scheduled_at": T0,
        "dispatched_at": T0,
        "timeout": 60,
        "timeout_ack": 5,
        "timeout_result": 60,
        **fields,
    }
    return JobMessage.model_validate(values)


def event(job_id: str, status: Status, attempt: int = 1, **fields: Any) -> JobEvent:
    values = {"job_id": job_id, "company": "acme", "attempt": attempt, "status": status, "at": T0, **fields}
    return JobEvent.model_validate(values)


def new_id() -> str:
    return f"job-{secrets.token_hex(4)}"


async def publish(h: Harness, *events: JobEvent) -> None:
    for e in events:
        await h.bus.publisher.event(e)


async def drained(h: Harness, stream: str = s.EVENTS_STREAM, durable: str = s.STORE_EVENTS_CONSUMER) -> None:
    """Wait until the store has settled everything on one of its consumers: its ack floor
    has reached the stream's last message (right after a publish, the consumer's own
    pending count may not include the new message yet)."""

    async def check() -> bool:
        last = (await h.bus.js.stream_info(stream)).state.last_seq
        info = await h.bus.js.consumer_info(stream, durable)
        return bool(info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= last)

    await eventually(check)


ORPHANS = """
SELECT (SELECT count(*) FROM job_attempt c WHERE NOT EXISTS (SELECT 1 FROM job WHERE id = c.job_id))
    + (SELECT count(*) FROM job_event c WHERE NOT EXISTS (SELECT 1 FROM job WHERE id = c.job_id))
    + (SELECT count(*) FROM job_dispatch c WHERE NOT EXISTS (SELECT 1 FROM job WHERE id = c.job_id))
"""
"""Attempts, events and deadlines whose job is missing: the statements that write
them write their job too (there are no foreign keys to say so)."""


async def get(h: Harness, job_id: str) -> JobRecord:
    return await h.call("job.get", api.JobRef(id=job_id), JobRecord)


@pytest.fixture
async def h(nats_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(nats_url, database_url) as running:
        yield running


async def test_dispatch_is_recorded(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch(
        [message(job_id, pool="fast", template_id=7, app_id=3, launched_by="cron")]
    )
    job = await job_when(h, job_id, lambda j: True)
    assert job.status is Status.DISPATCHED and job.attempt == 1 and not job.final
    assert (job.company, job.pool, job.template_id, job.app_id) == ("acme", "fast", 7, 3)
    assert job.argv == ["echo", "hi"] and job.launched_by == "cron"
    assert job.scheduled_at == T0 and job.dispatched_at == T0
    assert [(a.attempt, a.status) for a in job.attempts] == [(1, Status.DISPATCHED)]


async def test_lifecycle_to_processed(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id)])
    begin, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    await publish(
        h,
        event(job_id, Status.ACKNOWLEDGED, runner="runner-1"),
        event(job_id, Status.STARTED, pid=4242, begin=begin),
        event(job_id, Status.PROCESSED, exit_code=0, stdout="hello\n", stderr="", end=end, final=True),
    )
    job = await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    assert job.final and job.exit_code == 0 and job.stdout == "hello\n" and job.stderr == ""
    assert (job.runner, job.pid, job.begin, job.end) == ("runner-1", 4242, begin, end)
    assert job.argv == ["echo", "hi"], "the dispatch's columns survive the events"
    [attempt] = job.attempts
    assert (attempt.status, attempt.exit_code, attempt.runner, attempt.pid) == (
        Status.PROCESSED,
        0,
        "runner-1",
        4242,
    )
    assert [e.status for e in await h.db.job_events(job_id)] == [
        Status.ACKNOWLEDGED,
        Status.STARTED,
        Status.PROCESSED,
    ]


async def test_events_out_of_order_never_move_backwards(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id)])
    await publish(h, event(job_id, Status.PROCESSED, exit_code=0, stdout="done", final=True))
    await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    await publish(
        h,
        event(job_id, Status.STARTED, pid=1, stdout="partial"),
        event(job_id, Status.ACKNOWLEDGED, runner="late"),
        event(job_id, Status.ERROR, kind=ErrorKind.LOST, reason="too late"),
    )
    await drained(h)
    job = await get(h, job_id)
    assert (job.status, job.stdout, job.kind, job.reason) == (Status.PROCESSED, "done", None, None)
    assert (job.runner, job.pid) == ("late", 1), "late early events fill in where the attempt ran"
    assert len(await h.db.job_events(job_id)) == 4, "every event is recorded, even the ignored ones"


async def test_duplicate_event_is_recorded_once(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id)])
    started = event(job_id, Status.STARTED, pid=7)
    for copy in ("first", "second", "third"):  # distinct msg ids: JetStream keeps all three
        await h.bus.publisher.publish(s.events_subject("acme", job_id), encode(started), f"{job_id}-{copy}")
    await drained(h)
    assert [(e.status, e.stale) for e in await h.db.job_events(job_id)] == [(Status.STARTED, False)]
    assert (await get(h, job_id)).status is Status.STARTED


async def test_stale_attempt_is_flagged_and_ignored(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id, retries=1)])
    await publish(h, event(job_id, Status.STARTED, runner="r1", pid=1))
    await job_when(h, job_id, lambda j: j.status is Status.STARTED)
    await publish(
        h,
        event(job_id, Status.ACKNOWLEDGED, attempt=2, runner="r2"),
        event(job_id, Status.PROCESSED, attempt=1, exit_code=0, final=True),
        event(job_id, Status.ERROR, attempt=2, kind=ErrorKind.EXIT, exit_code=3, final=True),
    )
    await drained(h)
    job = await get(h, job_id)
    assert (job.attempt, job.status, job.kind, job.exit_code, job.runner, job.final) == (
        2,
        Status.ERROR,
        ErrorKind.EXIT,
        3,
        "r2",
        True,
    )
    first, second = job.attempts
    assert (first.status, first.kind, first.reason) == (
        Status.ERROR,
        ErrorKind.LOST,
        "superseded by attempt 2",
    )
    assert (second.status, second.exit_code) == (Status.ERROR, 3)
    events = [(e.attempt, e.status, e.stale) for e in await h.db.job_events(job_id)]
    assert events == [
        (1, Status.STARTED, False),
        (2, Status.ACKNOWLEDGED, False),
        (1, Status.PROCESSED, True),
        (2, Status.ERROR, False),
    ]


async def test_an_older_attempt_s_error_that_comes_late_is_its_attempt_s_outcome(h: Harness) -> None:
    """Two stores share the events: one held attempt 1's error in a batch it committed
    after the other had recorded attempt 2. Attempt 1 was kept as `lost`, without its
    exit code or output, and counted as a loss of the job's."""
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id, retries=1)])
    await publish(h, event(job_id, Status.STARTED, runner="r1", pid=111, begin=T0))
    await job_when(h, job_id, lambda j: j.status is Status.STARTED)
    await publish(
        h,
        event(job_id, Status.ACKNOWLEDGED, attempt=2, runner="r2"),
        event(
            job_id,
            Status.ERROR,
            attempt=1,
            runner="r1",
            kind=ErrorKind.EXIT,
            exit_code=3,
            stdout="boom",
            reason="exited with code 3",
            end=T0 + timedelta(seconds=1),
            retry_in=1.0,
        ),
        event(job_id, Status.PROCESSED, attempt=2, exit_code=0, final=True),
    )
    await drained(h)
    job = await get(h, job_id)
    assert (job.attempt, job.status, job.final) == (2, Status.PROCESSED, True)
    first, second = job.attempts
    assert (first.status, first.kind, first.exit_code, first.reason) == (
        Status.ERROR,
        ErrorKind.EXIT,
        3,
        "exited with code 3",
    )
    assert (first.runner, first.pid, first.begin) == ("r1", 111, T0), "what it had is kept"
    assert second.status is Status.PROCESSED
    events = [(e.attempt, e.status, e.stale) for e in await h.db.job_events(job_id)]
    assert (1, Status.ERROR, True) in events, "the job's outcome stays attempt 2's"


async def test_event_before_dispatch(h: Harness) -> None:
    job_id = new_id()
    await publish(h, event(job_id, Status.ACKNOWLEDGED), event(job_id, Status.PROCESSED, exit_code=0))
    early = await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    assert early.argv == [] and early.dispatched_at is None and early.final
    await h.bus.publisher.dispatch([message(job_id, template_id=5, launched_by="scheduler")])
    await drained(h, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
    job = await get(h, job_id)
    assert job.status is Status.PROCESSED and job.exit_code == 0
    assert (job.argv, job.template_id, job.dispatched_at, job.launched_by) == (
        ["echo", "hi"],
        5,
        T0,
        "scheduler",
    )
    assert [(a.attempt, a.status) for a in job.attempts] == [(1, Status.PROCESSED)]


async def test_redispatch_of_a_known_job_changes_nothing(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id)])
    await publish(h, event(job_id, Status.PROCESSED, exit_code=0))
    await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    again = message(job_id, argv=["other"], pool="elsewhere")
    await h.bus.publisher.publish(s.dispatch_subject("acme", "elsewhere"), encode(again), f"{job_id}-again")
    await drained(h, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
    job = await get(h, job_id)
    assert (job.status, job.argv, job.pool) == (Status.PROCESSED, ["echo", "hi"], "default")


async def test_invalid_messages_do_not_stop_the_projection(h: Harness) -> None:
    job_id = new_id()
    subject = s.events_subject("acme", job_id)
    await h.bus.publisher.publish(subject, b"\xff not json", "bad-1")
    await h.bus.publisher.publish(subject, b'{"job_id": "x"}', "bad-2")
    await publish(h, event(job_id, Status.STARTED))
    await job_when(h, job_id, lambda j: j.status is Status.STARTED)
    await drained(h)
    await h.bus.publisher.dispatch([message(job_id, attempt=1)])
    await h.bus.publisher.publish(s.dispatch_subject("acme", "default"), b"[]", "bad-3")
    await drained(h, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
    assert (await get(h, job_id)).argv == ["echo", "hi"]


async def test_an_event_out_of_range_is_terminated_and_the_rest_kept(h: Harness) -> None:
    good, bad = new_id(), new_id()
    started = event(bad, Status.STARTED)
    out_of_range = JobEvent.model_construct(**{**dict(started), "pid": 2**70})  # as another client may send
    await publish(h, event(good, Status.STARTED), out_of_range, event(good, Status.PROCESSED, exit_code=0))
    await drained(h)
    assert (await get(h, good)).status is Status.PROCESSED
    assert await h.db.job_by_id(bad) is None


async def test_nul_characters_are_stored_replaced(h: Harness) -> None:
    job_id = new_id()
    await publish(h, event(job_id, Status.PROCESSED, stdout="a\x00b", reason="r\x00"))
    job = await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    assert job.stdout == "a\ufffdb" and job.reason == "r\ufffd"


async def test_instants_are_stored_to_the_microsecond(h: Harness) -> None:
    job_id = new_id()
    # The first and last instants a message may carry (contracts.base.EARLIEST, LATEST).
    scheduled = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    dispatched = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    begin = datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    end = datetime(2026, 3, 1, 12, 0, 0, 123457, tzinfo=timezone(timedelta(hours=14)))
    await publish(h, event(job_id, Status.PROCESSED, exit_code=0, at=end, begin=begin, end=end))
    await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    timeout = 7.0000015
    await h.bus.publisher.dispatch(
        [message(job_id, scheduled_at=scheduled, dispatched_at=dispatched, timeout=timeout)]
    )
    job = await job_when(h, job_id, lambda j: j.dispatched_at is not None)
    assert (job.scheduled_at, job.dispatched_at, job.begin, job.end) == (scheduled, dispatched, begin, end)
    await drained(h, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
    deadline = await h.conn.fetchval("SELECT deadline FROM job_dispatch WHERE job_id = $1", job_id)
    assert deadline == dispatched + timedelta(seconds=timeout)
    assert await h.conn.fetchval("SELECT at FROM job_event WHERE job_id = $1", job_id) == end


def delivery(message: JobMessage, sequence: int) -> Delivery[JobMessage]:
    reply = f"$JS.ACK.{s.DISPATCH_STREAM}.{s.STORE_DISPATCH_CONSUMER}.1.{sequence}.{sequence}.0.0"
    return Delivery(message, Msg(_client=None, reply=reply))  # type: ignore[arg-type]


async def test_a_batch_with_a_jobs_retry_opens_the_first_attempt_and_keeps_the_latest_deadline(
    database_url: str,
) -> None:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        job_id, stranger = new_id(), new_id()
        retried = message(job_id, attempt=2, dispatched_at=T0 + timedelta(seconds=30))
        async with conn.transaction():
            await project_dispatches(Queries(conn), [delivery(message(job_id), 7), delivery(retried, 8)])
            await Queries(conn).record_dispatches([], [(stranger, 1, 9, T0, 60.0)])
        job = await conn.fetchrow(
            "SELECT attempt, status::text, dispatched_at FROM job WHERE id = $1", job_id
        )
        assert tuple(job) == (1, "dispatched", T0), (
            "the first message of a job in a batch is the one recorded"
        )
        attempts = await conn.fetch("SELECT attempt FROM job_attempt WHERE job_id = $1", job_id)
        assert [r["attempt"] for r in attempts] == [1]
        found = await conn.fetch("SELECT job_id, attempt, stream_seq, deadline FROM job_dispatch")
        assert [tuple(r) for r in found] == [(job_id, 2, 8, T0 + timedelta(seconds=90))], (
            "the latest attempt's deadline, and none for a job the batch does not hold"
        )
    finally:
        await conn.close()


async def test_dead_letters_are_recorded_once(h: Harness) -> None:
    letter = DeadLetter(
        company="acme",
        job_id="j1",
        reason="no executor",
        subject="jetjobs.dispatch.acme.default",
        payload="{}",
        at=T0,
    )
    await h.bus.publisher.dead(letter, "dead-1")
    await drained(h, s.DEAD_STREAM, s.STORE_DEAD_CONSUMER)
    [(seq, stored)] = await h.db.dead_letters("acme", 10)
    assert stored == letter
    async with h.conn.transaction():
        await write_dead_letters(h.db, [(seq, letter)])
    assert len(await h.db.dead_letters(None, 10)) == 1


async def test_many_jobs_in_batches(h: Harness) -> None:
    ids = [new_id() for _ in range(150)]
    await h.bus.publisher.dispatch([message(i) for i in ids])
    acks = []
    for status in (Status.ACKNOWLEDGED, Status.STARTED, Status.PROCESSED):
        for job_id in ids:
            e = event(job_id, status, exit_code=0 if status is Status.PROCESSED else None)
            subject, msg_id = s.events_subject("acme", job_id), f"{job_id}.1.{status.value}"
            acks.append(await h.bus.js.publish_async(subject, encode(e), headers={"Nats-Msg-Id": msg_id}))
    await asyncio.gather(*acks)

    async def all_processed() -> bool:
        done = await h.call("job.list", api.JobQuery(status=Status.PROCESSED, limit=1000), api.JobList)
        return len(done.jobs) == len(ids)

    await eventually(all_processed, timeout=30)
    await drained(h, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
    assert await h.conn.fetchval("SELECT count(*) FROM job_event") == 3 * len(ids)
    assert await h.conn.fetchval("SELECT count(*) FROM job_attempt WHERE status = 'processed'") == len(ids)
    assert await h.conn.fetchval("SELECT count(*) FROM job_dispatch") == len(ids)
    assert await h.conn.fetchval(ORPHANS) == 0


async def test_postgres_outage_loses_and_doubles_nothing(
    nats_url: str, embedded_postgres: PostgresServer
) -> None:
    embedded_postgres.create_database("outage")
    url = embedded_postgres.dsn("outage")
    layout = Layout(ack_wait=2.0)  # shorter than the outage: only in-progress acks prevent redelivery
    store = StoreService(StoreConfig(nats_url=nats_url, database_url=url), layout)
    await store.start()
    bus = await Bus.open(nats_url, "outage-test", layout)
    try:
        before, during = new_id(), new_id()
        await bus.publisher.dispatch([message(before)])
        await bus.publisher.event(event(before, Status.STARTED))
        await asyncio.sleep(1)
        await asyncio.to_thread(embedded_postgres.stop)
        await bus.publisher.dispatch([message(during)])
        for status in (Status.ACKNOWLEDGED, Status.STARTED, Status.PROCESSED):
            await bus.publisher.event(event(during, status))
        await bus.publisher.event(event(before, Status.PROCESSED, exit_code=0))
        await asyncio.sleep(5)
        await asyncio.to_thread(embedded_postgres.restart)
        conn = await asyncpg.connect(url)
        try:
            db = Queries(conn)

            async def caught_up() -> bool:
                jobs = [await db.job_by_id(i) for i in (before, during)]
                return all(j is not None and j.status is Status.PROCESSED for j in jobs)

            await eventually(caught_up, timeout=60)
            assert [e.status for e in await db.job_events(during)] == [
                Status.ACKNOWLEDGED,
                Status.STARTED,
                Status.PROCESSED,
            ]
            assert len(await db.job_events(before)) == 2
            assert await conn.fetchval("SELECT count(*) FROM job") == 2
            info = await bus.js.consumer_info(s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER)
            assert info.num_redelivered == 0
        finally:
            await conn.close()
    finally:
        await bus.close()
        await store.stop()


async def test_two_stores_share_the_work_consistently(nats_url: str, database_url: str) -> None:
    async with (
        harness(nats_url, database_url, batch_size=7) as h,
        harness(nats_url, database_url, batch_size=5),
    ):
        ids = [new_id() for _ in range(60)]
        await h.bus.publisher.dispatch([message(i) for i in ids])
        for job_id in ids:
            await publish(
                h,
                event(job_id, Status.STARTED, runner="r1"),
                event(job_id, Status.STARTED, attempt=2, runner="r2"),
                event(job_id, Status.PROCESSED, attempt=1, exit_code=0),
                event(job_id, Status.PROCESSED, attempt=2, exit_code=0, stdout="ok"),
            )

        async def done() -> bool:
            finished = await h.conn.fetchval(
                "SELECT count(*) FROM job WHERE status = 'processed' AND attempt = 2"
            )
            return bool(finished == len(ids))

        await eventually(done, timeout=30)
        await drained(h)
        # Batches of one job may commit in either store's order: whatever the
        # interleaving, attempt 2 wins, attempt 1 ends final, nothing is doubled.
        assert await h.conn.fetchval("SELECT count(*) FROM job_event") == 4 * len(ids)
        assert await h.conn.fetchval("SELECT count(*) FROM job_event WHERE stale AND attempt = 2") == 0
        assert await h.conn.fetchval("SELECT count(*) FROM job WHERE stdout = 'ok' AND final") == len(ids)
        first = await h.conn.fetch("SELECT status, kind FROM job_attempt WHERE attempt = 1")
        assert len(first) == len(ids)
        assert {(r["status"], r["kind"]) for r in first} <= {("processed", None), ("error", "lost")}
        assert await h.conn.fetchval(ORPHANS) == 0


async def test_events_racing_their_jobs_dispatch_leave_no_attempt_behind(database_url: str) -> None:
    """An events batch that starts while its job's dispatch is not yet committed waits for it."""
    await migrate(database_url)
    dispatching, eventing = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        job_id = new_id()
        dispatch = dispatching.transaction()
        await dispatch.start()
        await write_dispatches(Queries(dispatching), [message(job_id)])
        later = [event(job_id, Status.STARTED, attempt=2, runner="r2")]

        async def write_later_attempt() -> None:
            async with eventing.transaction():
                await write_events(Queries(eventing), later, [encode(e) for e in later])

        racing = asyncio.create_task(write_later_attempt())
        await asyncio.sleep(0.5)  # the events batch is waiting for the dispatch's locks by now
        await dispatch.commit()
        await asyncio.wait_for(racing, 15)
        found = await dispatching.fetch(
            "SELECT attempt, status::text, kind::text FROM job_attempt WHERE job_id = $1 ORDER BY attempt",
            job_id,
        )
        assert [tuple(r) for r in found] == [(1, "error", "lost"), (2, "started", None)]
        assert await dispatching.fetchval(ORPHANS) == 0
    finally:
        await dispatching.close()
        await eventing.close()
