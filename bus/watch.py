"""Following lifecycle events as a client: history first, then live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from contracts import subjects as s
from contracts.messages import JobEvent


async def _decoded(sub: Any) -> AsyncIterator[JobEvent]:
    """The valid events of a subscription (others skipped), unsubscribing at the end."""
    try:
        async for msg in sub.messages:
            try:
                yield JobEvent.model_validate_json(msg.data)
            except ValidationError:
                continue
    finally:
        await sub.unsubscribe()


async def job_events(js: JetStreamContext, subject: str) -> AsyncIterator[JobEvent]:
    """Every event on `subject` (e.g. one job's), from the stream's start, as it
    arrives. Uses one short-lived ordered consumer, removed when iteration ends."""
    sub = await js.subscribe(
        subject, stream=s.EVENTS_STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    async for event in _decoded(sub):
        yield event


async def live_events(nc: Client, subject: str) -> AsyncIterator[JobEvent]:
    """Events on `subject` from now on (no history), over a plain subscription."""
    async for event in _decoded(await nc.subscribe(subject)):
        yield event
