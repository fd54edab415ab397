"""The store's safety net for jobs nobody will finish: a runner that vanished, or a
message no executor took in time. It runs on a timer, apart from the hot path, and
records what it finds as ordinary lifecycle events, so the same fenced projection
applies them (and an executor's event for the same attempt is deduplicated)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from bus import Bus, RunnerBoard, delete_dispatch, store_backlog
from contracts import subjects as s
from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent

from .db import UNAVAILABLE
from .queries import Queries

log = structlog.get_logger("jetjobs.store")

BATCH = 500
"""Most jobs reaped in one round; the next round takes the rest."""


@dataclass(frozen=True)
class ReaperTiming:
    """How often the reaper looks, and how long a runner must be gone first."""

    every: float
    silent_for: float


def lost_event(row: Any) -> JobEvent:
    """The attempt's runner stopped heartbeating: `lost`, and not final, since
    JetStream hands the unacknowledged message to another executor."""
    runner = row["runner"] or "unknown"
    return JobEvent(
        job_id=row["id"],
        company=row["company"],
        attempt=row["attempt"],
        status=Status.ERROR,
        at=datetime.now(UTC),
        runner=row["runner"],
        kind=ErrorKind.LOST,
        reason=f"runner {runner} stopped heartbeating while the job was {row['status']}: redelivered",
        final=False,
    )


def undelivered_event(row: Any, message_gone: bool = False) -> JobEvent:
    """No executor took the message before its deadline: it will never run. When its
    message had left the stream unrun, no executor could have taken it: JETJOBS_DISPATCH
    keeps a message only for the consumers that exist when it is stored."""
    deadline = row["deadline"].isoformat()
    if message_gone:
        reason = (
            f"no executor took the job before {deadline}, and its message had already left "
            f"{s.DISPATCH_STREAM}: the stream keeps a message only for the consumers that exist when it "
            "is stored, so its pool's consumer `exec_<pool>` most likely did not exist yet when it was "
            "published (a publisher other than jetjobs makes it first: README, Driving it from NATS)"
        )
    else:
        reason = (
            f"no executor took the job before {deadline}: removed without running "
            "(start an executor for its pool, or raise `timeout`)"
        )
    return JobEvent(
        job_id=row["id"],
        company=row["company"],
        attempt=row["attempt"],
        status=Status.ERROR,
        at=datetime.now(UTC),
        kind=ErrorKind.UNDELIVERED,
        reason=reason,
        final=True,
    )


class Reaper:
    """Finds orphaned and overdue jobs and ends their attempt."""

    def __init__(self, pool: Any, bus: Bus, timing: ReaperTiming) -> None:
        self._pool = pool
        self._bus = bus
        self._timing = timing
        self._board_made: datetime | None = None
        """When the runners bucket this reaper last saw was made."""
        self._board_complete_at = 0.0
        """Loop time from which that bucket has heard from every live runner."""

    async def run(self, stopping: asyncio.Event) -> None:
        """Reap every `timing.every` seconds until the service stops."""
        runners = await RunnerBoard.open(self._bus.js, self._bus.layout)
        while not stopping.is_set():
            try:
                await self.reap_once(runners)
            except UNAVAILABLE as error:
                log.warning("store.reaper_waiting", error=str(error) or type(error).__name__)
            except Exception:
                log.exception("store.reaper_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._timing.every)

    async def reap_once(self, runners: RunnerBoard) -> int:
        """One round; returns how many attempts it ended. Skipped while the projection
        lags, since a job that looks stuck may already have reported."""
        if await store_backlog(self._bus.js) > 0:
            return 0
        live = await self._live(runners)
        queries = Queries(self._pool)
        orphans = (
            [] if live is None else await queries.orphaned_attempts(self._timing.silent_for, live, BATCH)
        )
        overdue = await queries.overdue_dispatches(BATCH)
        for row in orphans:
            await self._end(lost_event(row))
        for row in overdue:
            gone = row["stream_seq"] is not None and not await delete_dispatch(
                self._bus.js, int(row["stream_seq"])
            )
            await self._end(undelivered_event(row, message_gone=gone))
        return len(orphans) + len(overdue)

    async def _live(self, runners: RunnerBoard) -> list[str] | None:
        """The ids of the live runners; None while the board may still miss some: for one
        heartbeat TTL after this reaper first saw its bucket, or saw it made again (a NATS
        restart loses it, and runners take up to a TTL to announce themselves again)."""
        live = sorted(r.id for r in await runners.live())
        made = await runners.made()
        now = asyncio.get_running_loop().time()
        if made is None or made != self._board_made:
            self._board_made, self._board_complete_at = made, now + self._timing.silent_for
        return live if now >= self._board_complete_at else None

    async def _end(self, event: JobEvent) -> None:
        await self._bus.publisher.event(event)
        assert event.kind is not None
        log.warning(
            "job.reaped",
            job_id=event.job_id,
            company=event.company,
            attempt=event.attempt,
            kind=event.kind.value,
            final=event.final,
        )
