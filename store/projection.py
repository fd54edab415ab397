"""Projecting the bus into Postgres: one loop per durable consumer, one transaction
per batch, acks only after COMMIT.

If Postgres is away, the batch is kept and written again with capped backoff:
nothing is lost and, since every write is idempotent, nothing is doubled. While
a batch is being written, however long that takes, JetStream is told every third
of AckWait that it is still in progress, so it is not handed to anyone else.

A message is projected only if it came on the subject its payload names: NATS
permissions confine a tenant to its own subjects, so a payload naming another
company (or job) is refused like invalid input.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel

from bus import Action, Delivery, Invalid, Publisher, Term, decode, misaddressed, settle
from bus.batches import BatchPuller
from bus.letters import bury
from bus.tasks import stop_tasks
from contracts import subjects as s
from contracts.messages import DeadLetter, JobEvent, JobMessage
from contracts.schedule import SlotRecord

from .db import BAD_DATA, UNAVAILABLE
from .queries import Queries
from .recorded import NOTHING, Recorded
from .retention_fence import PrunedFence
from .slots import project_slots
from .writers import project_dead_letters, project_dispatches, project_events

log = structlog.get_logger("jetjobs.store")

M = TypeVar("M", bound=BaseModel)
Writer = Callable[[Queries, Sequence[Delivery[M]]], Awaitable[Recorded]]
Rejected = list[tuple[Delivery[M], str]]
Observer = Callable[[str, int, Recorded, float], None]
"""Told (feed, deliveries written, what was new in them, seconds) after each commit: metrics."""
Address = Callable[[M, str], str]
"""The subject a payload must have come on, given the one it came on (for a token
the payload does not name, such as a slot record's source)."""


def _dispatch_address(message: JobMessage, _: str) -> str:
    return s.dispatch_subject(message.company, message.pool)


def _events_address(event: JobEvent, _: str) -> str:
    return s.events_subject(event.company, event.job_id)


def _dead_address(letter: DeadLetter, _: str) -> str:
    return s.dead_subject(letter.company)


def _slots_address(record: SlotRecord, subject: str) -> str:
    return s.slots_subject(record.company, record.template_id, subject.rpartition(".")[2])


@dataclass(frozen=True)
class Feed(Generic[M]):
    """One stream the store projects, and how."""

    stream: str
    durable: str
    model: type[M]
    write: Writer[M]
    address: Address[M]
    buries: bool = False
    """Whether the store dead-letters what it refuses: only on streams no other service
    reads (the executor dead-letters bad job messages; a bad dead letter must not make
    another)."""
    fence: PrunedFence | None = None
    """On the feeds that write jobs: drops the late messages of jobs retention removed."""


def feeds() -> list[Feed[Any]]:
    """Dispatch, events, dead letters and slot records, on the store's own durable consumers."""
    return [
        Feed(
            s.DISPATCH_STREAM,
            s.STORE_DISPATCH_CONSUMER,
            JobMessage,
            project_dispatches,
            _dispatch_address,
            fence=PrunedFence(attrgetter("dispatched_at")),
        ),
        Feed(
            s.EVENTS_STREAM,
            s.STORE_EVENTS_CONSUMER,
            JobEvent,
            project_events,
            _events_address,
            buries=True,
            fence=PrunedFence(attrgetter("at")),
        ),
        Feed(s.DEAD_STREAM, s.STORE_DEAD_CONSUMER, DeadLetter, project_dead_letters, _dead_address),
        Feed(s.SLOTS_STREAM, s.STORE_SLOTS_CONSUMER, SlotRecord, project_slots, _slots_address, buries=True),
    ]


class Stopping(Exception):
    """The service is stopping: the batch stays unacked and is redelivered later."""


@dataclass(frozen=True)
class Tuning:
    """Batch size and patience of a projection loop."""

    batch_size: int = 1000
    fetch_wait: float = 1.0
    linger: float = 0.05
    """Seconds a busy loop lets messages gather after starting a write before it takes
    the next batch: fewer, larger transactions under load (group commit). Each
    transaction costs the store and Postgres about a millisecond of CPU whatever
    its size; at 500 jobs/s, 50 ms instead of 20 cut their CPU per job by a quarter.
    A quiet stream (below `busy_from`) never waits."""
    busy_from: int = 4
    """A batch of at least this many messages means the stream is busy: linger after it.
    A quiet stream's messages (fewer at a time) are written at once, and after a full
    batch (a backlog) the next is taken at once too."""
    ack_wait: float = 30.0
    first_backoff: float = 0.5
    max_backoff: float = 10.0


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


def _reason(error: BaseException) -> str:
    return f"cannot be stored: {error}"


class Projection(Generic[M]):
    """Pulls one feed in batches and writes each batch in one transaction."""

    def __init__(
        self,
        feed: Feed[M],
        consumer: BatchPuller,
        pool: Any,
        stopping: asyncio.Event,
        tuning: Tuning,
        observe: Observer | None = None,
        letters: Publisher | None = None,
    ) -> None:
        self._observe = observe
        self._letters = letters if feed.buries else None
        """Where refused messages are dead-lettered; None on feeds that bury nothing."""
        self._feed = feed
        self._consumer = consumer
        self._pool = pool
        self._stopping = stopping
        self._tuning = tuning
        self._next: Sequence[Delivery[M]] = ()
        """The batch fetched ahead, waiting for the one being written (kept alive while it is retried)."""

    async def run(self) -> None:
        """Project until the service stops: the next batch is fetched and decoded
        while the previous one is being written, but batches commit one after
        another, in stream order (so a job's events are folded in the order they
        were published). After a busy batch the next is taken `linger` seconds
        after it, at the earliest."""
        log.info("store.projecting", consumer=self._feed.durable)
        writing: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        take_at = 0.0
        try:
            while not self._stopping.is_set():
                if (wait := take_at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                msgs = await self._consumer.fetch(self._tuning.batch_size, self._tuning.fetch_wait)
                batch = await self._decode(msgs)
                if writing is not None:
                    self._next = batch
                    await writing
                    writing, self._next = None, ()
                if batch:
                    writing = asyncio.create_task(self._store(batch))
                busy = self._tuning.busy_from <= len(batch) < self._tuning.batch_size
                take_at = loop.time() + self._tuning.linger if busy else 0.0
            if writing is not None:
                await writing
        except Stopping:
            log.info("store.batch_left_for_redelivery", consumer=self._feed.durable)
        finally:
            if writing is not None and not writing.done():
                await stop_tasks([writing])
            await self._consumer.close()

    async def _decode(self, msgs: Sequence[Any]) -> list[Delivery[M]]:
        """The valid messages on their own subjects; the others are refused at once."""
        batch: list[Delivery[M]] = []
        model, address = self._feed.model, self._feed.address
        for msg in msgs:
            item = decode(model, msg)
            if not isinstance(item, Invalid):
                item = misaddressed(msg, address(item.payload, msg.subject)) or item
            if isinstance(item, Invalid):
                await self._reject(msg, item.reason)
            else:
                batch.append(item)
        return batch

    async def _store(self, batch: Sequence[Delivery[M]]) -> None:
        """Write one batch, then ack what was stored and terminate what never can be."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        keeping: list[asyncio.Task[None]] = []
        timer = loop.call_later(
            self._tuning.ack_wait / 3, lambda: keeping.append(loop.create_task(self._keep(batch)))
        )
        try:
            rejected, recorded = await self._commit(batch)
        finally:
            timer.cancel()
            for task in keeping:
                task.cancel()
        if recorded.refused:
            rejected = [*rejected, *_deliveries(batch, recorded.refused)]
        refused = {id(d) for d, _ in rejected}
        stored = [d for d in batch if id(d) not in refused] if refused else batch
        if self._observe is not None:
            self._observe(
                self._feed.durable, len(stored), recorded, asyncio.get_running_loop().time() - began
            )
        for delivery, reason in rejected:
            await self._reject(delivery.msg, reason)
        try:
            await self._consumer.ack([d.msg for d in stored])
        except Exception as error:  # a lost ack means a redelivery, which is harmless
            log.warning("store.settle_failed", consumer=self._feed.durable, error=repr(error))
        log.debug("store.batch_committed", consumer=self._feed.durable, count=len(batch) - len(rejected))

    async def _reject(self, msg: Any, reason: str) -> None:
        """Bad input is logged, dead-lettered where nobody else does it, and terminated."""
        log.error("store.invalid_message", consumer=self._feed.durable, subject=msg.subject, reason=reason)
        action: Action = Term(reason)
        if self._letters is not None:
            action = await bury(self._letters, self._feed.stream, Invalid(msg, reason))
        await self._settle(msg, action)

    async def _settle(self, msg: Any, action: Action) -> None:
        try:
            await settle(msg, action)
        except Exception as error:  # a lost ack means a redelivery, which is harmless
            log.warning("store.settle_failed", consumer=self._feed.durable, error=repr(error))

    async def _commit(self, batch: Sequence[Delivery[M]]) -> tuple[Rejected[M], Recorded]:
        """Write until it sticks; returns the messages that can never be stored, and what was new."""
        delay = self._tuning.first_backoff
        while True:
            try:
                return await self._write_all(batch)
            except Exception as error:
                self._log_retry(error, delay, len(batch))
            await self._hold(delay)
            delay = min(delay * 2, self._tuning.max_backoff)

    def _log_retry(self, error: Exception, delay: float, count: int) -> None:
        fields = {"consumer": self._feed.durable, "retry_in": delay, "pending": count}
        if isinstance(error, UNAVAILABLE):
            log.warning("store.db_unavailable", error=str(error) or type(error).__name__, **fields)
        else:
            log.error("store.write_failed", exc_info=error, **fields)

    async def _write_all(self, batch: Sequence[Delivery[M]]) -> tuple[Rejected[M], Recorded]:
        """The whole batch at once; if some row is unstorable, one message at a time."""
        try:
            return [], await self._write(batch)
        except BAD_DATA as error:
            if len(batch) == 1:
                return [(batch[0], _reason(error))], NOTHING
        rejected: Rejected[M] = []
        recorded = NOTHING
        for delivery in batch:
            try:
                recorded += await self._write([delivery])
            except BAD_DATA as error:
                rejected.append((delivery, _reason(error)))
        return rejected, recorded

    async def _write(self, batch: Sequence[Delivery[M]]) -> Recorded:
        fence = self._feed.fence
        async with self._pool.acquire() as conn, conn.transaction():
            admitted = batch if fence is None else await fence.admit(conn, batch, self._feed.durable)
            recorded = await self._feed.write(Queries(conn), admitted) if admitted else NOTHING
        dropped = len(batch) - len(admitted)
        return recorded + Recorded(of_pruned_jobs=dropped) if dropped else recorded

    async def _hold(self, seconds: float) -> None:
        """Wait `seconds` before writing the batch again; raise `Stopping` if the service stops."""
        if await _wait(self._stopping, seconds):
            raise Stopping

    async def _keep(self, batch: Sequence[Delivery[M]]) -> None:
        """Tell JetStream every third of AckWait that the batch (and the one fetched
        ahead) is still ours, until cancelled: a write Postgres holds up, or retries
        while it is away, must not let the batch go to another store meanwhile. It is
        started only once a write has taken that long (most take milliseconds, and a
        task per batch would cost the store's hot path for nothing)."""
        while True:
            await self._progress(batch)
            await asyncio.sleep(self._tuning.ack_wait / 3)

    async def _progress(self, batch: Sequence[Delivery[M]]) -> None:
        for delivery in [*batch, *self._next]:
            try:
                await delivery.progress()
            except Exception as error:  # NATS away too: the redelivery is harmless
                log.warning("store.progress_failed", consumer=self._feed.durable, error=repr(error))
                return


def _deliveries(batch: Sequence[Delivery[M]], refused: Sequence[tuple[Any, str]]) -> Rejected[M]:
    """The deliveries whose payloads a writer refused, with why."""
    why = {id(payload): reason for payload, reason in refused}
    return [(d, why[id(d.payload)]) for d in batch if id(d.payload) in why]
