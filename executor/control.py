"""How the service reaches a job in flight: hand it back on shutdown, or cancel it."""

from __future__ import annotations

import asyncio
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

    def hand_back(self) -> None:
        """The executor is stopping: kill the process and let another runner take the job."""
        self.abort.set()

    def cancel(self, reason: str) -> None:
        """The job was cancelled: kill the process and end the job for good."""
        self.cancelled = reason
        self.abort.set()
