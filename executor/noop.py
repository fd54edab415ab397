"""A runner that starts nothing, for benchmarks: every job "exits 0" at once.

Everything around the process still happens (events, heartbeats, working
directory, acks, the store's projection), so a benchmark with it measures the
system's own cost per job, without the operating system's cost of a spawn."""

from __future__ import annotations

import asyncio
from types import TracebackType

from .output import Capture
from .process import Ending, Exited, Launch


class NoopRunning:
    """Looks like a started process that has already exited 0 and printed nothing."""

    pid = 0

    def __init__(self, output_limit: int) -> None:
        self.stdout = Capture(output_limit)
        self.stderr = Capture(output_limit)

    async def finish(self, deadline: float, abort: asyncio.Event, grace: float) -> Ending:
        """Done already: the job succeeded."""
        return Exited(0)

    async def close(self) -> None:
        """Nothing to reap."""

    async def __aenter__(self) -> NoopRunning:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def launch_noop(spec: Launch) -> NoopRunning:
    """The stand-in for `process.launch`."""
    return NoopRunning(spec.output_limit)
