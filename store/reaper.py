"""The store's safety net for jobs nobody will finish: a runner that vanished, a
message no executor took in time, or a job known only from events, with no message.
It runs on a timer, apart from the hot path, and records what it finds as ordinary
lifecycle events, so the same fenced projection applies them (and records an
executor's event for the same attempt and status once)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from bus import Bus, CancelBoard, RunnerBoard, delete_dispatch, dispatch_message, store_backlog
from bus.heal import MISSING
from bus.letters import job_id_of
from contracts import subjects as s
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent

from .db import UNAVAILABLE
from .queries import Queries

log = structlog.get_logger("jetjobs.store")

BATCH = 500
"""Most jobs reaped in one round; the next round takes the rest."""

RECORDED = frozenset(
    (
        "id",
        "company",
        "pool",
        "template_id",
        "app_id",
        "argv",
        "attempt",
        "scheduled_at",
        "dispatched_at",
        "launched_by",
    )
)
"""What a dead letter keeps of a job whose message could not be read back."""


@dataclass(frozen=True)
class ReaperTiming:
    """How often the reaper looks, and how long a runner must be gone first."""

    every: float
    silent_for: float


LOST_LIMIT = 3
"""Runs of one job message an executor may lose before the job ends `lost` for good
and goes to the dead letters. An executor that crashes is not the job's failure
until it keeps happening, so this is apart from `retries`; but a job that kills or
exhausts its executor would otherwise take one down on every redelivery, for ever."""


def stopped_times(times: int) -> str:
    return f"its executor stopped {times} times while running it (a job that kills or exhausts its executor?)"


def _ended(
    row: Any,
    kind: ErrorKind,
    reason: str,
    final: bool,
    runner: str | None = None,
    retry_in: float | None = None,
) -> JobEvent:
    """The store's `error` event ending the attempt a reaped row names."""
    return JobEvent(
        job_id=row["id"],
        company=row["company"],
        attempt=row["attempt"],
        status=Status.ERROR,
        at=datetime.now(UTC),
        runner=runner,
        kind=kind,
        reason=reason,
        final=final,
        retry_in=retry_in,
    )


def lost_event(row: Any, earlier_losses: int = 0) -> JobEvent:
    """The attempt's runner stopped heartbeating: `lost`, and not final, since
    JetStream hands the unacknowledged message to another executor; final once the
    message's executors were lost `LOST_LIMIT` times, this one included. The next
    attempt is due now: the runner went unheard for an ack wait, after which JetStream
    redelivers, so like any retry it must be taken within its message's `timeout`."""
    runner = row["runner"] or "unknown"
    stopped = f"runner {runner} stopped heartbeating while the job was {row['status']}"
    times = earlier_losses + 1
    final = times >= LOST_LIMIT
    reason = (
        f"{stopped}: {stopped_times(times)}: not run again, see the dead letters (`jetjobs dlq list`)"
        if final
        else f"{stopped}: redelivered"
    )
    return _ended(
        row, ErrorKind.LOST, reason, final=final, runner=row["runner"], retry_in=None if final else 0.0
    )


