"""Publishing to JetStream: deduplicated, retried on transient errors, pipelined."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import structlog
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError
from pydantic import BaseModel

from contracts import subjects as s
from contracts.messages import DeadLetter, JobEvent, JobMessage

from .infra import Layout, ensure_consumer
from .output import OutputPublisher, output_publisher

log = structlog.get_logger("jetjobs.bus")

TRANSIENT = (NoRespondersError, NoStreamResponseError, ServiceUnavailableError, NatsTimeout, TimeoutError)
"""Errors during a leader change, reconnect or restart: retried with the same msg id."""


class PublishFailed(Exception):
    """JetStream did not acknowledge a publish within the retry budget."""


def encode(model: BaseModel) -> bytes:
    """The wire form of every payload: the model's JSON."""
    return model.model_dump_json(exclude_none=True).encode()


def event_msg_id(event: JobEvent) -> str:
    """Dedup key of an event: one per (job, attempt, status)."""
    return f"{event.job_id}.{event.attempt}.{event.status.value}"


class Publisher:
    """Puts job messages, events and dead letters into their streams.

    Every publish carries a `Nats-Msg-Id`, so retrying after an unknown outcome
    (timeout, reconnect) can never store a second copy."""

    def __init__(self, js: JetStreamContext, layout: Layout, *, budget: float = 60.0) -> None:
        self._js = js
        self._layout = layout
        self._budget = budget
        self._pools: set[str] = set()

    async def ensure_pools(self, pools: Iterable[str]) -> None:
        """Interest retention keeps a message only for consumers that exist when
        it is stored: make sure each pool's consumer exists before its first job."""
        for pool in set(pools) - self._pools:
            await ensure_consumer(self._js, s.DISPATCH_STREAM, self._layout.pool_consumer(pool))
            self._pools.add(pool)

    async def publish(
        self, subject: str, payload: bytes, msg_id: str, headers: dict[str, str] | None = None
    ) -> PubAck:
        """One publish, retried on transient errors until acknowledged or out of budget."""
        deadline = asyncio.get_running_loop().time() + self._budget
        delay = 0.05
        while True:
            try:
                return await self._js.publish(
                    subject, payload, timeout=5, headers={"Nats-Msg-Id": msg_id, **(headers or {})}
                )
            except TRANSIENT as error:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise PublishFailed(f"publish to {subject} not acknowledged: {error!r}") from error
                log.warning("bus.publish_retry", subject=subject, error=repr(error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _pipelined(self, items: Sequence[tuple[str, bytes, str]]) -> list[PubAck]:
        """Send all, then await all acks; any failure falls back to the retrying path."""
        futures = [
            await self._js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
            for subject, payload, msg_id in items
        ]
        # An ack future has no deadline of its own: one lost across a reconnect would wait forever.
        results = await asyncio.gather(*(asyncio.wait_for(f, 5) for f in futures), return_exceptions=True)
        acks: list[PubAck] = []
        for item, result in zip(items, results, strict=True):
            acks.append(result if isinstance(result, PubAck) else await self.publish(*item))
        return acks

    async def dispatch(self, messages: Sequence[JobMessage]) -> list[bool]:
        """Publish job messages; returns, per message, whether it was a duplicate."""
        await self.ensure_pools(m.pool for m in messages)
        items = [
            (s.dispatch_subject(m.company, m.pool), encode(m), s.dispatch_msg_id(m.job_id, m.attempt))
            for m in messages
        ]
        if len(items) == 1:
            return [(await self.publish(*items[0])).duplicate is True]
        return [ack.duplicate is True for ack in await self._pipelined(items)]

    async def event(self, event: JobEvent) -> None:
        """Publish one lifecycle event and wait until it is stored."""
        await self.publish(s.events_subject(event.company, event.job_id), encode(event), event_msg_id(event))

    def output(self, company: str, job_id: str, attempt: int) -> OutputPublisher:
        """A pipelined publisher for one attempt's live output chunks."""
        return output_publisher(self._js, company, job_id, attempt)

    async def dead(self, letter: DeadLetter, msg_id: str) -> None:
        """Publish a dead letter (dedup by the original message's identity)."""
        await self.publish(s.dead_subject(letter.company), encode(letter), msg_id)
