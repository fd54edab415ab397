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


RELEASE_DELAY = 1.0
"""Seconds a released message waits before it is delivered again: another executor
takes it soon, yet an executor that is always too slow cannot spin on it."""


@dataclass(frozen=True)
class Release:
    """This executor was too slow to acknowledge: let another one take the message, after `delay`."""

    reason: str
    delay: float = RELEASE_DELAY


Gate = Refuse | Release | None


def expired(
    message: JobMessage, delivered: int, now: datetime, retry_due: datetime | None = None
) -> str | None:
    """Why a message is too old to run, or None. A first delivery must be taken within
    `timeout` of dispatch; a retry (or a job handed back) within `timeout` of when it
    was due (`retry_due`), past which the store's reaper ends it; a redelivery with no
    known due time was taken in time before. Raises OverflowError when its deadline is
    past any date (the contract's bounds rule that out)."""
    if delivered == 1:
        deadline = message.dispatched_at + timedelta(seconds=message.timeout)
        if now <= deadline:
            return None
        return (
            f"not taken within {message.timeout:g} s of dispatch "
            f"(dispatched {message.dispatched_at.isoformat()}, received {now.isoformat()})"
        )
    if retry_due is None or now <= retry_due + timedelta(seconds=message.timeout):
        return None
    return (
        f"no executor of pool `{message.pool}` took the retry within {message.timeout:g} s of when it "
        f"was due (due {retry_due.isoformat()}, received {now.isoformat()})"
    )


def no_deadline(message: JobMessage, error: Exception) -> str:
    """Why a message whose take-by time cannot be computed never runs: checked on
    every delivery, the error would otherwise repeat for ever."""
    return (
        f"timeout {message.timeout:g} s from dispatched_at {message.dispatched_at.isoformat()} "
        f"is past any date ({error}): publish it with a shorter timeout or an earlier time"
    )


def ack_overdue(message: JobMessage, control: Control, now: float) -> str | None:
    """Why this executor may no longer acknowledge the message, or None: past its
    `timeout_ack` another executor may already hold it."""
    waited = now - control.received
    if waited <= message.timeout_ack:
        return None
    return f"not acknowledged within {message.timeout_ack:g} s of receipt (took {waited:.1f} s)"


def check(
    message: JobMessage,
    delivered: int,
    control: Control,
    cancelled: Mapping[str, str],
    now: datetime,
    retry_due: datetime | None = None,
) -> Gate:
    """The first reason not to run the message, in order: cancelled, too late, too slow."""
    reason = control.cancelled or cancelled.get(message.job_id)
    if reason is not None:
        return Refuse(ErrorKind.CANCELLED, f"cancelled before it started: {reason}")
    try:
        too_late = expired(message, delivered, now, retry_due)
    except (OverflowError, ValueError) as error:
        return Refuse(ErrorKind.INVALID, no_deadline(message, error))
    if too_late is not None:
        return Refuse(ErrorKind.UNDELIVERED, too_late)
    overdue = ack_overdue(message, control, asyncio.get_running_loop().time())
    if overdue is not None:
        return Release(overdue)
    return None
