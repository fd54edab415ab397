"""The projection's rows as JSON documents, one per statement parameter.

asyncpg encodes an array parameter one element at a time (two ABC instance
checks and an encoder call for each: for a batch of events, more CPU than the
rest of its projection) and a text parameter at once; `jsonb_array_elements`
takes the document apart in Postgres. JSON has no timestamp: an instant goes as
whole microseconds since the Unix epoch, which `jetjobs_instant` (migration 10)
turns back exactly.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from contracts.flows import node_outcome
from contracts.messages import JobEvent, JobMessage

from .lifecycle import AttemptState, Plan, guard_pairs

Deadline = tuple[str, int, int | None, datetime, float]
"""(job id, attempt, stream sequence, take-by time, `timeout` in seconds) of a job message."""

document = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_epochs: dict[tzinfo, datetime] = {}
"""The epoch in each fixed-offset zone seen: an instant minus a datetime of the same
zone is a plain subtraction, where two zones cost a `utcoffset()` call on each side."""


def micros(at: datetime | None) -> int | None:
    """An instant as microseconds since the Unix epoch."""
    if at is None:
        return None
    zone = at.tzinfo
    epoch = _epochs.get(zone) if zone is not None else None
    if epoch is None:
        if zone is None or zone.utcoffset(None) is None:
            return (at - _EPOCH) // _MICROSECOND
        epoch = _epochs[zone] = _EPOCH.astimezone(zone)
    return (at - epoch) // _MICROSECOND


@functools.cache
def guard() -> str:
    """`guard_pairs`, the moves the SQL guards allow."""
    return document(guard_pairs())


def dispatches(messages: Sequence[JobMessage]) -> str:
    return document(
        [
            (
                m.job_id,
                m.company,
                m.pool,
                m.template_id,
                m.app_id,
                m.attempt,
                m.argv,
                micros(m.scheduled_at),
                micros(m.dispatched_at),
                m.launched_by,
            )
            for m in messages
        ]
    )


def deadlines(taken_by: Sequence[Deadline]) -> str:
    return document(
        [(job_id, attempt, seq, micros(at), timeout) for job_id, attempt, seq, at, timeout in taken_by]
    )


def states(changes: Plan) -> str:
    """Every attempt the fold changed, with its job's company and final flag when it
    is the job's current attempt (that row moves the job too)."""
    jobs = changes.jobs
    rows = []
    for (job_id, attempt), s in sorted(changes.attempts.items()):
        current = jobs.get(job_id)
        rows.append(
            _attempt_row(job_id, attempt, s, current[0] if current is not None and current[1] is s else None)
        )
    return document(rows)


def late_ends(changes: Plan) -> str:
    """The older attempts' errors that came late, as `states` gives attempts (no company:
    they move no job)."""
    return document(
        [_attempt_row(job_id, attempt, s, None) for (job_id, attempt), s in sorted(changes.late.items())]
    )


def _attempt_row(job_id: str, attempt: int, s: AttemptState, company: str | None) -> tuple[object, ...]:
    results = {} if s.results is None else dict(s.results)
    return (
        job_id,
        attempt,
        s.status,
        s.kind,
        s.runner,
        s.pid,
        s.exit_code,
        s.reason,
        micros(s.begin),
        micros(s.end),
        s.stdout,
        s.stderr,
        results,
        company,
        s.final,
    )


def retries(changes: Plan) -> str:
    """Each job whose current attempt ended in an error announcing a next attempt, with
    when that one is due (empty for most batches)."""
    if not changes.retries:
        return "[]"
    jobs = changes.jobs
    return document(
        [
            (job_id, attempt, micros(due))
            for job_id, (attempt, due) in sorted(changes.retries.items())
            if jobs[job_id][1].attempt == attempt and not jobs[job_id][1].final
        ]
    )


def events(recorded: Sequence[JobEvent], stale: Sequence[bool]) -> str:
    """Each event's columns, its stale flag and whether it ends a flow node's job."""
    return document(
        [
            (e.job_id, e.attempt, e.status, micros(e.at), flag, node_outcome(e) is not None)
            for e, flag in zip(recorded, stale, strict=True)
        ]
    )


def payloads(texts: Sequence[str]) -> str:
    """Events' JSON texts as one array."""
    return f"[{','.join(texts)}]"
