"""A payload naming another company (or job) than its subject: NATS permissions let
executor `exec-acme` publish `jetjobs.events.acme.>` and `jetjobs.dead.acme`
(deploy/nats/isolation.conf), so only the subject says whose a message is. The
store refuses such messages (logged, terminated and, where nobody else does it,
dead-lettered for the subject's company), and a replay never crosses companies."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from bus import ApiClient, Delivery, encode
from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.lifecycle import DeadLetterRef, Replayed
from contracts.messages import DeadLetter, JobEvent, JobMessage
from contracts.models import Company, RunTemplate, TemplateSpec
from contracts.schedule import SlotOutcome, SlotReason, SlotRecord
from store.queries import Queries
from store.slots import project_slots
from tests.faults.harness import Faults, faults
from tests.stack import eventually
from tests.unit.jobs import message

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


def new_id() -> str:
    return f"job-{secrets.token_hex(4)}"


def job(job_id: str, company: str) -> JobMessage:
    return message(job_id=job_id, company=company, timeout=600, timeout_result=60)


def event(job_id: str, company: str, status: Status, **fields: Any) -> JobEvent:
    return JobEvent(job_id=job_id, company=company, attempt=1, status=status, at=NOW, **fields)


def letter(company: str, payload: str, subject: str, job_id: str | None = None) -> DeadLetter:
    return DeadLetter(
        company=company, job_id=job_id, reason="spoofed", subject=subject, payload=payload, at=NOW
    )


async def letters_of(f: Faults, subject: str) -> list[Any]:
    """Dead letters the store filed for messages that came on `subject`."""
    return await f.rows("SELECT * FROM dead_letter WHERE subject = $1 ORDER BY id", subject)


async def buried(f: Faults, subject: str) -> Any:
    """The one dead letter of a message refused on `subject`, once recorded."""

    async def found() -> list[Any]:
        return await letters_of(f, subject)

    [row] = await eventually(found, 20, f"the dead letter of what came on {subject}")
    return row


async def drained(f: Faults, stream: str, durable: str) -> None:
    """Until the store has settled everything on one of its consumers."""

    async def settled() -> bool:
        last = (await f.bus.js.stream_info(stream)).state.last_seq
        info = await f.bus.js.consumer_info(stream, durable)
        return info.num_ack_pending == 0 and (info.ack_floor.stream_seq or 0) >= last

    await eventually(settled, 20, f"{durable} to settle everything")


async def test_an_event_for_another_companys_job_never_decides_its_outcome(f: Faults) -> None:
    beta_job = new_id()
    await f.bus.publisher.dispatch([job(beta_job, "beta")])
    spoof = event(beta_job, "beta", Status.ERROR, final=True, reason="spoofed")
    wrong = s.events_subject("acme", beta_job)
    await f.bus.publisher.publish(wrong, encode(spoof), "spoof-1")
    await f.bus.publisher.event(event(beta_job, "beta", Status.PROCESSED, exit_code=0, final=True))

    async def processed() -> bool:
        return await f.status(beta_job) == "processed"

    await eventually(processed, 20, "beta's real outcome")
    row = await buried(f, wrong)
    assert row["company"] == "acme", "filed for the company of the subject, not of the payload"
    assert s.events_subject("beta", beta_job) in row["reason"] and row["job_id"] == beta_job
    events = await f.rows("SELECT status::text FROM job_event WHERE job_id = $1", beta_job)
    assert [e["status"] for e in events] == ["processed"]


async def test_an_event_naming_another_job_creates_no_job(f: Faults) -> None:
    named, other = new_id(), new_id()
    wrong = s.events_subject("acme", named)
    await f.bus.publisher.publish(wrong, encode(event(other, "acme", Status.STARTED)), "spoof-2")
    row = await buried(f, wrong)
    assert row["company"] == "acme" and s.events_subject("acme", other) in row["reason"]
    await drained(f, s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER)
    assert await f.jobs([named, other]) == {}


async def test_a_job_message_on_another_companys_subject_is_not_recorded(f: Faults) -> None:
    spoofed, own = new_id(), new_id()
    await f.bus.publisher.publish(
        s.dispatch_subject("acme", "default"), encode(job(spoofed, "beta")), spoofed
    )
    await f.bus.publisher.dispatch([job(own, "acme")])
    await drained(f, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
    assert list(await f.jobs([spoofed, own])) == [own]
    assert await f.rows("SELECT id FROM dead_letter") == [], (
        "the executor dead-letters job messages, not the store"
    )


async def test_a_slot_record_of_another_company_is_refused(f: Faults) -> None:
    def record(company: str, template_id: int) -> SlotRecord:
        return SlotRecord(
            template_id=template_id, company=company, slot=NOW, outcome=SlotOutcome.FIRED, recorded_at=NOW
        )

    wrong = s.slots_subject("acme", 7)
    await f.bus.publisher.publish(wrong, encode(record("beta", 7)), "slot-spoof")
    await f.bus.publisher.publish(
        s.slots_subject("acme", 8, "backfill"), encode(record("acme", 8)), "slot-own"
    )
    row = await buried(f, wrong)
    assert row["company"] == "acme" and s.slots_subject("beta", 7) in row["reason"]
    await drained(f, s.SLOTS_STREAM, s.STORE_SLOTS_CONSUMER)
    slots = await f.rows("SELECT template_id, company FROM schedule_slot")
    assert [tuple(r) for r in slots] == [(8, "acme")]


async def test_a_dead_letter_on_another_companys_subject_is_refused_and_not_buried_again(f: Faults) -> None:
    await f.bus.publisher.publish(
        s.dead_subject("acme"), encode(letter("beta", "{}", "jetjobs.dispatch.beta.default")), "dead-spoof"
    )
    await f.bus.publisher.dead(letter("acme", "{}", "jetjobs.dispatch.acme.default"), "dead-own")
    await drained(f, s.DEAD_STREAM, s.STORE_DEAD_CONSUMER)
    rows = await f.rows("SELECT company FROM dead_letter")
    assert [r["company"] for r in rows] == ["acme"]
    assert (await f.bus.js.stream_info(s.DEAD_STREAM)).state.messages == 2, "no letter about a letter"


async def test_replay_refuses_a_letter_that_reaches_into_another_company(f: Faults) -> None:
    client = ApiClient(f.bus.nc)
    for code in ("acme", "beta"):
        await client.call("company.create", Company(code=code, name=code.upper()), Company)
    beta_job = new_id()
    await f.bus.publisher.dispatch([job(beta_job, "beta")])
    own = s.dispatch_subject("acme", "default")
    acme_job = job(new_id(), "acme")
    spoofs = {
        "a beta job": letter("acme", job(new_id(), "beta").model_dump_json(), own),
        "beta's subject": letter("acme", acme_job.model_dump_json(), s.dispatch_subject("beta", "default")),
        "beta's job record": letter("acme", job(beta_job, "acme").model_dump_json(), own, job_id=beta_job),
    }
    for i, spoof in enumerate(spoofs.values()):
        await f.bus.publisher.dead(spoof, f"spoof-{i}")
    await drained(f, s.DEAD_STREAM, s.STORE_DEAD_CONSUMER)
    ids = [r["id"] for r in await f.rows("SELECT id FROM dead_letter ORDER BY stream_seq")]
    assert len(ids) == len(spoofs)
    before = (await f.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    for what, letter_id in zip(spoofs, ids, strict=True):
        with pytest.raises(ApiFailure) as refused:
            await client.call("dlq.replay", DeadLetterRef(id=letter_id), Replayed)
        assert refused.value.code == 409, (what, refused.value.message)
        assert "replays only its own jobs" in refused.value.message, (what, refused.value.message)
    assert (await f.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq == before, "nothing was dispatched"
    assert await f.status(beta_job) == "dispatched"


async def test_replay_refuses_a_letter_that_names_another_job_than_its_message(f: Faults) -> None:
    client = ApiClient(f.bus.nc)
    await client.call("company.create", Company(code="acme", name="ACME"), Company)
    named, carried = new_id(), new_id()
    await f.bus.publisher.dispatch([job(named, "acme")])
    own = s.dispatch_subject("acme", "default")
    await f.bus.publisher.dead(
        letter("acme", job(carried, "acme").model_dump_json(), own, job_id=named), "mix"
    )
    await drained(f, s.DEAD_STREAM, s.STORE_DEAD_CONSUMER)
    [row] = await f.rows("SELECT id FROM dead_letter")
    before = (await f.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    with pytest.raises(ApiFailure) as refused:
        await client.call("dlq.replay", DeadLetterRef(id=row["id"]), Replayed)
    assert refused.value.code == 409
    assert f"names job {named}, but its message is job {carried}" in refused.value.message
    assert (await f.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq == before, "nothing was dispatched"


async def test_an_event_of_one_company_never_moves_another_companys_job(f: Faults) -> None:
    """Subject and payload agree (acme's own subject): the job is beta's all the same."""
    beta_job = new_id()
    await f.bus.publisher.dispatch([job(beta_job, "beta")])

    async def recorded() -> bool:
        return await f.status(beta_job) == "dispatched"

    await eventually(recorded, 20, "beta's job recorded")
    forged = event(beta_job, "acme", Status.ERROR, final=True, exit_code=99, reason="forged")
    subject = s.events_subject("acme", beta_job)
    await f.bus.publisher.publish(subject, encode(forged), "forged-1")
    row = await buried(f, subject)
    assert row["company"] == "acme" and row["reason"] == (
        f"company 'acme' has no job {beta_job}: an event moves only its own company's jobs"
    )
    await f.bus.publisher.event(event(beta_job, "beta", Status.PROCESSED, exit_code=0, final=True))

    async def processed() -> bool:
        return await f.status(beta_job) == "processed"

    await eventually(processed, 20, "beta's real outcome")
    [kept] = await f.rows("SELECT status::text, payload FROM job_event WHERE job_id = $1", beta_job)
    assert kept["status"] == "processed" and "forged" not in kept["payload"]


async def test_a_dispatch_takes_back_a_job_another_companys_early_events_made(f: Faults) -> None:
    """A scheduled job's id can be worked out ahead of its slot: events published for
    it before its dispatch make its row, which the dispatch then gives its company."""
    beta_job = new_id()
    forged = event(beta_job, "acme", Status.PROCESSED, exit_code=0, final=True, results={"approved": "yes"})
    await f.bus.publisher.publish(s.events_subject("acme", beta_job), encode(forged), "forged-2")

    async def made() -> bool:
        return (await f.jobs([beta_job])).get(beta_job, {}).get("company") == "acme"

    await eventually(made, 20, "the forged row")
    await f.bus.publisher.dispatch([job(beta_job, "beta")])

    async def taken_back() -> Any:
        found = (await f.jobs([beta_job])).get(beta_job)
        return found if found is not None and found["company"] == "beta" else None

    row = await eventually(taken_back, 20, "the dispatch to take the job back")
    assert (row["status"], row["final"], row["exit_code"]) == ("dispatched", False, None)
    attempts = await f.attempts(beta_job)
    assert [(a["attempt"], str(a["status"]), a["results"]) for a in attempts] == [(1, "dispatched", "{}")]
    assert await f.rows("SELECT id FROM job_event WHERE job_id = $1", beta_job) == []


async def test_a_slot_record_of_another_companys_template_is_refused(f: Faults) -> None:
    """Subject and payload agree (acme's own subject), but the template is beta's."""
    client = ApiClient(f.bus.nc)
    await client.call("company.create", Company(code="beta", name="Beta"), Company)
    document = {"name": "slotted", "executable": "true"}
    app = await client.call("app.import", api.AppImport(document=document), api.AppImported)
    spec = TemplateSpec(name="betas", app=str(app.app.id), company="beta", interv="n")
    template = await client.call("template.create", spec, RunTemplate)
    assert template.id is not None

    def record(company: str, detail: str) -> SlotRecord:
        return SlotRecord(
            template_id=template.id or 0,
            company=company,
            slot=NOW,
            outcome=SlotOutcome.SKIPPED,
            reason=SlotReason.PAUSED,
            detail=detail,
            recorded_at=NOW,
        )

    forged = s.slots_subject("acme", template.id)
    await f.bus.publisher.publish(forged, encode(record("acme", "FORGED")), "slot-forged")
    row = await buried(f, forged)
    assert row["company"] == "acme" and row["reason"] == f"company 'acme' has no template {template.id}"
    await drained(f, s.SLOTS_STREAM, s.STORE_SLOTS_CONSUMER)
    assert await f.rows("SELECT slot FROM schedule_slot WHERE template_id = $1", template.id) == []

    # in one batch with the template's own record of the same slot, which it must not hide
    batch = [
        Delivery(record("acme", "FORGED"), cast(Any, None)),
        Delivery(record("beta", "real"), cast(Any, None)),
    ]
    conn = await asyncpg.connect(f.database_url)
    try:
        async with conn.transaction():
            written = await project_slots(Queries(conn), batch)
    finally:
        await conn.close()
    assert [(refused.company, why) for refused, why in written.refused] == [
        ("acme", f"company 'acme' has no template {template.id}")
    ]
    slots = await f.rows("SELECT company, detail FROM schedule_slot WHERE template_id = $1", template.id)
    assert [tuple(r) for r in slots] == [("beta", "real")]
