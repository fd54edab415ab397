"""What keeps an executor visible and reachable: its runner heartbeat, the cancel
watch, and the memory ceiling that makes it drain before the OOM killer comes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import socket
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog

from bus import Bus, CancelBoard, CancelFeed, Layout, RunnerBoard
from bus.clock import ClockCheck
from bus.tasks import stop_tasks
from contracts.lifecycle import RunnerInfo

from .config import MEMORY_GROWTH_MB, MEMORY_HEADROOM_MB, ExecutorConfig, ExecutorStartError

log = structlog.get_logger("jetjobs.executor")

MEMORY_CHECK = 1.0
"""Seconds between two looks at the executor's resident memory."""

CLOCK_WAIT = 2.0
"""Seconds a clock check may wait for the server before it is given up until the next."""
RETRY_WATCH = 1.0
WATCH_READY = 5.0
"""Seconds `start` waits for the cancel watch to be set up: a KV watch cancelled
while it is being set up can hang (nats-py), so an executor stopped right
after it started must not hit that window."""


def resident_bytes() -> int:
    """This process's resident set size now (peak size where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check_memory_room(limit_mb: int | None) -> None:
    """Refuse a memory limit this process is already at (or too near to run jobs under):
    the executor would stop as soon as it started, and after every restart. Measured
    after a collection, so that cycles a stopped executor left in memory do not count."""
    if not limit_mb:
        return
    gc.collect()
    used_mb = -(-resident_bytes() // 2**20)
    if limit_mb < used_mb + MEMORY_HEADROOM_MB:
        least = -(-(used_mb + MEMORY_HEADROOM_MB + MEMORY_GROWTH_MB) // 16) * 16
        raise ExecutorStartError(
            f"memory_limit_mb (JETJOBS_MEMORY_LIMIT_MB) is {limit_mb} MiB, but this executor process "
            f"already uses {used_mb} MiB before running a job: set it to at least {least} "
            f"(its size now plus {MEMORY_HEADROOM_MB} MiB for jobs and {MEMORY_GROWTH_MB} MiB for its own growth), "
            "or to 0 for no limit"
        )


def _clock_effect(offset: float) -> str:
    """What a clock `offset` seconds off does to an executor: it holds each job's
    `dispatched_at`, stamped by the store's or scheduler's clock, against its own."""
    if offset > 0:
        return (
            f"a job not taken within its delivery timeout by this clock is refused as late (`undelivered`), "
            f"so jobs whose timeout is under {offset:.0f} s never run here, and every time this "
            "executor reports is off by as much"
        )
    return "jobs are taken after their delivery timeout has passed, and every time this executor reports is off by as much"


class Lifeline:
    """Background duties of one executor, started after it connects and stopped before it closes."""

    def __init__(
        self,
        bus: Bus,
        config: ExecutorConfig,
        layout: Layout,
        running: Callable[[], list[str]],
        on_cancel: Callable[[str, str], None],
        on_memory: Callable[[int], None],
        on_clock: Callable[[float], None] | None = None,
    ) -> None:
        self._bus = bus
        self._config = config
        self._layout = layout
        self._running = running
        self._on_cancel = on_cancel
        self._on_memory = on_memory
        self._started_at = datetime.now(UTC)
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: RunnerBoard | None = None
        self.cancelled: dict[str, str] = {}
        self.clock = ClockCheck(bus.js, "executor", _clock_effect, on_clock)

    def info(self) -> RunnerInfo:
        """This executor as `jetjobs runners` shows it."""
        return RunnerInfo(
            id=self._config.runner_id,
            host=socket.gethostname(),
            pool=self._config.pool,
            pid=os.getpid(),
            slots=self._config.slots,
            running=self._running(),
            started_at=self._started_at,
            at=datetime.now(UTC),
        )

    async def start(self) -> None:
        """Announce this runner, then keep announcing, watching cancels and memory."""
        check_memory_room(self._config.memory_limit_mb)
        # a bind-only executor may not make the bucket again after a NATS restart: the store does
        self._runners = await RunnerBoard.open(self._bus.js, None if self._config.bind_only else self._layout)
        await self._announce(self._runners)
        cancels = CancelFeed(self._bus.nc) if self._config.bind_only else await CancelBoard.open(self._bus.js)
        self._spawn(self.clock.follow(CLOCK_WAIT), "clock")
        self._spawn(self._beat(self._runners), "beat")
        watching = asyncio.Event()
        self._spawn(self._watch(cancels, watching.set), "cancels")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WATCH_READY):
                await watching.wait()
        if self._config.memory_limit_mb:
            self._spawn(self._memory(self._config.memory_limit_mb * 1024 * 1024), "memory")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=f"executor.{name}"))

    async def stop(self) -> None:
        """Stop the duties and take this runner off the board."""
        tasks, self._tasks = self._tasks, []
        await stop_tasks(tasks)
        if self._runners is not None and self._bus.nc.is_connected:  # else its key lapses by TTL
            await self._runners.leave(self.info())

    async def _beat(self, board: RunnerBoard) -> None:
        while True:
            await asyncio.sleep(self._layout.runner_beat)
            try:
                await self._announce(board)
            except Exception as error:  # NATS away: the next beat tries again
                log.warning("executor.heartbeat_failed", runner=self._config.runner_id, error=repr(error))

    async def _announce(self, board: RunnerBoard) -> None:
        """Put a heartbeat; now and then, have the clock check measure it (`bus.clock`).
        A bind-only executor may not read the bucket's messages."""
        before = self.clock.clock()
        seq = await board.beat(self.info())
        if self.clock.due() and not self._config.bind_only:
            self.clock.offer(RunnerBoard.STREAM, seq, before, self.clock.clock())

    async def _watch(self, board: CancelBoard | CancelFeed, ready: Callable[[], None]) -> None:
        """Follow cancels for as long as the executor runs, re-watching after a failure
        and once the bucket was made again (its cancels are delivered again then)."""
        while True:
            watch = asyncio.create_task(self._follow(board, ready))
            remade = asyncio.create_task(board.remade())
            try:
                await asyncio.wait({watch, remade}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await stop_tasks([watch, remade])
            if remade.done() and not remade.cancelled() and remade.exception() is None:
                log.info("executor.cancel_watch_restarted", reason="bucket made again")
                continue
            await asyncio.sleep(RETRY_WATCH)

    async def _follow(self, board: CancelBoard | CancelFeed, ready: Callable[[], None]) -> None:
        try:
            async for job_id, reason in board.watch(ready):
                self.cancelled[job_id] = reason
                self._on_cancel(job_id, reason)
        except Exception as error:
            log.warning("executor.cancel_watch_failed", error=repr(error))

    async def _memory(self, limit: int) -> None:
        while True:
            await asyncio.sleep(MEMORY_CHECK)
            used = resident_bytes()
            if used > limit:
                log.warning("executor.memory_limit", rss_mb=used // 2**20, limit_mb=limit // 2**20)
                with contextlib.suppress(Exception):
                    self._on_memory(used)
                return
