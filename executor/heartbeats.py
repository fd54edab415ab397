"""Keeping the messages of running jobs from redelivery, with one timer for the
whole executor instead of a task per job."""

from __future__ import annotations

import asyncio
from types import TracebackType

import structlog

from bus import Delivery
from bus.tasks import stop_tasks
from contracts.messages import JobMessage

log = structlog.get_logger("jetjobs.executor")


class Heartbeats:
    """Every `every` seconds, tells JetStream that each message in work is still
    being worked on (an in-progress ack resets its ack wait). A message kept
    here gets its first beat at most `every` seconds after it was added."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._kept: dict[int, Delivery[JobMessage]] = {}
        self._ticker: asyncio.Task[None] | None = None

    def keep(self, delivery: Delivery[JobMessage]) -> Kept:
        """`with heartbeats.keep(delivery):` beat for `delivery` while the block runs."""
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick(), name="executor.heartbeats")
        return Kept(self._kept, delivery)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            for delivery in list(self._kept.values()):
                try:
                    await delivery.progress()
                except Exception as error:  # NATS away: the next beat tries again
                    log.warning("job.heartbeat_failed", job_id=delivery.payload.job_id, error=repr(error))

    async def close(self) -> None:
        """Stop beating (when the executor stops)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            await stop_tasks([ticker])


class Kept:
    """One message kept from redelivery while a `with` block runs (a class rather
    than a generator: one is entered for every job)."""

    __slots__ = ("_delivery", "_kept")

    def __init__(self, kept: dict[int, Delivery[JobMessage]], delivery: Delivery[JobMessage]) -> None:
        self._kept = kept
        self._delivery = delivery

    def __enter__(self) -> None:
        self._kept[id(self._delivery)] = self._delivery

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._kept.pop(id(self._delivery), None)
