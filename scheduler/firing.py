"""Turning due slots into job messages, encoded ahead of their instant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from bus.handoff import Prepared
from contracts.dispatch import job_message, scheduled_job_id
from contracts.errors import describe
from contracts.flows import FlowStart
from contracts.messages import JobMessage

from .flow_fire import flow_start
from .policy import Due, jitter


@dataclass(frozen=True, slots=True)
class Firing:
    """A due slot with the message that runs it, already encoded."""

    due: Due
    message: JobMessage
    prepared: Prepared
    due_at: float
    """The message's scheduled time as a POSIX timestamp (lateness is measured from it)."""


@dataclass(frozen=True, slots=True)
class Unbuildable:
    """A slot whose template does not make a valid job message."""

    due: Due
    reason: str


def build(
    due: Due, now: datetime, prepare: Callable[[JobMessage | FlowStart], Prepared]
) -> Firing | Unbuildable:
    """The message of one slot, encoded by `prepare`; its job id is derived from
    (template, slot), its scheduled time is the slot plus the template's jitter,
    and `now` is when it is to be dispatched. A flow template's slot sends the
    start of a flow run with that id instead."""
    template, slot = due.template, due.slot
    try:
        message = job_message(
            template.template(), job_id=scheduled_job_id(template.id, slot), slot=slot, now=now
        )
    except ValidationError as error:
        return Unbuildable(due, f"template {template.id} makes an invalid job message: {describe(error)}")
    delay = jitter(template, slot)
    if delay:
        message = message.model_copy(update={"scheduled_at": slot + delay})
    flow = due.template.flow
    sent = message if flow is None else flow_start(due, message, flow)
    return Firing(due, message, prepare(sent), message.scheduled_at.timestamp())
