"""The checks a received job message must pass before this executor acknowledges it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.enums import ErrorKind
from contracts.messages import JobMessage

from .control import Control


@dataclass(frozen=True)
class Refuse:
    """The job must never run: it ends now with `kind` and the message is terminated."""

    kind: ErrorKind
    reason: str


@dataclass(frozen=True)
class Release:
    """This executor was too slow to acknowledge: let another one take the message."""

    reason: str


Gate = Refuse | Release | None


def expired(message: JobMessage, delivered: int, now: datetime) -> str | None:
    """Why a message is too old to run, or None. Only a first delivery can be late:
    a redelivery (retry, hand-back) was taken in time before."""
    deadline = message.dispatched_at + timedelta(seconds=message.timeout)
    if delivered > 1 or now <= deadline:
        return None
    return (
        f"not taken within {message.timeout:g} s of dispatch "
        f"(dispatched {message.dispatched_at.isoformat()}, received {now.isoformat()})"
    )


def ack_overdue(message: JobMessage, control: Control, now: float) -> str | None:
    """Why this executor may no longer acknowledge the message, or None: past its
    `timeout_ack` another executor may already hold it."""
    waited = now - control.received
    if waited <= message.timeout_ack:
        return None
    return f"not acknowledged within {message.timeout_ack:g} s of receipt (took {waited:.1f} s)"


def check(
    message: JobMessage, delivered: int, control: Control, cancelled: Mapping[str, str], now: datetime
) -> Gate:
    """The first reason not to run the message, in order: cancelled, too late, too slow."""
    reason = control.cancelled or cancelled.get(message.job_id)
    if reason is not None:
        return Refuse(ErrorKind.CANCELLED, f"cancelled before it started: {reason}")
    too_late = expired(message, delivered, now)
    if too_late is not None:
        return Refuse(ErrorKind.UNDELIVERED, too_late)
    overdue = ack_overdue(message, control, asyncio.get_running_loop().time())
    if overdue is not None:
        return Release(overdue)
    return None
