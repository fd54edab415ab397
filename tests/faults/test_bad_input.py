"""Garbage published by hand: dead-lettered, and work goes on. Job messages are
dead-lettered by the executor; what only the store reads (events, slot records,
flow starts) by the store. A message that passes validation but cannot be stored
is refused alone, and the rest of its batch written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.errors import MaxPayloadError
from nats.js.errors import APIError
from structlog.testing import capture_logs

from bus import Bus, Delivery, Layout, decode
from bus.batches import BatchPuller
from bus.infra import MAX_MESSAGE_BYTES
from contracts import subjects as s
from contracts.enums import Status
from contracts.flows import flow_start_subject
from contracts.messages import DeadLetter, JobEvent, JobMessage
from store import migrate
from store.db import open_pool
from store.projection import Feed, Projection, Tuning, feeds
from tests.faults.harness import Faults, faults
from tests.stack import eventually
from tests.unit.jobs import message

pytestmark = pytest.mark.timeout(60)

SUBJECT = s.dispatch_subject("acme", "default")


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def test_bad_messages_are_dead_lettered_and_good_jobs_still_run(f: Faults) -> None:
    runner = f.executor(slots=2)
    await f.ready(runner)
    bad = {
        "bytes": b"\xff\xfe\x00garbage",
        "json": b'{"job_id": "x", ',
        "schema": b'{"job_id": "x1", "company": "acme", "argv": []}',
        "large": b'{"junk": "' + b"a" * (MAX_MESSAGE_BYTES - 4096) + b'"}',
    }
    for i, payload in enumerate(bad.values()):
        await f.bus.js.publish(SUBJECT, payload, headers={"Nats-Msg-Id": f"bad-{i}", "X-Test": "bad"})
    with pytest.raises((MaxPayloadError, APIError)):
        await f.bus.js.publish(SUBJECT, b"x" * (MAX_MESSAGE_BYTES + 1), timeout=5)

    async def letters() -> list[Any] | None:
        rows = await f.rows("SELECT reason, payload, headers FROM dead_letter ORDER BY stream_seq")
        return rows if len(rows) == len(bad) else None

    rows = await eventually(letters, 20, "every bad message to be dead-lettered")
    reasons = [str(r["reason"]) for r in rows]
    assert "undecodable" in reasons[0] or "not valid JSON" in reasons[0]
    assert "not valid JSON" in reasons[1]
    assert "invalid JobMessage" in reasons[2] and "argv" in reasons[2]
    assert "invalid JobMessage" in reasons[3]
    assert all('"X-Test": "bad"' in str(r["headers"]) for r in rows), "original headers kept"

    ids = await f.submit(3, ["true"])
    jobs = await f.all_final(ids, 20)
    assert {j["status"] for j in jobs.values()} == {"processed"}
    assert runner.popen.poll() is None, "the executor is still running"


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def job(job_id: str) -> JobMessage:
    return message(job_id=job_id, timeout=600, timeout_result=60)


def event(job_id: str, **fields: Any) -> JobEvent:
    return JobEvent(job_id=job_id, company="acme", attempt=1, status=Status.STARTED, at=NOW, **fields)


async def letters_on(f: Faults, subjects: Sequence[str]) -> list[Any]:
    """The dead letters of what came on `subjects`, one per subject, in that order."""

    async def found() -> list[Any] | None:
        rows = await f.rows("SELECT * FROM dead_letter WHERE subject = ANY($1::text[])", list(subjects))
        return rows if len(rows) == len(subjects) else None

    rows = await eventually(found, 20, f"dead letters of what came on {subjects}")
    by_subject = {r["subject"]: r for r in rows}
    return [by_subject[subject] for subject in subjects]


async def test_bad_events_and_slot_records_are_dead_lettered_by_the_store(f: Faults) -> None:
    def on(kind: str, i: int) -> str:
        return s.events_subject("acme", f"bad-{i}") if kind == "event" else s.slots_subject("acme", i)

    too_big = event("bad-2").model_dump(mode="json") | {"attempt": 3_000_000_000}
    bad = [
        ("event", b"\xff\xfe\x00garbage"),
        ("event", b"{}"),
        ("event", json.dumps(too_big).encode()),
        ("slot", b'{"template_id": 3}'),
    ]
    subjects = [on(kind, i) for i, (kind, _) in enumerate(bad)]
    for i, (subject, (_, payload)) in enumerate(zip(subjects, bad, strict=True)):
        await f.bus.js.publish(subject, payload, headers={"Nats-Msg-Id": f"bad-{i}", "X-Test": "bad"})
    await f.bus.publisher.event(event("good"))

    rows = await letters_on(f, subjects)
    assert {r["company"] for r in rows} == {"acme"}
    assert "not valid JSON" in rows[0]["reason"] or "undecodable" in rows[0]["reason"]
    assert "invalid JobEvent" in rows[1]["reason"]
    assert "attempt" in rows[2]["reason"] or "cannot be stored" in rows[2]["reason"]
    assert "invalid SlotRecord" in rows[3]["reason"]
    assert all('"X-Test": "bad"' in str(r["headers"]) for r in rows), "original headers kept"

    async def good_recorded() -> bool:
        return await f.status("good") == "started"

    await eventually(good_recorded, 20, "the good event after the bad ones")
    for stream, durable in (
        (s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER),
        (s.SLOTS_STREAM, s.STORE_SLOTS_CONSUMER),
    ):
        info = await f.bus.js.consumer_info(stream, durable)
        assert info.num_ack_pending == 0 and info.num_pending == 0, "every bad message was terminated"


async def test_malformed_flow_starts_are_logged_and_dead_lettered(f: Faults) -> None:
    subject = flow_start_subject("acme")
    start = {
        "run_id": "r1",
        "company": "beta",
        "flow": "nightly",
        "template_id": 1,
        "slot": NOW.isoformat(),
        "scheduled_at": NOW.isoformat(),
    }
    payloads = [b"\xffgarbage", b"{}", json.dumps(start).encode()]

    async def found() -> list[Any] | None:
        rows = await f.rows("SELECT * FROM dead_letter WHERE subject = $1 ORDER BY stream_seq", subject)
        return rows if len(rows) == len(payloads) else None

    with capture_logs() as logs:
        for i, payload in enumerate(payloads):
            await f.bus.js.publish(subject, payload, headers={"Nats-Msg-Id": f"flow-bad-{i}"})
        rows = await eventually(found, 20, "the flow starts' dead letters")
    assert {r["company"] for r in rows} == {"acme"}, "filed for the company of the subject"
    assert "invalid FlowStart" in rows[1]["reason"]
    assert flow_start_subject("beta") in rows[2]["reason"]
    logged = [e for e in logs if e["event"] == "flow.start_invalid"]
    assert [e["reason"] for e in logged] == [r["reason"] for r in rows], "one line each, with the reason"


@pytest.fixture
async def bare(nats_url: str, database_url: str) -> AsyncIterator[tuple[Bus, Any]]:
    """The store's streams, consumers and schema, and no store running: a test drives
    one projection itself."""
    await migrate(database_url)
    bus = await Bus.open(nats_url, "bad-input-test", Layout(ack_wait=2.0), store=True)
    pool = await open_pool(database_url, 2)
    try:
        yield bus, pool
    finally:
        await pool.close()
        await bus.close()


async def taken(bus: Bus, feed: Feed[Any], count: int) -> tuple[BatchPuller, list[Delivery[Any]]]:
    """`count` messages off the store's consumer of `feed`, decoded."""
    puller = BatchPuller(bus.nc, feed.stream, feed.durable)
    msgs: list[Any] = []

    async def all_taken() -> bool:
        msgs.extend(await puller.fetch(count - len(msgs), 0.5))
        return len(msgs) == count

    await eventually(all_taken, 10, f"{count} messages on {feed.durable}")
    batch = [decode(feed.model, msg) for msg in msgs]
    assert all(isinstance(d, Delivery) for d in batch)
    return puller, batch  # type: ignore[return-value]


