"""Turning due slots into job messages and publishing them, with one closed
outcome per slot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from bus import Publisher, PublishFailed
from contracts.dispatch import job_message, scheduled_job_id
from contracts.errors import describe
from contracts.messages import JobMessage

from .policy import Due, jitter


@dataclass(frozen=True)
class Firing:
    """A due slot with the message that runs it."""

    due: Due
    message: JobMessage
    replaces: str | None = None
    """The job id of the run this one replaces (overlap `replace`), to be cancelled first."""


@dataclass(frozen=True)
class Unbuildable:
    """A slot whose template does not make a valid job message."""

    due: Due
    reason: str


@dataclass(frozen=True)
class Published:
    """JetStream stored the message (or already had it: `duplicate`)."""

    duplicate: bool


@dataclass(frozen=True)
class Failed:
    """JetStream did not take the message; the slot must be tried again."""

    reason: str


Outcome = Published | Failed


def build(due: Due, now: datetime, replaces: str | None = None) -> Firing | Unbuildable:
    """The message of one slot; its job id is derived from (template, slot), its
    scheduled time is the slot plus the template's jitter."""
    template, slot = due.template, due.slot
    try:
        message = job_message(template, job_id=scheduled_job_id(template.id, slot), slot=slot, now=now)
    except ValidationError as error:
        return Unbuildable(due, f"template {template.id} makes an invalid job message: {describe(error)}")
    delay = jitter(template, slot)
    if delay:
        message = message.model_copy(update={"scheduled_at": slot + delay})
    return Firing(due, message, replaces)


async def publish(publisher: Publisher, firings: Sequence[Firing]) -> list[Outcome]:
    """Publish all firings pipelined. When the server rejects part of a batch,
    each message is tried alone, so one bad template cannot hold back the rest;
    an unreachable server (PublishFailed) fails the whole batch at once."""
    if not firings:
        return []
    try:
        duplicates = await publisher.dispatch([f.message for f in firings])
    except PublishFailed as error:
        return [Failed(str(error))] * len(firings)
    except Exception as error:
        if len(firings) == 1:
            return [Failed(f"{type(error).__name__}: {error}")]
        return [outcome for firing in firings for outcome in await publish(publisher, [firing])]
    return [Published(duplicate) for duplicate in duplicates]
