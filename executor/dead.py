"""Turning a message that is not a valid job, or a job out of retries, into a dead letter."""

from __future__ import annotations

from typing import Any

from bus.letters import company_of, dead_letter, job_id_of
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent

__all__ = ["company_of", "dead_letter", "exhausted_letter", "job_id_of"]
"""An invalid message's letter is built by `bus.letters`, as the store builds its own."""


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