@dataclass(frozen=True)
class Original:
    """The job message a dead letter keeps: as it was published and where it still is
    (`seq`), or as the store recorded the job when the stream no longer had it
    (`missing` says why)."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    seq: int | None = None
    missing: str | None = None


def lost_letter(event: JobEvent, times: int, original: Original) -> DeadLetter:
    """The dead letter of a job its executors were lost on `times` times."""
    said = f"{stopped_times(times)}: attempt {event.attempt}, on runner {event.runner or 'unknown'}, was the last"
    return _letter(event, said, "replay it (`jetjobs dlq replay`) once the cause is fixed", original)


def undelivered_letter(event: JobEvent, original: Original) -> DeadLetter:
    """The dead letter of a job no executor took in time: it never ran, and a replay
    runs it now (its `timeout` counts from the replay)."""
    return _letter(
        event, f"never run: {event.reason}", "replay it (`jetjobs dlq replay`) to run it now", original
    )


def _letter(event: JobEvent, said: str, replay: str, original: Original) -> DeadLetter:
    """A letter saying `said`, and how to replay it, or why it cannot be."""
    if original.missing is None:
        reason = f"{said}; {replay}"
    else:
        reason = (
            f"{said}; its message could not be read from {s.DISPATCH_STREAM} ({original.missing}), so this "
            "letter holds what the store recorded of the job instead, which cannot be replayed: run it again"
        )
    return DeadLetter(
        company=event.company,
        job_id=event.job_id,
        reason=reason,
        subject=original.subject,
        payload=original.payload.decode("utf-8", errors="replace"),
        headers=original.headers,
        at=event.at,
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
            f"is stored, so its pool's consumer `{s.pool_consumer(row['pool'] or 'default')}` most likely "
            "did not exist yet when it was published (a publisher other than jetjobs makes it first: "
            "README, Driving it from NATS)"
        )
    else:
        reason = (
            f"no executor took the job before {deadline}: removed without running "
            "(start an executor for its pool, or raise `timeout`)"
        )
    return _ended(row, ErrorKind.UNDELIVERED, reason, final=True)


def retry_undelivered_event(row: Any, message_gone: bool = False) -> JobEvent:
    """No executor took the job's next attempt (a retry, or a redelivery after its executor
    handed it back) within its message's `timeout` of when it was due: as a first delivery
    nobody took, it will never run (`row["attempt"]` is that next attempt)."""
    pool = row["pool"] or "default"
    missed = (
        f"no executor of pool `{pool}` took the retry (attempt {row['attempt']}) within "
        f"{row['timeout']:g} s of when it was due, by {row['deadline'].isoformat()}"
    )
    if message_gone:
        reason = f"{missed}, and its message had already left {s.DISPATCH_STREAM}"
    else:
        reason = f"{missed}: removed without running (start an executor for its pool, or raise `timeout`)"
    return _ended(row, ErrorKind.UNDELIVERED, reason, final=True)


def cancelled_unstarted_event(row: Any, cancel: str) -> JobEvent:
    """A cancelled job no executor acknowledged before its deadline: the cancel had
    taken its message, or every executor refused it. Ended as the cancel it is."""
    return _ended(
        row,
        ErrorKind.CANCELLED,
        f"cancelled before it started: {cancel}; no executor took it before {row['deadline'].isoformat()}",
        final=True,
    )


def cancelled_lost_event(row: Any, cancel: str) -> JobEvent:
    """A cancelled job whose runner vanished: final, since a redelivery would only be
    refused (its message may be gone with the cancel, and then none comes)."""
    runner = row["runner"] or "unknown"
    return _ended(
        row,
        ErrorKind.CANCELLED,
        (
            f"cancelled ({cancel}), and runner {runner} stopped heartbeating while the job was "
            f"{row['status']}: not run again"
        ),
        final=True,
        runner=row["runner"],
    )


UNRECORDED = "no job message of it was ever recorded (the store has only seen events of it)"


def unrecorded_event(row: Any) -> JobEvent:
    """The end of an unfinished job known only from its events, left unchanged for a
    runner's TTL while the store was caught up: a message of it would have been recorded
    before the events of an executor that took it, so there is none, and no redelivery or
    retry can come. It ends for good: `lost` if a runner (gone) held it, else the attempt
    never taken, or the next one an error announced, `undelivered`."""
    status = Status(row["status"])
    if status in (Status.ACKNOWLEDGED, Status.STARTED):
        runner = row["runner"] or "unknown"
        reason = (
            f"runner {runner} stopped heartbeating while the job was {status.value}, and {UNRECORDED}: "
            "nothing can run it again"
        )
        return _ended(row, ErrorKind.LOST, reason, final=True, runner=row["runner"])
    if status is Status.ERROR:
        attempt = row["attempt"] + 1
        reason = f"attempt {attempt} cannot come: {UNRECORDED}, so nothing can run it again"
        return _ended(dict(row, attempt=attempt), ErrorKind.UNDELIVERED, reason, final=True)
    return _ended(row, ErrorKind.UNDELIVERED, f"{UNRECORDED}: nothing can run it", final=True)


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
            except MISSING as error:  # a stream, consumer or bucket is gone: made again, it says so
                said = str(error) or type(error).__name__
                if not await self._bus.healer.restore(f"store reaper: {said}"):
                    log.warning("store.reaper_waiting", error=said)
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
        silent_for = self._timing.silent_for
        orphans = [] if live is None else await queries.orphaned_attempts(silent_for, live, BATCH)
        unrecorded = [] if live is None else await queries.unrecorded_jobs(silent_for, live, BATCH)
        overdue = await queries.overdue_dispatches(BATCH)
        retries = await queries.overdue_retries(BATCH)
        losses = await queries.earlier_losses([(row["id"], row["attempt"]) for row in orphans])
        cancels = await CancelBoard.open(self._bus.js)
        for row in orphans:
            known = losses.get(row["id"])
            cancel = await cancels.reason(row["id"])
            if cancel is not None:
                await self._end(cancelled_lost_event(row, cancel))
                if known is not None and known["stream_seq"] is not None:
                    await delete_dispatch(self._bus.js, int(known["stream_seq"]), row["id"])
                continue
            earlier = 0 if known is None else int(known["lost"])
            event = lost_event(row, earlier)
            if event.final:
                seq = None if known is None or known["stream_seq"] is None else int(known["stream_seq"])
                original = await self._original(queries, event.job_id, event.company, seq)
                await self._bury(event, lost_letter(event, earlier + 1, original), original.seq)
            else:
                await self._end(event)
        for row in overdue:
            await self._undelivered(queries, cancels, row, undelivered_event)
        for row in retries:
            await self._undelivered(queries, cancels, row, retry_undelivered_event)
        for row in unrecorded:
            await self._end(unrecorded_event(row))
        return len(orphans) + len(overdue) + len(retries) + len(unrecorded)

    async def _undelivered(
        self, queries: Queries, cancels: CancelBoard, row: Any, ended: Callable[[Any, bool], JobEvent]
    ) -> None:
        """End a job whose message no executor took in time (`ended` says how), file its
        message as a dead letter and remove it from the stream; a cancelled one ends as
        the cancel it is."""
        seq = None if row["stream_seq"] is None else int(row["stream_seq"])
        cancel = await cancels.reason(row["id"])
        if cancel is not None:
            if seq is not None:
                await delete_dispatch(self._bus.js, seq, row["id"])
            await self._end(cancelled_unstarted_event(row, cancel))
            return
        original = await self._original(queries, row["id"], row["company"], seq)
        event = ended(row, seq is not None and original.seq is None)
        await self._bury(event, undelivered_letter(event, original), original.seq)

    async def _original(self, queries: Queries, job_id: str, company: str, seq: int | None) -> Original:
        """The job's message, still in the dispatch stream (unacknowledged) at `seq`;
        when it is not there, what the store recorded of the job."""
        if seq is None:
            missing = "the store does not know where it is"
        else:
            stored = await dispatch_message(self._bus.js, seq)
            if stored is None:
                missing = f"nothing is left at sequence {seq}"
            elif job_id_of(stored.data) == job_id:
                return Original(stored.subject, stored.data, stored.headers, seq)
            else:
                missing = f"sequence {seq} holds another message"
        job = await queries.job_by_id(job_id)
        recorded = b"{}" if job is None else job.model_dump_json(include=set(RECORDED)).encode()
        pool = "default" if job is None or job.pool is None else job.pool
        return Original(s.dispatch_subject(company, pool), recorded, {}, missing=missing)

    async def _bury(self, event: JobEvent, letter: DeadLetter, seq: int | None) -> None:
        """End the job for good: its dead letter first, so a round that fails before the
        final event files it again (with the same msg id, and the store records one
        letter of an original message in any case), then the event, then its message leaves the stream, so no
        executor takes it again (one that reads the events stream would see the final
        event and ack it)."""
        await self._bus.publisher.dead(letter, f"{event.job_id}.{event.attempt}.dead")
        await self._end(event)
        log.warning("job.dead_lettered", job_id=event.job_id, company=event.company, reason=letter.reason)
        if seq is not None:
            await delete_dispatch(self._bus.js, seq, event.job_id)

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
