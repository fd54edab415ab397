"""API operations over a job's lifecycle: cancel, dead letters and their replay, live runners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from bus import (
    NATS_ERRORS,
    Bus,
    CancelBoard,
    PublishFailed,
    RunnerBoard,
    delete_dispatch,
    last_event,
    store_backlog,
)
from bus.letters import company_of
from bus.taken import handed_out
from contracts import api
from contracts.api import ApiFailure
from contracts.enums import ErrorKind, Status
from contracts.errors import describe
from contracts.lifecycle import (
    CancelReply,
    DeadLetterList,
    DeadLetterQuery,
    DeadLetterRecord,
    DeadLetterRef,
    Replayed,
    RunnerList,
    RunnerQuery,
)
from contracts.messages import JobEvent, JobMessage
from contracts.records import JobRecord

from .actors import reader
from .api import Handler, _typed
from .flow_jobs import flow_of
from .flow_queries import FlowQueries
from .masking import shown_letter
from .pages import fit
from .queries import Queries
from .reaper import UNRECORDED

log = structlog.get_logger("jetjobs.store")

SEQUENCE_WAIT = 3.0
"""Seconds a cancel waits for the store to record where a queued job's message is."""

RETRY_MARGIN = 2.0
"""Seconds before a retry is due from which a cancel leaves the job to the executor
that takes it: the next attempt may be on its way (and hosts' clocks differ a little)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _retry_ahead(last: JobEvent) -> bool:
    """Whether the retry `last` announced is due later than `RETRY_MARGIN` from now: an
    executor naks the message only after `last` is stored, so no executor has it yet."""
    if last.retry_in is None:
        return False
    return last.at + timedelta(seconds=last.retry_in) > _now() + timedelta(seconds=RETRY_MARGIN)


def cancelled_event(job: JobRecord, reason: str) -> JobEvent:
    """A queued job's end: the current attempt if it still waits, the next one if it
    waits for a retry or a redelivery."""
    attempt = job.attempt if job.status is Status.DISPATCHED else job.attempt + 1
    return _cancelled(job, attempt, f"cancelled before it started: {reason}")


def unrecorded_cancelled_event(job: JobRecord) -> JobEvent:
    """The end of a job known only from its events: the attempt it shows, or the next one
    if that one ended already (an error announced it, but with no message it cannot come)."""
    attempt = job.attempt + 1 if job.status is Status.ERROR else job.attempt
    reason = f"cancelled by request: {UNRECORDED}, so nothing runs it (a runner that reported it is not told)"
    return _cancelled(job, attempt, reason)


def _cancelled(job: JobRecord, attempt: int, reason: str) -> JobEvent:
    return JobEvent(
        job_id=job.id,
        company=job.company,
        attempt=attempt,
        status=Status.ERROR,
        at=_now(),
        kind=ErrorKind.CANCELLED,
        reason=reason,
        final=True,
    )


def not_dispatched(job: JobRecord, quiet_for: float) -> ApiFailure:
    """The 409 of a cancel of a job the store knows only from recent events: its dispatch
    may be on its way. A job id is predictable, so such a row may be another company's
    claim on a job not run yet, and a cancel mark on it would end that job before it started."""
    return ApiFailure(
        409,
        f"job {job.id} is not recorded as dispatched yet (the store has only seen events of it): "
        f"try again in a moment; a job can be cancelled once its dispatch is recorded, or once it has "
        f"been {quiet_for:g} s without news with the store caught up (then no message of it is coming)",
    )


def replay_message(letter: DeadLetterRecord, job: JobRecord | None) -> JobMessage:
    """The dead letter's job as a new attempt, after every attempt so far, with a fresh
    retry budget and a fresh dispatch time (so its `timeout` counts from now)."""
    try:
        original = JobMessage.model_validate_json(letter.payload)
    except ValidationError as error:
        raise ApiFailure(
            409,
            f"dead letter {letter.id} cannot be replayed: its message is not a valid job "
            f"({describe(error)}); publish a corrected job instead",
        ) from None
    foreign = _foreign(letter, original, job)
    if foreign is not None:
        raise ApiFailure(
            409,
            f"dead letter {letter.id} of company {letter.company} cannot be replayed: {foreign}, "
            "and a company replays only its own jobs",
        )
    if letter.job_id is not None and letter.job_id != original.job_id:
        raise ApiFailure(
            409,
            f"dead letter {letter.id} names job {letter.job_id}, but its message is job {original.job_id}: "
            "replaying it would reopen the one and run the other; publish a corrected job instead",
        )
    last = max(original.attempt, job.attempt if job is not None else 0)
    return original.model_copy(update={"attempt": last + 1, "dispatched_at": _now()})


def _foreign(letter: DeadLetterRecord, original: JobMessage, job: JobRecord | None) -> str | None:
    """What in a dead letter belongs to another company than the letter, if anything:
    whoever may publish a company's dead letters may put anything in them."""
    if original.company != letter.company:
        return f"its message is a job of company {original.company}"
    if company_of(letter.subject) != letter.company:
        return f"its message came on {letter.subject}"
    if job is not None and job.company != letter.company:
        return f"it names job {job.id} of company {job.company}"
    return None


