"""Turning a job out of retries into a dead letter (a message that is not a valid
job is filed by `bus.letters`, as the store files what it refuses)."""

from __future__ import annotations

from typing import Any

from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent

BURIED = frozenset({ErrorKind.EXIT, ErrorKind.TIMEOUT, ErrorKind.INVALID})
"""Failures that end a job for good after it was tried: what the dead letters keep."""


def exhausted_letter(msg: Any, event: JobEvent) -> DeadLetter | None:
    """The dead letter of a job whose last attempt failed with no retry left, or None."""
    if event.status is not Status.ERROR or not event.final or event.kind not in BURIED:
        return None
    data: bytes = msg.data or b""
    return DeadLetter(
        company=event.company,
        job_id=event.job_id,
        reason=f"attempt {event.attempt} failed ({event.kind.value}: {event.reason}) and no retry is left",
        subject=msg.subject,
        payload=data.decode("utf-8", errors="replace"),
        headers=dict(msg.headers or {}),
        at=event.at,
    )
