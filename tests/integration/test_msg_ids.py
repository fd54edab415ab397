"""Msg ids nobody else can work out: JetStream drops a message whose `Nats-Msg-Id` it
saw within its duplicate window, whatever its subject, and job ids are predictable
(a keyed run's, a slot's). So a company that may publish into the events, logs or
dead-letter stream at all must not be able to publish first, on its own subject, the
id another company's message will carry and have that one dropped as a copy. A
publisher's own retries still store one copy, and the copies of different publishers
are recorded once by the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg

from bus import Bus
from bus.output import job_output
from contracts import api
from contracts import subjects as s
from contracts.dispatch import keyed_job_id
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent
from tests.stack import Stack, eventually, running_stack

KEY = "nightly-7"
SETTLE = 10.0
"""Seconds a job of these tests takes at most on a slow machine (it runs `sh -c`)."""


@asynccontextmanager
async def stack_of(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    """Store and executor, companies acme (the victim) and globex (the attacker)."""
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        for code in ("acme", "globex"):
            await stack.company(code)
        yield stack


async def _template(stack: Stack, script: str) -> int:
    app = await stack.app(f"-c '{script}'")
    return (await stack.template(name=script, app=str(app.app.id), company="acme")).id


async def _as_globex(stack: Stack, subject: str, msg_id: str) -> None:
    """What another company's executor may do: publish on its own subject, any msg id."""
    assert subject.split(".")[2] == "globex"
    ack = await stack.bus.js.publish(subject, b"{}", headers={"Nats-Msg-Id": msg_id})
    assert ack.duplicate is not True


async def _run_keyed(stack: Stack, template_id: int) -> str:
    queued = await stack.client.call("template.run", api.RunNow(id=template_id, key=KEY), api.JobQueued)
    assert queued.job_id == keyed_job_id(template_id, KEY)
    return queued.job_id


async def _rows(stack: Stack, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_another_company_cannot_keep_a_jobs_events_or_output_out(
    nats_url: str, database_url: str
) -> None:
    async with stack_of(nats_url, database_url) as stack:
        template_id = await _template(stack, "echo hi")
        job_id = keyed_job_id(template_id, KEY)
        for status in (Status.ACKNOWLEDGED, Status.STARTED, Status.PROCESSED):
            await _as_globex(stack, s.events_subject("globex", "x"), f"{job_id}.1.{status.value}")
        await _as_globex(stack, s.logs_subject("globex", "x"), f"{job_id}.1.stdout.0")

        assert await _run_keyed(stack, template_id) == job_id
        job = await stack.final_job(job_id, timeout=SETTLE)
        assert job.status is Status.PROCESSED and job.company == "acme", (job.status, job.reason)
        rows = await _rows(stack, "SELECT status::text FROM job_event WHERE job_id = $1", job_id)
        assert sorted(r["status"] for r in rows) == ["acknowledged", "processed", "started"]
        chunks = [c async for c in job_output(stack.bus.js, "acme", job_id)]
        assert [(c.stream, c.seq, c.data) for c in chunks] == [("stdout", 0, "hi\n")]


async def test_another_company_cannot_keep_a_jobs_dead_letter_out(nats_url: str, database_url: str) -> None:
    async with stack_of(nats_url, database_url) as stack:
        template_id = await _template(stack, "exit 3")
        job_id = keyed_job_id(template_id, KEY)
        await _as_globex(stack, s.dead_subject("globex"), f"{job_id}.1.dead")

        await _run_keyed(stack, template_id)
        job = await stack.final_job(job_id, timeout=SETTLE)
        assert job.status is Status.ERROR and job.kind is ErrorKind.EXIT, (job.status, job.reason)

        async def letters() -> list[asyncpg.Record]:
            return await _rows(stack, "SELECT company FROM dead_letter WHERE job_id = $1", job_id)

        found = await eventually(letters, SETTLE, f"the dead letter of job {job_id}")
        assert [r["company"] for r in found] == ["acme"]


def _event(job_id: str, status: Status, **fields: object) -> JobEvent:
    values = {"job_id": job_id, "company": "acme", "attempt": 1, "status": status, "at": datetime.now(UTC)}
    return JobEvent.model_validate({**values, **fields})


async def _stored(stack: Stack, stream: str) -> int:
    return (await stack.bus.js.stream_info(stream)).state.messages


async def test_an_event_or_letter_published_again_is_stored_once(nats_url: str, database_url: str) -> None:
    """A publisher that publishes again what it never learnt was stored (the same
    attempt's event, a letter of the same message) reuses its msg id."""
    async with stack_of(nats_url, database_url) as stack:
        publisher = stack.bus.publisher
        ran = _event("j-again", Status.ACKNOWLEDGED, runner="r1")
        trail = publisher.trail()
        await trail.add(ran)
        await trail.stored()
        await trail.close(ran)  # a retry of a publish whose outcome it never learnt
        assert await _stored(stack, s.EVENTS_STREAM) == 1
        stored = await stack.bus.js.get_last_msg(s.EVENTS_STREAM, s.events_subject("acme", "j-again"))
        msg_id = (stored.headers or {})["Nats-Msg-Id"]
        assert msg_id.startswith("j-again.1.acknowledged.") and len(msg_id) > len("j-again.1.acknowledged.")

        letter = DeadLetter(company="acme", reason="bad", subject="s", payload="{}", at=datetime.now(UTC))
        for reason in ("bad", "redelivered and bad again"):
            await publisher.dead(letter.model_copy(update={"reason": reason}), "JETJOBS_EVENTS.7")
        assert await _stored(stack, s.DEAD_STREAM) == 1


async def test_copies_from_two_publishers_are_recorded_once(nats_url: str, database_url: str) -> None:
    """An executor presumed lost comes back: it and the reaper each end the attempt
    and dead-letter its message; the store keeps the first of each."""
    async with stack_of(nats_url, database_url) as stack:
        other = await Bus.attach(nats_url, "jetjobs-test-other")
        job_id = "j-twice"
        lost = _event(job_id, Status.ERROR, kind=ErrorKind.LOST, reason="runner gone", final=True)
        failed = _event(job_id, Status.ERROR, kind=ErrorKind.EXIT, reason="exit 3", final=True)
        original = {"subject": s.dispatch_subject("acme", "default"), "payload": '{"job_id": "j-twice"}'}
        letters = [
            DeadLetter(company="acme", job_id=job_id, reason=why, at=datetime.now(UTC), **original)
            for why in ("lost 3 times", "attempt 1 failed")
        ]
        try:
            for bus, event, letter in zip((stack.bus, other), (lost, failed), letters, strict=True):
                await bus.publisher.event(event)
                await bus.publisher.dead(letter, f"{job_id}.1.dead")
        finally:
            await other.nc.close()
        assert await _stored(stack, s.EVENTS_STREAM) == 2 and await _stored(stack, s.DEAD_STREAM) == 2

        async def recorded() -> list[asyncpg.Record] | None:
            rows = await _rows(stack, "SELECT reason FROM dead_letter WHERE job_id = $1", job_id)
            pending = await stack.bus.js.consumer_info(s.DEAD_STREAM, s.STORE_DEAD_CONSUMER)
            return rows if rows and pending.num_pending == 0 and pending.num_ack_pending == 0 else None

        found = await eventually(recorded, SETTLE, "both letters projected")
        assert [r["reason"] for r in found] == ["lost 3 times"]
        job = await stack.final_job(job_id, timeout=SETTLE)
        assert job.kind is ErrorKind.LOST
        events = await _rows(stack, "SELECT payload FROM job_event WHERE job_id = $1", job_id)
        assert len(events) == 1
