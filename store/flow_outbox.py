"""The flow outbox: what a flow step publishes (job messages, flow events) and the
jobs a cancel kills are written in the step's transaction and deleted once done,
so a store that stops between its commit and its publish (or its kills) loses
nothing. Sending again (at start, or after a failed publish or kill) reuses each
message's `Nats-Msg-Id`, so JetStream keeps one copy; a job the store has
recorded is not sent again at all; a kill is safe to repeat."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bus import Publisher
from bus.publish import encode
from contracts import subjects as s
from contracts.flows import FlowEvent, flow_events_subject
from contracts.messages import JobMessage

from .db import Db
from .flow_queries import FlowQueries, OutboxItem

log = structlog.get_logger("jetjobs.flows")

DRAIN_BATCH = 1000
"""Outbox rows sent per round when draining."""

Kill = Callable[[str], Awaitable[bool]]
"""Stops a job: True once asked, False when it had ended; raises when it cannot now."""

KILL_SUBJECT = "job.cancel"
"""What a `kill` row names as its subject: the operation that stops its job."""


@dataclass
class Work:
    """What a step leaves to do once it commits: publish job messages, then flow
    events (quick, pipelined), then kill jobs (one by one)."""

    messages: list[JobMessage] = field(default_factory=list)
    events: list[FlowEvent] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    """The running jobs of a run the step cancelled."""


@dataclass(frozen=True)
class Kept:
    """A step's work as written to the outbox: its rows' ids and what they hold."""

    ids: list[int]
    items: list[OutboxItem]
    messages: list[JobMessage]


@dataclass(frozen=True)
class Sent:
    """What sending did: rows done and forgotten, jobs asked to stop, and kills that
    failed (their rows stay for the next drain)."""

    rows: int = 0
    killed: list[str] = field(default_factory=list)
    failed: int = 0

    def __add__(self, other: Sent) -> Sent:
        return Sent(self.rows + other.rows, self.killed + other.killed, self.failed + other.failed)


def _items(work: Work) -> list[OutboxItem]:
    jobs = [
        ("job", s.dispatch_subject(m.company, m.pool), s.dispatch_msg_id(m.job_id, m.attempt), _text(m))
        for m in work.messages
    ]
    events = [
        ("event", flow_events_subject(e.company, e.run_id), f"flow.{uuid.uuid4()}", _text(e))
        for e in work.events
    ]
    kills = [("kill", KILL_SUBJECT, job_id, job_id) for job_id in work.kills]
    return jobs + events + kills


def _events(rows: Sequence[tuple[int, OutboxItem]]) -> list[OutboxItem]:
    return [item for _, item in rows if item[0] == "event"]


def _text(model: Any) -> str:
    return encode(model).decode()


async def keep(conn: Db, work: Work) -> Kept:
    """Write a step's work into the outbox, inside the step's transaction."""
    items = _items(work)
    return Kept(await FlowQueries(conn).put_outbox(items), items, work.messages)


class Outbox:
    """Does kept work after its commit, and whatever an earlier store left undone."""

    def __init__(self, pool: Any, publisher: Publisher, kill: Kill) -> None:
        self._pool = pool
        self._publisher = publisher
        self._kill = kill

    async def send(self, kept: Kept) -> Sent:
        """Publish a committed step's work (from memory) and kill its jobs, then forget it."""
        rows = list(zip(kept.ids, kept.items, strict=True))
        await self._publish(kept.messages, _events(rows))
        return await self._finish(rows)

    async def drain(self) -> Sent:
        """Do every row left undone, oldest first; a kill that fails now is passed
        over, so it holds up nothing behind it."""
        sent = Sent()
        after = 0
        while True:
            flows = FlowQueries(self._pool)
            rows = await flows.outbox(DRAIN_BATCH, after)
            if not rows:
                return sent
            messages = [JobMessage.model_validate_json(i[3]) for _, i in rows if i[0] == "job"]
            known = await flows.known_jobs([m.job_id for m in messages])
            await self._publish([m for m in messages if m.job_id not in known], _events(rows))
            sent += await self._finish(rows)
            after = rows[-1][0]

    async def _finish(self, rows: Sequence[tuple[int, OutboxItem]]) -> Sent:
        """Kill the jobs the rows name (their messages and events are out), then
        forget every row but those of the kills that failed."""
        killed: list[str] = []
        failed: set[int] = set()
        for row_id, (kind, _, job_id, _) in rows:
            if kind != "kill":
                continue
            try:
                if await self._kill(job_id):
                    killed.append(job_id)
            except Exception as error:  # kept: the next drain tries again
                log.warning("flow.kill_failed", job_id=job_id, error=repr(error))
                failed.add(row_id)
        await FlowQueries(self._pool).delete_outbox([row_id for row_id, _ in rows if row_id not in failed])
        return Sent(len(rows) - len(failed), killed, len(failed))

    async def _publish(self, messages: list[JobMessage], events: list[OutboxItem]) -> None:
        if messages:
            await self._publisher.dispatch(messages)
        if events:
            await self._publisher.publish_all(
                [(subject, payload.encode(), msg_id) for _, subject, msg_id, payload in events]
            )
