"""Turning a message that is not a valid job into a dead letter."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from bus import Invalid
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def company_of(subject: str) -> str:
    """The company token of `jetjobs.dispatch.<company>.<pool>`, or "unknown"
    when it is not a safe subject token."""
    tokens = subject.split(".")
    if len(tokens) > 2 and _CODE.fullmatch(tokens[2]):
        return tokens[2]
    return "unknown"


def job_id_of(payload: bytes) -> str | None:
    """The job id, when the payload is a JSON object carrying a plausible one."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    job_id = data.get("job_id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and _JOB_ID.fullmatch(job_id) else None


def dead_letter(invalid: Invalid, at: datetime) -> DeadLetter:
    """The original message with the reason it can never run."""
    msg = invalid.msg
    data = msg.data or b""
    return DeadLetter(
        company=company_of(msg.subject),
        job_id=job_id_of(data),
        reason=invalid.reason,
        subject=msg.subject,
        payload=data.decode("utf-8", errors="replace"),
        headers=dict(msg.headers or {}),
        at=at,
    )


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
