"""The flow outbox: what a flow step publishes (job messages, flow events) is
written in the step's transaction and deleted once JetStream has it, so a store
that stops between its commit and its publish loses nothing. Sending again (at
start, or when a job event comes back unacked) reuses each message's
`Nats-Msg-Id`, so JetStream keeps one copy; a job the store has recorded is
not sent again at all."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bus import Publisher
from bus.publish import encode
from contracts import subjects as s
from contracts.flows import FlowEvent, flow_events_subject
from contracts.messages import JobMessage

from .db import Db
from .flow_queries import FlowQueries, OutboxItem

DRAIN_BATCH = 1000
"""Outbox rows sent per round when draining."""


@dataclass
class Work:
    """What a step leaves to publish once it commits: job messages, then flow events."""

    messages: list[JobMessage] = field(default_factory=list)
    events: list[FlowEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Kept:
    """A step's work as written to the outbox: its rows' ids and what they hold."""

    ids: list[int]
    items: list[OutboxItem]
    messages: list[JobMessage]


def _items(work: Work) -> list[OutboxItem]:
    jobs = [
        ("job", s.dispatch_subject(m.company, m.pool), s.dispatch_msg_id(m.job_id, m.attempt), _text(m))
        for m in work.messages
    ]
    events = [
        ("event", flow_events_subject(e.company, e.run_id), f"flow.{uuid.uuid4()}", _text(e))
        for e in work.events
    ]
    return jobs + events


def _text(model: Any) -> str:
    return encode(model).decode()


async def keep(conn: Db, work: Work) -> Kept:
    """Write a step's work into the outbox, inside the step's transaction."""
    items = _items(work)
    return Kept(await FlowQueries(conn).put_outbox(items), items, work.messages)


class Outbox:
    """Sends kept work after its commit, and whatever an earlier store left unsent."""

    def __init__(self, pool: Any, publisher: Publisher) -> None:
        self._pool = pool
        self._publisher = publisher

    async def send(self, kept: Kept) -> None:
        """Publish a committed step's work (from memory), then forget it."""
        await self._publish(kept.messages, [i for i in kept.items if i[0] == "event"])
        await FlowQueries(self._pool).delete_outbox(kept.ids)

    async def drain(self) -> int:
        """Send every unsent row, oldest first; how many were sent."""
        sent = 0
        while True:
            flows = FlowQueries(self._pool)
            rows = await flows.outbox(DRAIN_BATCH)
            if not rows:
                return sent
            messages = [JobMessage.model_validate_json(i[3]) for _, i in rows if i[0] == "job"]
            known = await flows.known_jobs([m.job_id for m in messages])
            await self._publish(
                [m for m in messages if m.job_id not in known], [i for _, i in rows if i[0] == "event"]
            )
            await flows.delete_outbox([row_id for row_id, _ in rows])
            sent += len(rows)

    async def _publish(self, messages: list[JobMessage], events: list[OutboxItem]) -> None:
        if messages:
            await self._publisher.dispatch(messages)
        if events:
            await self._publisher.publish_all(
                [(subject, payload.encode(), msg_id) for _, subject, msg_id, payload in events]
            )
