"""Turning a job out of retries into a dead letter (a message that is not a valid
job is filed by `bus.letters`, as the store files what it refuses)."""

from __future__ import annotations

from typing import Any

from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent

BURIED = frozenset({ErrorKind.EXIT, ErrorKind.TIMEOUT, ErrorKind.INVALID, ErrorKind.UNDELIVERED})
"""Failures that end a job for good: what the dead letters keep (a cancel is nobody's
failure, and a lost run is the store's to bury, `store.reaper`)."""


def exhausted_letter(msg: Any, event: JobEvent) -> DeadLetter | None:
    """The dead letter of a job whose last attempt failed with no retry left, or that
    was taken too late to run, or None."""
    if event.status is not Status.ERROR or not event.final or event.kind not in BURIED:
        return None
    data: bytes = msg.data or b""
    return DeadLetter(
        company=event.company,
        job_id=event.job_id,
        reason=_why_buried(event),
        subject=msg.subject,
        payload=data.decode("utf-8", errors="replace"),
        headers=dict(msg.headers or {}),
        at=event.at,
    )


def _why_buried(event: JobEvent) -> str:
    """Why the job ended for good: an invalid attempt is never retried, whatever retries
    it had left, since running it again as it is would fail the same way."""
    kind = event.kind
    assert kind is not None  # BURIED
    if kind is ErrorKind.UNDELIVERED:
        return f"never run: {event.reason}; replay it (`jetjobs dlq replay`) to run it now"
    failed = f"attempt {event.attempt} failed ({kind.value}: {event.reason})"
    if kind is ErrorKind.INVALID:
        return (
            f"{failed}: it cannot run as it is, so it is not retried; fix what the reason names, "
            "then replay it (`jetjobs dlq replay`)"
        )
    return f"{failed} and no retry is left"