def in_flow(letter: DeadLetterRecord, message: JobMessage, node: tuple[str, str] | None) -> ApiFailure | None:
    """The refusal of a replay of a flow node's job, given the (run id, node) whose job
    it is, if any. A replay runs the job alone: its outcome would change the job's
    record but not the node's, so the run would stay failed and its dependants never
    run. A job of a flow no node holds any more (its run was retried since, and the
    node given a new job) still says which flow made it, in `launched_by`."""
    if node is not None:
        run, name = node
        return ApiFailure(
            409,
            f"dead letter {letter.id} is job {message.job_id} of node '{name}' of flow run {run}: "
            "a replay would run it outside its flow, which would not see its outcome; "
            f"re-run the run's failed nodes with `jetjobs flow retry {run}` once the run has ended",
        )
    flow = flow_of(message.launched_by)
    if flow is not None:
        return ApiFailure(
            409,
            f"dead letter {letter.id} is job {message.job_id} of a run of flow '{flow}': "
            "a replay would run it outside its flow; re-run the run's failed nodes with "
            f"`jetjobs flow retry RUN` (`jetjobs flow list --company {message.company}` shows the runs)",
        )
    return None


def already_replayed(letter: DeadLetterRecord) -> ApiFailure:
    """The refusal of a second replay: the first one's attempt may still run, and a
    second copy of the job would compete with it for the same record."""
    job = "" if letter.job_id is None else f" of job {letter.job_id}"
    return ApiFailure(
        409,
        f"dead letter {letter.id} was already replayed, as attempt {letter.replayed_as}{job}: "
        "if that attempt failed too, replay the job's newest dead letter "
        f"(`jetjobs dlq list --company {letter.company}`)",
    )


def unknown_letter(letter_id: int) -> ApiFailure:
    return ApiFailure(404, f"unknown dead letter {letter_id}: see `jetjobs dlq list`")


