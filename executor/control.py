"""How the service reaches a job in flight: hand it back on shutdown, or cancel it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Control:
    """One job task's switches. `abort` ends the process; `cancelled` says the
    end is a cancel (final) rather than a hand-back to the pool (redelivered)."""

    received: float
    """Loop time at which the message arrived: the start of its `timeout_ack`."""
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: str | None = None
    job_id: str | None = None
    released: bool = False
    """Whether the job gave its slot back: its process is gone and its working
    directory returned; what is left (reporting the outcome, settling) needs no slot."""
    on_release: Callable[[], None] | None = None

    def release(self) -> None:
        """Give the slot back (once) so the next job can be pulled."""
        if not self.released:
            self.released = True
            if self.on_release is not None:
                self.on_release()

    def hand_back(self) -> None:
        """The executor is stopping: kill the process and let another runner take the job."""
        self.abort.set()

    def cancel(self, reason: str) -> None:
        """The job was cancelled: kill the process and end the job for good."""
        self.cancelled = reason
        self.abort.set()
