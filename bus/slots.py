"""Slot records on the bus: publishing them, reading back each template's
latest one, and what a scheduler needs to know about its runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, PubAck
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from contracts import subjects as s
from contracts.errors import describe
from contracts.messages import JobEvent
from contracts.schedule import SlotRecord

from .publish import Publisher, encode

log = structlog.get_logger("jetjobs.bus")


def slot_msg_id(record: SlotRecord, source: str) -> str:
    """Dedup key of a record: one per (template, slot, outcome, trigger, source)."""
    instant = record.slot.isoformat(timespec="microseconds")
    return f"slot.{record.template_id}.{instant}.{record.outcome.value}.{record.trigger.value}.{source}"


class SlotLog:
    """The `JETJOBS_SLOTS` stream, as a scheduler or the store uses it."""

    def __init__(self, js: JetStreamContext, publisher: Publisher) -> None:
        self._js = js
        self._publisher = publisher

    async def record(self, records: Sequence[SlotRecord], source: str = "scheduler") -> None:
        """Publish records pipelined; a record whose ack did not come is sent again alone."""
        items = [
            (s.slots_subject(r.company, r.template_id, source), encode(r), slot_msg_id(r, source))
            for r in records
        ]
        futures = [
            await self._js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
            for subject, payload, msg_id in items
        ]
        results = await asyncio.gather(*(asyncio.wait_for(f, 5) for f in futures), return_exceptions=True)
        for item, result in zip(items, results, strict=True):
            if not isinstance(result, PubAck):
                await self._publisher.publish(*item)

    async def latest(self, idle: float = 2.0) -> dict[int, SlotRecord]:
        """Each template's latest record written by a scheduler (its misfire anchor and
        running job), read with one ordered consumer delivering the last per subject."""
        sub = await self._js.subscribe(
            s.SLOTS_OF_SCHEDULERS,
            stream=s.SLOTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        found: dict[int, SlotRecord] = {}
        try:
            info = await sub.consumer_info()
            delivered = 0 if info.delivered is None else info.delivered.consumer_seq or 0
            if not info.num_pending and not delivered:
                return found
            while True:
                msg = await sub.next_msg(timeout=idle)
                _keep_latest(found, msg)
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()


def _keep_latest(found: dict[int, SlotRecord], msg: Msg) -> None:
    try:
        record = SlotRecord.model_validate_json(msg.data)
    except ValidationError as error:
        log.warning(
            "slots.invalid_record",
            subject=msg.subject,
            sequence=msg.metadata.sequence.stream,
            reason=describe(error),
            handled="skipped",
        )
        return
    known = found.get(record.template_id)
    if known is None or record.slot >= known.slot:
        found[record.template_id] = record


async def last_event(js: JetStreamContext, company: str, job_id: str) -> JobEvent | None:
    """The latest lifecycle event of a job, or None when it has none yet."""
    try:
        raw = await js.get_last_msg(s.EVENTS_STREAM, s.events_subject(company, job_id))
    except NotFoundError:
        return None
    try:
        return JobEvent.model_validate_json(raw.data or b"")
    except ValidationError:
        return None


JOB_EVENTS_LIMIT = 500
"""Most events `stored_events` reads of one job (a job retried a hundred times has 400)."""


async def stored_events(
    js: JetStreamContext, company: str, job_id: str, limit: int = JOB_EVENTS_LIMIT
) -> list[JobEvent]:
    """The lifecycle events of a job the events stream still holds, oldest first (up to
    `limit`; what does not parse is left out). One request per event: for the rare
    decisions that need a job's whole story, never once per job."""
    subject = s.events_subject(company, job_id)
    found: list[JobEvent] = []
    seq = 1
    while len(found) < limit:
        try:
            raw = await js.get_msg(s.EVENTS_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        with contextlib.suppress(ValidationError):
            found.append(JobEvent.model_validate_json(raw.data or b""))
        seq = (raw.seq or seq) + 1
    return found


async def finished_jobs(nc: Client, wanted: Callable[[str], bool]) -> AsyncIterator[str]:
    """Ids of jobs whose final event appears from now on; only events of jobs
    `wanted` accepts (judged by the subject) are decoded."""
    sub = await nc.subscribe(s.EVENTS_ALL)
    try:
        async for msg in sub.messages:
            job_id = msg.subject.rpartition(".")[2]
            if not wanted(job_id):
                continue
            try:
                event = JobEvent.model_validate_json(msg.data)
            except ValidationError:
                continue
            if event.final:
                yield job_id
    finally:
        await sub.unsubscribe()


LOOKUP_CHUNK = 256
"""Jobs whose last event is asked for at once."""


async def last_events(js: JetStreamContext, jobs: Sequence[tuple[str, str]]) -> list[JobEvent | None]:
    """The last event of each (company, job id), None for a job that has none yet."""
    found: list[JobEvent | None] = []
    for start in range(0, len(jobs), LOOKUP_CHUNK):
        chunk = jobs[start : start + LOOKUP_CHUNK]
        found += await asyncio.gather(*(last_event(js, company, job_id) for company, job_id in chunk))
    return found


async def records_from(js: JetStreamContext, now: datetime) -> datetime:
    """The earliest instant the slot records reach back to: the slots stream's creation
    (a new NATS remembers no slot), or its max age ago."""
    info = await js.stream_info(s.SLOTS_STREAM)
    earliest = info.created or now
    if info.config.max_age:
        earliest = max(earliest, now - timedelta(seconds=info.config.max_age))
    return min(earliest, now)
