"""Whether this host's wall clock agrees with the NATS server's.

Job messages carry times stamped by the host that made them (`dispatched_at`):
an executor holds each against its own clock to decide whether it came too late,
and a scheduler fires each slot by its own. A host whose clock is off by more than
a few seconds refuses jobs as late, or fires them early or late, and nothing else
says why. So a service compares its clock, now and then, with the time the server
stamped on a message the service has just stored: one extra request a minute."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from nats.js import JetStreamContext

log = structlog.get_logger("jetjobs.clock")

TOLERANCE = 1.0
"""Seconds a clock may be off, beyond what the measurement cannot tell, before it is reported."""
CHECK_EVERY = 60.0
"""Seconds between two measurements."""
WARN_EVERY = 600.0
"""Seconds between two warnings while a clock stays off."""

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ClockCheck:
    """Measures one service's clock against the server's from messages it stores, and
    warns while the two differ by more than `TOLERANCE`; `effect(offset)` says what
    that offset does to this service."""

    def __init__(
        self,
        js: JetStreamContext,
        service: str,
        effect: Callable[[float], str],
        report: Callable[[float], None] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._js = js
        self._service = service
        self._effect = effect
        self._report = report
        self.clock = clock
        """The service's wall clock: what is measured (replaceable, for tests)."""
        self._next_check = 0.0
        self._next_warning = 0.0
        self._off = False
        self._offered: tuple[str, int, datetime, datetime] | None = None
        self._ready = asyncio.Event()

    def due(self) -> bool:
        """Whether a stored message should be measured now (once every `CHECK_EVERY`)."""
        return asyncio.get_running_loop().time() >= self._next_check

    def offer(self, stream: str, seq: int, before: datetime, after: datetime) -> None:
        """Hand `follow` message `seq` of `stream`, which this service just stored
        between `before` and `after` by its clock (the newest offered is measured)."""
        self._offered = (stream, seq, before, after)
        self._ready.set()

    async def follow(self, wait: float) -> None:
        """Measure what is offered, for as long as the service runs: apart from the
        publish that offered it, so that a slow answer never delays one, and waiting
        `wait` seconds at most for each."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            offered, self._offered = self._offered, None
            if offered is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.stored(*offered)

    async def stored(self, stream: str, seq: int, before: datetime, after: datetime) -> float | None:
        """Measure from message `seq` of `stream`, stored between `before` and `after` by
        this service's clock: the offset in seconds (positive: this clock is ahead), or
        None when the server could not be asked."""
        loop = asyncio.get_running_loop()
        self._next_check = loop.time() + CHECK_EVERY
        try:
            stamped = (await self._js.get_msg(stream, seq=seq)).time
        except Exception as error:
            log.debug("clock.unmeasured", service=self._service, error=repr(error))
            return None
        if stamped is None:
            return None
        offset = ((before - stamped) + (after - stamped)).total_seconds() / 2
        doubt = (after - before).total_seconds() / 2
        self._judge(offset, doubt, loop.time())
        if self._report is not None:
            self._report(offset)
        return offset

    def _judge(self, offset: float, doubt: float, now: float) -> None:
        off = abs(offset) - doubt > TOLERANCE
        if off and now >= self._next_warning:
            self._next_warning = now + WARN_EVERY
            log.warning(
                "clock.skewed",
                service=self._service,
                offset_seconds=round(offset, 3),
                problem=f"this host's clock is {abs(offset):.1f} s {'ahead of' if offset > 0 else 'behind'} "
                f"the NATS server's: {self._effect(offset)}",
                fix="synchronise this host's clock (NTP: chrony or systemd-timesyncd)",
            )
        elif not off and self._off:
            self._next_warning = 0.0
            log.info("clock.synchronised", service=self._service, offset_seconds=round(offset, 3))
        self._off = off
