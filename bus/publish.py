"""Publishing to JetStream: deduplicated, retried on transient errors, pipelined."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import structlog
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, PubAck
from nats.js.errors import NoStreamResponseError, NotFoundError, ServiceUnavailableError
from pydantic import BaseModel

from contracts import subjects as s
from contracts.messages import DeadLetter, JobEvent, JobMessage

from .clock import ClockCheck
from .heal import Healer
from .inbox import AckInbox, Framed, Refused
from .infra import MAX_MESSAGE_BYTES, Layout, ensure_consumer
from .output import OutputPublisher

log = structlog.get_logger("jetjobs.bus")

TRANSIENT = (NoRespondersError, NoStreamResponseError, ServiceUnavailableError, NatsTimeout, TimeoutError)
"""Errors during a leader change, reconnect or restart: retried with the same msg id."""


REMEMBERED = 4096
"""Dead letters' nonces one publisher keeps, by what they are letters of: burying a
message again (its redelivery, the reaper's next round) reuses its msg id, so the
stream keeps one copy."""

HEAL_WAIT = 1.0
"""Seconds before asking again for a pool's consumer whose stream could not be made yet."""


HEADER_ROOM = 1024
"""Bytes kept for a job message's headers (its msg id) within one NATS message."""


class TooLarge(ValueError):
    """A job message bigger than one NATS message may be: no retry would send it."""


class PublishFailed(Exception):
    """JetStream did not acknowledge a publish within the retry budget."""


def encode(model: BaseModel) -> bytes:
    """The wire form of every payload: the model's JSON, `model_dump_json(exclude_none=True)`
    as bytes straight from its serializer (not made text and encoded again)."""
    return model.__pydantic_serializer__.to_json(model, exclude_none=True)


def new_nonce() -> str:
    """The secret part of a msg id: 64 random bits, drawn once per attempt (or publish).

    JetStream drops any message whose msg id it saw within the duplicate window,
    whatever its subject, and a job id is predictable (a slot's, a keyed run's): an id
    another company could work out would let it publish first, on its own subject, and
    have the real message answered "duplicate" and never stored. Retries of a publish
    reuse its id, so it is still stored once; copies from different publishers are
    the projection's to recognise (by job, attempt and status; a dead letter by its
    original message)."""
    return secrets.token_hex(8)


def event_msg_id(event: JobEvent, nonce: str | None = None) -> str:
    """Dedup id of an event: one per (job, attempt, status) of one publisher, which
    keeps `nonce` for the attempt (a fresh one when none is given)."""
    return f"{event.job_id}.{event.attempt}.{event.status.value}.{nonce or new_nonce()}"


class Publisher:
    """Puts job messages, events and dead letters into their streams.

    Every publish carries a `Nats-Msg-Id`, so retrying after an unknown outcome
    (timeout, reconnect) can never store a second copy. Only dispatches have ids
    anyone can tell (trusted publishers alone may dispatch); the others end with a
    nonce (`new_nonce`)."""

    def __init__(
        self, nc: Client, js: JetStreamContext, layout: Layout, healer: Healer, *, budget: float = 60.0
    ) -> None:
        self._js = js
        self._layout = layout
        self._healer = healer
        self._budget = budget
        self._pools: set[str] = set()
        self._pools_generation = healer.generation
        self._nc = nc
        self._inbox = AckInbox(nc)
        self._letter_nonces: dict[str, str] = {}
        self.clock: ClockCheck | None = None
        """Set by a service that stamps the job messages it dispatches with its own
        clock (the store): it measures that clock from them (`bus.clock`)."""

    async def ensure_pools(self, pools: Iterable[str]) -> None:
        """Interest retention keeps a message only for consumers that exist when
        it is stored: make sure each pool's consumer exists before its first job,
        and again after a reconnect or once the healer made anything again (the
        server may have lost it with its stream; the healer's check, awaited first,
        makes again the streams and every pool consumer this publisher made)."""
        if self._pools_generation != self._healer.generation:
            self._pools_generation = self._healer.generation
            self._pools.clear()
            await self._healer.restore("a dispatch after a reconnect or a repair", quiet=True)
        for pool in set(pools) - self._pools:
            config = self._layout.pool_consumer(pool)
            self._healer.declare(s.DISPATCH_STREAM, config)
            await self._ensure_pool(config)
            self._pools.add(pool)

    async def _ensure_pool(self, config: ConsumerConfig) -> None:
        """Make a pool's consumer; when its stream is gone, have the healer make both,
        trying for as long as a publish would."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._budget
        while True:
            try:
                return await ensure_consumer(self._js, s.DISPATCH_STREAM, config)
            except NotFoundError as error:
                said = f"consumer {config.durable_name} cannot be made: {_described(error)}"
                if loop.time() + HEAL_WAIT > deadline:
                    raise PublishFailed(said) from error
                if not await self._healer.restore(said):
                    await asyncio.sleep(HEAL_WAIT)

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
                    raise PublishFailed(
                        f"publish to {subject} not acknowledged: {_described(error)}"
                    ) from error
                log.warning("bus.publish_retry", subject=subject, error=_described(error))
                if isinstance(error, NoStreamResponseError):
                    await self._healer.restore(f"no stream answered a publish to {subject}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def dispatch(self, messages: Sequence[JobMessage]) -> list[bool]:
        """Publish job messages; returns, per message, whether it was a duplicate. Now
        and then the last one stored is offered to `clock` (its `dispatched_at` is this
        host's time, which executors judge lateness by)."""
        await self.ensure_pools(m.pool for m in messages)
        items = [
            (s.dispatch_subject(m.company, m.pool), encode(m), s.dispatch_msg_id(m.job_id, m.attempt))
            for m in messages
        ]
        for message, (_, payload, _) in zip(messages, items, strict=True):
            if (refusal := self.oversize(message.job_id, len(payload))) is not None:
                raise TooLarge(refusal)
        clock = self.clock if self.clock is not None and self.clock.due() else None
        before = clock.clock() if clock is not None else None
        acks = [await self.publish(*items[0])] if len(items) == 1 else await self.publish_all(items)
        if clock is not None and before is not None and acks and not acks[-1].duplicate:
            clock.offer(acks[-1].stream, acks[-1].seq, before, clock.clock())
        return [ack.duplicate is True for ack in acks]

    def oversize(self, job_id: str, size: int) -> str | None:
        """Why a job message of `size` bytes cannot be sent (None when it can): more than
        the server's `max_payload` or the dispatch stream's largest message, less the
        room its headers take."""
        room = min(self._nc.max_payload, MAX_MESSAGE_BYTES) - HEADER_ROOM
        if size <= room:
            return None
        return (
            f"job {job_id}'s message would be {size:,} bytes, more than one NATS message may carry ({room:,})"
        )

    async def publish_all(self, items: Sequence[tuple[str, bytes, str]]) -> list[PubAck]:
        """Publish (subject, payload, msg id) messages pipelined: all are put on the
        wire, then their acks awaited (a thousand awaited one by one take a thousand
        round trips)."""
        return await self.confirm(await self.send_all(items))

    async def event(self, event: JobEvent, nonce: str | None = None) -> None:
        """Publish one lifecycle event and wait until it is stored (`nonce`: the
        attempt's, when its publisher keeps one)."""
        await self.publish(*_event_item(event, nonce or new_nonce()))

    def trail(self, nonce: str | None = None) -> EventTrail:
        """A pipelined, ordered publisher for the events of one attempt, under the
        attempt's `nonce` (a fresh one when none is given)."""
        return EventTrail(self, nonce or new_nonce())

    async def send(self, subject: str, payload: bytes, msg_id: str) -> Sent:
        """Put one message on the wire without waiting for it to be stored."""
        await self._open()
        framed = self._inbox.frame(subject, payload, msg_id)
        return _sent(framed, await self._inbox.send_one(framed))

    async def send_all(self, items: Sequence[tuple[str, bytes, str]]) -> list[Sent]:
        """Put (subject, payload, msg id) messages on the wire in one go, without
        waiting for them to be stored."""
        await self._open()
        framed = [self._inbox.frame(*item) for item in items]
        handed = await self._inbox.send(framed)
        return [_sent(one, outcome) for one, outcome in zip(framed, handed, strict=True)]

    async def _open(self) -> None:
        if self._inbox.is_open:
            return
        try:
            await self._inbox.open()
        except Exception as error:  # what is sent is refused; `confirm` publishes it, awaited
            log.warning("bus.publish_retry", error=_described(error))

    async def confirm(self, sent: Sequence[Sent]) -> list[PubAck]:
        """Wait until every message sent is stored, in order: one whose ack failed or
        did not come (the inbox gives up on it after `inbox.ACK_WAIT`: an ack lost in a
        reconnect never comes) is published again (same msg id, so never twice)
        before the next is looked at. Raises `PublishFailed` when one cannot be stored."""
        acks = []
        for one in sent:
            if one.future is not None:
                with contextlib.suppress(Exception):  # failed: published again below
                    acks.append(await one.future)
                    continue
            self._inbox.forget(one.framed)
            acks.append(await self.publish(one.framed.subject, one.framed.payload, one.framed.msg_id))
        return acks

    def output(self, company: str, job_id: str, attempt: int) -> OutputPublisher:
        """A pipelined publisher for one attempt's live output chunks (their msg ids
        per attempt, stream and position, under a nonce of the attempt's own)."""
        prefix = f"{job_id}.{attempt}.{new_nonce()}"
        return OutputPublisher(self._js, s.logs_subject(company, job_id), prefix)

    async def dead(self, letter: DeadLetter, origin: str, nonce: str | None = None) -> None:
        """Publish a dead letter; its msg id is `origin` (what it is the letter of) and
        a nonce: the attempt's, or the one this publisher drew for `origin`. Two
        publishers burying one message each store a copy: the store records the letter
        of an original message once."""
        msg_id = f"{origin}.{nonce or self._letter_nonce(origin)}"
        await self.publish(s.dead_subject(letter.company), encode(letter), msg_id)

    def _letter_nonce(self, origin: str) -> str:
        """The nonce of `origin`'s letter, the same while among the `REMEMBERED` latest."""
        nonce = self._letter_nonces.pop(origin, None) or new_nonce()
        self._letter_nonces[origin] = nonce
        if len(self._letter_nonces) > REMEMBERED:
            del self._letter_nonces[next(iter(self._letter_nonces))]
        return nonce


def _described(error: Exception) -> str:
    """An error as a log line or message shows it: with the server's own words (a
    JetStream error's `repr` drops them, e.g. "insufficient resources" of a full disk)."""
    return str(error) or type(error).__name__


class Sent(NamedTuple):
    """A message on its way into a stream, with the future of its ack (None: not sent)."""

    framed: Framed
    future: asyncio.Future[PubAck] | None


def _sent(framed: Framed, outcome: asyncio.Future[PubAck] | Refused) -> Sent:
    if isinstance(outcome, Refused):  # not sent: `confirm` publishes it again, awaited
        log.warning("bus.publish_retry", subject=framed.subject, error=str(outcome))
        return Sent(framed, None)
    return Sent(framed, outcome)


class EventTrail:
    """The lifecycle events of one attempt, published in order without waiting
    for each to be stored: `add` sends, `close` sends the last one only once
    everything before it is stored, and returns once that one is stored too.
    So the final event is always last in the stream, and nothing is settled
    before it is safe: on a publish that failed, `close` raises."""

    def __init__(self, publisher: Publisher, nonce: str) -> None:
        self._publisher = publisher
        self._nonce = nonce
        self._sent: list[Sent] = []

    async def add(self, event: JobEvent) -> None:
        """Send an event; its ack is checked at `close`."""
        self._sent.append(await self._publisher.send(*_event_item(event, self._nonce)))

    async def stored(self) -> None:
        """Wait until the events sent so far are stored (raises as `close` does)."""
        sent, self._sent = self._sent, []
        await self._publisher.confirm(sent)

    async def close(self, final: JobEvent) -> None:
        """Wait for the events sent so far, then publish `final` and wait for it."""
        sent, self._sent = self._sent, []
        await self._publisher.confirm(sent)
        await self._publisher.confirm([await self._publisher.send(*_event_item(final, self._nonce))])


def _event_item(event: JobEvent, nonce: str) -> tuple[str, bytes, str]:
    return s.events_subject(event.company, event.job_id), encode(event), event_msg_id(event, nonce)
