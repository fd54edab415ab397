"""Building the lifecycle events of one attempt.

Pure functions of the attempt and what happened, so the job code only decides
*which* event to publish."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bus import encode
from bus.infra import MAX_MESSAGE_BYTES
from bus.publish import new_nonce
from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent, JobMessage

from .output import Capture

EVENT_BUDGET = MAX_MESSAGE_BYTES - 64 * 1024
"""Largest encoded event; output is cut further to fit (JSON escaping can grow it)."""


def utcnow() -> datetime:
    """The wall clock, timezone-aware as every contract timestamp must be."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Attempt:
    """One run of a job message, identified by its fencing token `number`."""

    message: JobMessage
    number: int
    runner: str
    nonce: str = field(default_factory=new_nonce)
    """The secret in the msg ids of this attempt's events and dead letter, which every
    retry of their publishes keeps (`bus.publish.new_nonce`)."""
    spared: int = 0
    """Earlier attempts of its message that spend none of its retries (`budget`)."""

    def event(self, status: Status, **fields: Any) -> JobEvent:
        """An event of this attempt, stamped now."""
        return JobEvent(
            job_id=self.message.job_id,
            company=self.message.company,
            attempt=self.number,
            status=status,
            at=utcnow(),
            runner=self.runner,
            **fields,
        )


@dataclass(frozen=True)
class Result:
    """What a finished process left behind."""

    begin: datetime
    end: datetime
    stdout: Capture
    stderr: Capture
    exit_code: int | None = None
    results: dict[str, str] = field(default_factory=dict)


def acknowledged(attempt: Attempt) -> JobEvent:
    """This runner has taken the job."""
    return attempt.event(Status.ACKNOWLEDGED)


def started(attempt: Attempt, pid: int, begin: datetime) -> JobEvent:
    """The process is running."""
    return attempt.event(Status.STARTED, pid=pid, begin=begin)


def rejected(attempt: Attempt, kind: ErrorKind, reason: str) -> JobEvent:
    """The job ended without running; nothing will retry it."""
    return attempt.event(Status.ERROR, kind=kind, reason=reason, final=True)


def handed_back(attempt: Attempt, reason: str, retry_in: float) -> JobEvent:
    """The job did not start here for a reason of the moment, not its own: the
    message goes back to the pool (`lost`, ended now, not final)."""
    return attempt.event(
        Status.ERROR, kind=ErrorKind.LOST, reason=reason, end=utcnow(), final=False, retry_in=retry_in
    )


def processed(attempt: Attempt, result: Result) -> JobEvent:
    """The process exited 0."""
    return _fitted(lambda limit: _with_output(attempt, Status.PROCESSED, result, limit, final=True))


def failed(
    attempt: Attempt, kind: ErrorKind, reason: str, result: Result, retry_in: float | None
) -> JobEvent:
    """The attempt ended in error; `retry_in` is None when no attempt follows."""
    return _fitted(
        lambda limit: _with_output(
            attempt,
            Status.ERROR,
            result,
            limit,
            kind=kind,
            reason=reason,
            final=retry_in is None,
            retry_in=retry_in,
        )
    )


def _with_output(
    attempt: Attempt, status: Status, result: Result, limit: int | None, **fields: Any
) -> JobEvent:
    return attempt.event(
        status,
        exit_code=result.exit_code,
        results=result.results,
        begin=result.begin,
        end=result.end,
        stdout=result.stdout.text(limit),
        stderr=result.stderr.text(limit),
        **fields,
    )


ESCAPED = 6
"""Most bytes one character can take in JSON (a control character as \\u00XX)."""
FIELDS = 4096
"""More than the encoded fields of an event other than its texts can take."""


def _surely_fits(event: JobEvent) -> bool:
    """Whether the event fits without encoding it to measure (the usual case)."""
    texts = [
        event.stdout or "",
        event.stderr or "",
        event.reason or "",
        *event.results,
        *event.results.values(),
    ]
    return FIELDS + ESCAPED * sum(map(len, texts)) <= EVENT_BUDGET


def _fitted(build: Callable[[int | None], JobEvent]) -> JobEvent:
    """The event with as much output as fits in one NATS message."""
    event = build(None)
    if _surely_fits(event):
        return event
    limit = max(len(event.stdout or ""), len(event.stderr or ""))
    while len(encode(event)) > EVENT_BUDGET and limit > 0:
        limit //= 2
        event = build(limit)
    return event
