"""Holding the scheduler lease: take it when free, renew it well within its TTL,
and stop counting as leader on our own as soon as a renewal is overdue, so two
schedulers never both believe they lead for longer than a clock's drift."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog

from bus.clock import ClockCheck
from bus.lease import Lease

log = structlog.get_logger("jetjobs.scheduler")

CLOCK_WAIT = 2.0
"""Seconds a clock check may wait for the server before it is given up until the next."""
SAFETY = 0.8
"""Fraction of the TTL after the last confirmed renewal during which we still lead."""


def clock_effect(offset: float) -> str:
    """What a clock `offset` seconds off does to a leading scheduler."""
    return f"while it leads, every slot fires {abs(offset):.1f} s {'early' if offset > 0 else 'late'}"


class Leadership:
    """Runs the take/renew loop and answers whether this scheduler leads now."""

    def __init__(
        self, lease: Lease, ttl: float, on_change: Callable[[], None], clock: ClockCheck | None = None
    ) -> None:
        self._lease = lease
        self._clock = clock
        self._ttl = ttl
        self._on_change = on_change
        self._valid_until = 0.0
        self._was = False

    @property
    def leading(self) -> bool:
        """Whether the lease is ours and its last renewal is recent enough."""
        return self._lease.held and asyncio.get_running_loop().time() < self._valid_until

    @property
    def every(self) -> float:
        """How often the lease is renewed (or, by a standby, tried)."""
        return self._ttl / 5

    async def run(self, beat: Callable[[], None]) -> None:
        """Take or renew the lease for ever; `beat` is called each round (liveness)."""
        while True:
            await self.step()
            beat()
            await asyncio.sleep(self.every)

    async def step(self) -> None:
        """One round: renew (or take) the lease and report a change of leadership."""
        started = asyncio.get_running_loop().time()
        sent = self._clock.clock() if self._clock is not None else None
        try:
            ok = await (self._lease.renew() if self._lease.held else self._lease.take())
        except Exception as error:
            log.warning("scheduler.lease_failed", error=repr(error))
            ok = None
        if ok:
            self._valid_until = started + self._ttl * SAFETY
        elif ok is False:
            self._valid_until = 0.0
        self._report()
        if ok and sent is not None:
            await self._check_clock(sent)

    async def _check_clock(self, sent: datetime) -> None:
        """Now and then, hold this host's clock, by which the leader fires every slot,
        against the time the server stored the lease at (`bus.clock`)."""
        clock, revision = self._clock, self._lease.revision
        if clock is None or revision is None or not clock.due():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOCK_WAIT):
                await clock.stored(Lease.STREAM, revision, sent, clock.clock())

    def _report(self) -> None:
        now = self.leading
        if now != self._was:
            self._was = now
            log.info("scheduler.leading" if now else "scheduler.standing_by")
            self._on_change()

    async def release(self) -> None:
        """Give the lease up (clean stop)."""
        await self._lease.release()
        self._valid_until = 0.0