def feed(stream: str) -> Feed[Any]:
    [found] = [f for f in feeds() if f.stream == stream]
    return found


async def settled(bus: Bus, feed: Feed[Any]) -> None:
    async def nothing_pending() -> bool:
        info = await bus.js.consumer_info(feed.stream, feed.durable)
        return (info.num_ack_pending, info.num_pending) == (0, 0)

    await eventually(nothing_pending, 10, f"{feed.durable} to be settled")


async def test_a_job_whose_deadline_overflows_is_refused_and_its_batch_written(
    bare: tuple[Bus, Any],
) -> None:
    """A valid message can still fail while its rows are made (here: dispatch time plus
    timeout past year 9999, in Python). That is bad data, not an outage: the batch
    is written one message at a time and only that one refused, at once."""
    bus, pool = bare
    dispatch = feed(s.DISPATCH_STREAM)
    await bus.publisher.dispatch([job(f"j{i}") for i in range(3)])
    puller, batch = await taken(bus, dispatch, 3)
    late = {"dispatched_at": datetime(9999, 12, 31, 23, tzinfo=UTC), "timeout": 86400.0}
    far = batch[1].payload.model_copy(update=late)
    batch[1] = Delivery(far, batch[1].msg)
    projection = Projection(dispatch, puller, pool, asyncio.Event(), Tuning(ack_wait=2.0))
    await asyncio.wait_for(projection._store(batch), 5)
    stored = await pool.fetch("SELECT id FROM job ORDER BY id")
    assert [r["id"] for r in stored] == ["j0", "j2"]
    await settled(bus, dispatch)


async def test_an_event_postgres_cannot_store_is_dead_lettered_once(bare: tuple[Bus, Any]) -> None:
    bus, pool = bare
    events = feed(s.EVENTS_STREAM)
    for job_id in ("e0", "e1", "e2"):
        await bus.publisher.event(event(job_id))
    puller, batch = await taken(bus, events, 3)
    batch[1] = Delivery(batch[1].payload.model_copy(update={"attempt": 3_000_000_000}), batch[1].msg)
    projection = Projection(
        events, puller, pool, asyncio.Event(), Tuning(ack_wait=2.0), letters=bus.publisher
    )
    await asyncio.wait_for(projection._store(batch), 5)
    await projection._reject(batch[1].msg, "redelivered and refused again")
    stored = await pool.fetch("SELECT id FROM job ORDER BY id")
    assert [r["id"] for r in stored] == ["e0", "e2"]
    await settled(bus, events)
    dead = await bus.js.stream_info(s.DEAD_STREAM)
    assert dead.state.messages == 1, "a second refusal of the same message files no second letter"
    raw = await bus.js.get_msg(s.DEAD_STREAM, dead.state.last_seq)
    letter = DeadLetter.model_validate_json(raw.data or b"")
    assert (raw.subject, letter.company, letter.job_id) == (s.dead_subject("acme"), "acme", "e1")
    assert letter.reason.startswith("cannot be stored") and letter.subject == s.events_subject("acme", "e1")
