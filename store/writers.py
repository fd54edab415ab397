"""Writing one batch of each stream into Postgres (inside the caller's transaction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import structlog

from bus import Delivery
from bus.reply import stream_sequence
from contracts.messages import DeadLetter, JobEvent, JobMessage

from .documents import Deadline
from .lifecycle import plan
from .masking import recorded_argv
from .queries import Queries
from .recorded import Recorded

log = structlog.get_logger("jetjobs.store")

LONGEST_TIMEOUT = 3e9
"""About 95 years: a longer dispatch timeout is treated as this, so the date stays representable."""

_TEXT_FIELDS = ("runner", "reason", "stdout", "stderr")


def scrub(text: str) -> str:
    """Postgres text (and jsonb) cannot hold NUL characters; a process may print them."""
    return text.replace("\x00", "\ufffd")


def _has_nul(*texts: str | None) -> bool:
    return any(t is not None and "\x00" in t for t in texts)


def clean_event(event: JobEvent) -> JobEvent:
    """The event with NULs replaced in its free-text fields and results."""
    values = {f: getattr(event, f) for f in _TEXT_FIELDS}
    if not _has_nul(*values.values(), *event.results.keys(), *event.results.values()):
        return event
    update: dict[str, object] = {f: None if v is None else scrub(v) for f, v in values.items()}
    update["results"] = {scrub(k): scrub(v) for k, v in event.results.items()}
    return event.model_copy(update=update)


def clean_message(message: JobMessage) -> JobMessage:
    """The message with NULs replaced in what the job table keeps of it, and the
    values of its secret variables masked in its argv (which readers are shown)."""
    argv = recorded_argv(message)
    if argv is message.argv and not _has_nul(message.launched_by, *argv):
        return message
    return message.model_copy(
        update={"argv": [scrub(a) for a in argv], "launched_by": scrub(message.launched_by)}
    )


def clean_letter(letter: DeadLetter) -> DeadLetter:
    """The dead letter with NULs replaced in its texts."""
    if not _has_nul(letter.payload, letter.reason, *letter.headers.values()):
        return letter
    return letter.model_copy(
        update={
            "payload": scrub(letter.payload),
            "reason": scrub(letter.reason),
            "headers": {k: scrub(v) for k, v in letter.headers.items()},
        }
    )


def _unique_jobs(messages: Sequence[JobMessage]) -> list[JobMessage]:
    """The first message of each job id (one statement may not touch a row twice),
    in id order (so concurrent writers lock rows in the same order)."""
    seen: dict[str, JobMessage] = {}
    for message in messages:
        seen.setdefault(message.job_id, message)
    return [seen[job_id] for job_id in sorted(seen)]


async def write_dispatches(
    queries: Queries, messages: Sequence[JobMessage], deadlines: Sequence[Deadline] = ()
) -> Recorded:
    """Jobs enter the record as `dispatched` (or fill in a job an early event created),
    with the `deadlines` of these messages when they come from the stream.

    Job ids are locked first, like `write_events` does: otherwise an events batch
    that found no row yet could overtake this insert and leave the attempt the
    dispatch opened behind as `dispatched` for good."""
    unique = _unique_jobs([clean_message(m) for m in messages])
    await queries.lock_job_ids([m.job_id for m in unique])
    for job_id, made_by in await queries.reclaim_jobs(unique):
        log.warning("job.reclaimed", job_id=job_id, events_of=made_by)
    return Recorded(jobs=await queries.record_dispatches(unique, deadlines))


NUL_ESCAPE = b"\\u0000"
"""JSON text can hold a NUL only as this escape (a raw control character is invalid JSON)."""


def event_payloads(events: Sequence[JobEvent], received: Sequence[bytes]) -> tuple[list[JobEvent], list[str]]:
    """The events cleaned of NULs, and the JSON to keep of each: as received when
    nothing had to be cleaned (no need to encode it again), else the cleaned event.
    Only an event whose bytes hold the NUL escape is looked at field by field."""
    cleaned: list[JobEvent] = []
    payloads: list[str] = []
    for event, raw in zip(events, received, strict=True):
        clean = clean_event(event) if NUL_ESCAPE in raw else event
        cleaned.append(clean)
        payloads.append(raw.decode() if clean is event else clean.model_dump_json(exclude_none=True))
    return cleaned, payloads


async def write_events(queries: Queries, events: Sequence[JobEvent], received: Sequence[bytes]) -> Recorded:
    """Move jobs and attempts as the fold allows, keep every event with its stale
    flag, and put the outcomes of flow nodes' jobs into the flow inbox.

    `received` holds each event's bytes as it came off the bus. Job ids are
    locked first, so another store writing events of the same jobs waits."""
    locked = await queries.lock_jobs(sorted({e.job_id for e in events}))
    events, received, refused = _own_jobs(events, received, locked.companies)
    events, payloads = event_payloads(events, received)
    changes = plan(locked.states, events)
    await queries.record_events(events, payloads, changes)
    for event, stale in zip(events, changes.stale, strict=True):
        if stale:
            log.info(
                "job.stale_event",
                job_id=event.job_id,
                company=event.company,
                attempt=event.attempt,
                status=event.status.value,
            )
    return Recorded(outcomes=changes.outcomes, refused=refused)


def _own_jobs(
    events: Sequence[JobEvent], received: Sequence[bytes], companies: Mapping[str, str]
) -> tuple[Sequence[JobEvent], Sequence[bytes], list[tuple[JobEvent, str]]]:
    """The events of jobs of their own company (or of jobs not recorded yet), and
    those refused: a job id is global, and NATS permissions confine a company to its
    own subjects only, so an event of another company's job is never applied. Its
    reason does not say whose job it is."""
    if all(companies.get(e.job_id, e.company) == e.company for e in events):
        return events, received, []
    kept: list[JobEvent] = []
    kept_bytes: list[bytes] = []
    refused: list[tuple[JobEvent, str]] = []
    for event, raw in zip(events, received, strict=True):
        if companies.get(event.job_id, event.company) == event.company:
            kept.append(event)
            kept_bytes.append(raw)
        else:
            reason = f"company '{event.company}' has no job {event.job_id}: an event moves only its own company's jobs"
            refused.append((event, reason))
    return kept, kept_bytes, refused


def dispatch_deadlines(batch: Sequence[Delivery[JobMessage]]) -> list[Deadline]:
    """(job id, attempt, stream sequence, take-by time, timeout) per job, the latest attempt of each."""
    latest: dict[str, Deadline] = {}
    for delivery in batch:
        message = delivery.payload
        timeout = min(message.timeout, LONGEST_TIMEOUT)
        deadline = message.dispatched_at + timedelta(seconds=timeout)
        row = (message.job_id, message.attempt, stream_sequence(delivery.msg.reply), deadline, timeout)
        if message.job_id not in latest or latest[message.job_id][1] <= message.attempt:
            latest[message.job_id] = row
    return [latest[job_id] for job_id in sorted(latest)]


async def write_dead_letters(queries: Queries, letters: Sequence[tuple[int, DeadLetter]]) -> Recorded:
    """Dead letters with their stream sequence (the dedup key of a redelivery)."""
    return Recorded(
        dead_letters=await queries.record_dead_letters([(s, clean_letter(d)) for s, d in letters])
    )


async def project_dispatches(queries: Queries, batch: Sequence[Delivery[JobMessage]]) -> Recorded:
    """A batch from the store's dispatch consumer, with each message's deadline for the reaper."""
    return await write_dispatches(queries, [d.payload for d in batch], dispatch_deadlines(batch))


async def project_events(queries: Queries, batch: Sequence[Delivery[JobEvent]]) -> Recorded:
    """A batch from the store's events consumer."""
    return await write_events(queries, [d.payload for d in batch], [d.msg.data for d in batch])


async def project_dead_letters(queries: Queries, batch: Sequence[Delivery[DeadLetter]]) -> Recorded:
    """A batch from the store's dead-letter consumer; the stream sequence is the dedup key."""
    return await write_dead_letters(queries, [(stream_sequence(d.msg.reply), d.payload) for d in batch])