class LifecycleApi:
    """Handlers that change or show where jobs stand beyond plain queries."""

    def __init__(self, pool: Any, bus: Bus) -> None:
        self._pool = pool
        self._bus = bus

    def handlers(self) -> dict[str, Handler]:
        """The handler of each lifecycle operation, to merge into the store's map."""
        return {
            "job.cancel": _typed("job.cancel", api.JobRef, self.job_cancel),
            "dlq.list": _typed("dlq.list", DeadLetterQuery, self.dlq_list),
            "dlq.get": _typed("dlq.get", DeadLetterRef, self.dlq_get),
            "dlq.replay": _typed("dlq.replay", DeadLetterRef, self.dlq_replay),
            "runner.list": _typed("runner.list", RunnerQuery, self.runner_list),
        }

    async def job_cancel(self, request: api.JobRef) -> CancelReply:
        """Mark the cancel, so executors refuse the job at their gate or kill it; then end
        it here only if no executor can have received it. Otherwise its executor reports
        how it ended (refused, killed, or finished first): the record's status lags the
        bus, and a `dispatched` job may already be running."""
        queries = Queries(self._pool)
        job = await queries.job_by_id(request.id)
        if job is None:
            raise ApiFailure(404, f"unknown job '{request.id}': see `jetjobs job list`")
        if job.final:
            raise ApiFailure(409, f"job {job.id} already ended ({job.status.value}): nothing to cancel")
        if job.dispatched_at is None:
            return await self._cancel_unrecorded(job)
        await self._mark(job)
        if job.status in (Status.ACKNOWLEDGED, Status.STARTED):
            return self._left_to_executor(job, "running")
        queued = job.status is Status.DISPATCHED
        try:
            unreached = await (self._untaken(job) if queued else self._between_attempts(job))
        except NATS_ERRORS as error:
            raise ApiFailure(
                503,
                f"could not tell whether an executor has job {job.id} ({error!r}); "
                "its cancel is recorded, executors refuse it: try again to see it end",
            ) from None
        if not unreached:
            return self._left_to_executor(job, "taken")
        await self._publish(cancelled_event(job, "cancelled by request"))
        log.info("job.cancelled", job_id=job.id, company=job.company, attempt=job.attempt)
        return CancelReply(job_id=job.id, company=job.company, state="queued")

    async def _cancel_unrecorded(self, job: JobRecord) -> CancelReply:
        """End a job known only from its events once no message of it can be on its way
        (unchanged for a runner's TTL while the store is caught up, as the reaper waits):
        nothing can run it, and the reaper leaves one a live runner reports to that runner.
        No cancel mark: it names a job id, which another company's job may have (see
        `not_dispatched`)."""
        quiet_for = self._bus.layout.runner_ttl
        quiet = await Queries(self._pool).unrecorded_quiet(job.id, quiet_for)
        try:
            settled = quiet and await store_backlog(self._bus.js) == 0
        except NATS_ERRORS as error:
            raise ApiFailure(
                503,
                f"could not tell whether job {job.id}'s message is still to be recorded ({error!r}); try again",
            ) from None
        if not settled:
            raise not_dispatched(job, quiet_for)
        await self._publish(unrecorded_cancelled_event(job))
        log.info("job.cancelled", job_id=job.id, company=job.company, attempt=job.attempt, state="unrecorded")
        return CancelReply(job_id=job.id, company=job.company, state="queued")

    def _left_to_executor(self, job: JobRecord, state: str) -> CancelReply:
        log.info("job.cancel_requested", job_id=job.id, company=job.company, attempt=job.attempt, state=state)
        return CancelReply(job_id=job.id, company=job.company, state=state)

    async def _untaken(self, job: JobRecord) -> bool:
        """Whether a queued job's message left the stream before any executor received
        it. A message already delivered stays: its executor refuses or kills the job, and
        if that executor goes, JetStream hands the message to one that refuses it. One
        delivered between the look and the delete is gone for good, and its executor
        (or, if it dies, the reaper) ends the job."""
        seq = None if job.pool is None else await self._sequence(job)
        if seq is None or job.pool is None:
            return False
        js = self._bus.js
        if await handed_out(js, job.company, job.pool, seq):
            return False
        await delete_dispatch(js, seq, job.id)
        return not await handed_out(js, job.company, job.pool, seq)

    async def _sequence(self, job: JobRecord) -> int | None:
        """Where the job's message is in the dispatch stream. A job run a moment ago is
        recorded before its message is projected, so this waits for that a little."""
        queries = Queries(self._pool)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEQUENCE_WAIT
        delay = 0.01
        while (seq := await queries.dispatch_of(job.id)) is None and loop.time() + delay < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        return seq

    async def _between_attempts(self, job: JobRecord) -> bool:
        """Whether a job waiting for its next attempt (a retry, or a redelivery after its
        executor was lost), on whichever attempt, left the stream before any executor
        received it again, as `_untaken` asks of a queued one: looked at, its message
        deleted (when known), looked at again. A redelivery moves no consumer's delivered
        sequence, so what tells is the bus showing no later step than the record, and the
        retry not due for a while, or no executor of its pool alive to take it."""
        last = await last_event(self._bus.js, job.company, job.id)
        if last is None or last.attempt != job.attempt or last.status is not Status.ERROR or last.final:
            return False
        if not await self._unreachable(job.pool, last):
            return False
        seq = await Queries(self._pool).dispatch_of(job.id)
        if seq is not None:
            await delete_dispatch(self._bus.js, seq, job.id)
        return await self._unreachable(job.pool, last)

    async def _unreachable(self, pool: str | None, last: JobEvent) -> bool:
        """Whether no executor can be handed the attempt `last` announced yet."""
        return _retry_ahead(last) or await self._no_runner(pool)

    async def _no_runner(self, pool: str | None) -> bool:
        """Whether no executor of `pool` is alive: only a live one can hold a message.
        A runners bucket made less than a heartbeat TTL ago (NATS restarted) may not
        list every live one yet."""
        board = await RunnerBoard.open(self._bus.js, self._bus.layout)
        made = await board.made()
        ttl = timedelta(seconds=self._bus.layout.runner_ttl)
        if pool is None or made is None or made > _now() - ttl:
            return False
        return all(runner.pool != pool for runner in await board.live())

    async def _mark(self, job: JobRecord) -> None:
        try:
            await (await CancelBoard.open(self._bus.js)).mark(job.id, "cancelled by request")
        except Exception as error:
            raise ApiFailure(
                503, f"could not record the cancel of job {job.id} ({error!r}); try again"
            ) from None

    async def _publish(self, event: JobEvent) -> None:
        try:
            await self._bus.publisher.event(event)
        except (PublishFailed, TimeoutError) as error:
            raise ApiFailure(503, f"could not record job {event.job_id}'s end ({error}); try again") from None

    async def dlq_list(self, request: DeadLetterQuery) -> DeadLetterList:
        found = await Queries(self._pool).dead_letter_records(
            request.company, request.limit + 1, reader(), request.before
        )
        letters, more = fit(found, request.limit)
        return DeadLetterList(dead_letters=letters, more=more)

    async def dlq_get(self, request: DeadLetterRef) -> DeadLetterRecord:
        letter = await Queries(self._pool).dead_letter(request.id)
        if letter is None:
            raise unknown_letter(request.id)
        return shown_letter(letter)

    async def dlq_replay(self, request: DeadLetterRef) -> Replayed:
        async with self._pool.acquire() as conn, conn.transaction():
            queries = Queries(conn)
            letter = await queries.dead_letter_by_id(request.id)
            if letter is None:
                raise unknown_letter(request.id)
            if letter.replayed_as is not None:
                raise already_replayed(letter)
            job = await queries.job_by_id(letter.job_id) if letter.job_id else None
            message = await self._after_the_bus(replay_message(letter, job))
            nodes = await FlowQueries(conn).nodes_of_jobs([message.job_id])
            refusal = in_flow(letter, message, nodes[0][1:] if nodes else None)
            if refusal is not None:
                raise refusal
            try:
                await self._bus.publisher.dispatch([message])
            except (PublishFailed, TimeoutError) as error:
                raise ApiFailure(503, f"could not queue the replay ({error}); try again") from None
            await queries.mark_replayed(letter.id, message.attempt)
            if job is not None:
                await queries.reopen_job(job.id, message.attempt, message.dispatched_at)
        log.info("job.replayed", job_id=message.job_id, company=message.company, attempt=message.attempt)
        return Replayed(job_id=message.job_id, company=message.company, attempt=message.attempt)

    async def _after_the_bus(self, message: JobMessage) -> JobMessage:
        """The replay after every attempt the bus has seen, not only those recorded (the
        record may lag: an attempt number used again would fence the replay's outcome
        off), refused while the job's cancel is kept: executors would refuse it unrun."""
        try:
            latest = await last_event(self._bus.js, message.company, message.job_id)
            cancel = await (await CancelBoard.open(self._bus.js)).reason(message.job_id)
        except NATS_ERRORS as error:
            raise ApiFailure(
                503, f"could not read job {message.job_id}'s latest news ({error!r}); try again"
            ) from None
        if cancel is not None:
            days = self._bus.layout.cancel_ttl / 86_400
            raise ApiFailure(
                409,
                f"job {message.job_id} was cancelled ({cancel}) and executors refuse every message of it for "
                f"{days:g} days after its cancel: a replay would not run; run it again as a new job instead "
                "(`jetjobs job run TEMPLATE_ID` for a template's job)",
            )
        if latest is not None and latest.attempt >= message.attempt:
            return message.model_copy(update={"attempt": latest.attempt + 1})
        return message

    async def runner_list(self, request: RunnerQuery) -> RunnerList:
        live = await (await RunnerBoard.open(self._bus.js, self._bus.layout)).live()
        return RunnerList(runners=[r for r in live if request.pool in (None, r.pool)])
