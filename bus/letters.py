"""Dead letters of messages that can never be processed: the original bytes with
the reason, filed under the company of the subject they came on (NATS permissions
confine a tenant's subjects, not what its payloads claim). The executor files the
job messages it refuses; the store files what it refuses on streams nobody else reads."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import structlog

from contracts.messages import DeadLetter

from .consume import Invalid, Nak, Term
from .publish import Publisher
from .reply import stream_sequence

log = structlog.get_logger("jetjobs.bus")

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

RETRY_IN = 5.0
"""Seconds before a message whose dead letter could not be published comes back."""


def company_of(subject: str, token: int = 2) -> str:
    """The company token of a subject (`jetjobs.<kind>.<company>…` by default), or
    "unknown" when it is not a safe subject token."""
    tokens = subject.split(".")
    if len(tokens) > token and _CODE.fullmatch(tokens[token]):
        return tokens[token]
    return "unknown"


def job_id_of(payload: bytes) -> str | None:
    """The job id, when the payload is a JSON object carrying a plausible one."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    job_id = data.get("job_id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and _JOB_ID.fullmatch(job_id) else None


def dead_letter(invalid: Invalid, at: datetime, company: str | None = None) -> DeadLetter:
    """The original message with the reason it can never be processed, for `company`
    (by default the subject's company token)."""
    msg = invalid.msg
    data = msg.data or b""
    return DeadLetter(
        company=company or company_of(msg.subject),
        job_id=job_id_of(data),
        reason=invalid.reason,
        subject=msg.subject,
        payload=data.decode("utf-8", errors="replace"),
        headers=dict(msg.headers or {}),
        at=at,
    )


async def bury(publisher: Publisher, stream: str, invalid: Invalid, company: str | None = None) -> Term | Nak:
    """Publish the dead letter of a message taken from `stream`, and say how to settle
    it: terminated once its letter is stored; delivered again later when the publish
    failed (terminated, it would be lost). The letter's msg id is the message's stream
    and sequence with this publisher's nonce for it, so a redelivery here never files it
    twice, and the store records one letter of a message whoever files more."""
    letter = dead_letter(invalid, datetime.now(UTC), company)
    try:
        await publisher.dead(letter, f"{stream}.{stream_sequence(invalid.msg.reply)}")
    except Exception as error:  # NATS away: the message stays, and is buried when it comes back
        log.warning("bus.dead_letter_failed", subject=letter.subject, retry_in=RETRY_IN, error=repr(error))
        return Nak(RETRY_IN)
    return Term(invalid.reason)
