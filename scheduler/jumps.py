"""Noticing the wall clock jump ahead while the scheduler runs.

Slots are instants of the wall clock, and the scheduler sleeps towards the next
one by the event loop's monotonic clock. An NTP step, or a VM or laptop resumed
after a pause, moves the wall clock ahead of it: the slots in between were
never fired. Told apart from a loop that was merely late (a stall moves both
clocks alike), the jump hands those slots to the misfire policies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

CLOCK_CHECK = 1.0
"""Longest sleep towards a pending slot: a jump meanwhile is noticed within it."""


class JumpWatch:
    """How far the wall clock moved ahead of the monotonic one since the last look."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._last: tuple[datetime, float] | None = None

    def ahead(self) -> float:
        """Seconds the wall clock gained on the monotonic clock since the last call
        (negative: it went back); 0 at the first call after `forget`."""
        now = (self._clock(), asyncio.get_running_loop().time())
        last, self._last = self._last, now
        if last is None:
            return 0.0
        return (now[0] - last[0]).total_seconds() - (now[1] - last[1])

    def forget(self) -> None:
        """Start over (the scheduler stood by meanwhile: a new leader counts its own misses)."""
        self._last = None
