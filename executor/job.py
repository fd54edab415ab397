"""The life of one job message on this executor: check, acknowledge, run, report, settle.

The result event is stored by JetStream before the message is settled, so a
crash in between at worst runs the job again; it never loses the outcome."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from structlog.typing import FilteringBoundLogger as Log

from bus import Delivery, Invalid, Publisher, settle
from contracts import subjects as s
from contracts.enums import ErrorKind
from contracts.messages import JobEvent, JobMessage

from . import events
from .dead import dead_letter
from .environment import job_env, workdir
from .events import Attempt, Result, utcnow
from .outcome import Failed, HandedBack, Outcome, Rejected, Retry, Succeeded, action_for, next_retry
from .process import Aborted, Ending, Exited, Launch, NotRunnable, TimedOut, launch

log = structlog.get_logger("jetjobs.executor")


Received = Delivery[JobMessage] | Invalid
"""A fetched message, decoded or not."""


@dataclass(frozen=True)
class Runtime:
    """What every job of one executor shares."""

    publisher: Publisher
    runner: str
    grace: float
    output_limit: int
    heartbeat: float
    base_env: Mapping[str, str]


def admitted(received: Received) -> Received:
    """A job must travel on its own company's and pool's subject: subject permissions
    are what confine a tenant, so a payload naming another company is refused."""
    if isinstance(received, Invalid):
        return received
    expected = s.dispatch_subject(received.payload.company, received.payload.pool)
    if received.msg.subject == expected:
        return received
    return Invalid(
        received.msg,
        f"job for company/pool {received.payload.company}/{received.payload.pool} was published to "
        f"{received.msg.subject}: publish it to {expected}",
    )


def attempt_number(message: JobMessage, delivered: int) -> int:
    """The fencing token: every JetStream delivery of a message is a new attempt."""
    return message.attempt + delivered - 1


def expired(message: JobMessage, delivered: int, now: datetime) -> str | None:
    """Why a message is too old to run, or None. Only a first delivery can be late:
    a redelivery (retry, hand-back) was taken in time before."""
    deadline = message.dispatched_at + timedelta(seconds=message.timeout)
    if delivered > 1 or now <= deadline:
        return None
    return (
        f"not taken within {message.timeout:g} s of dispatch "
        f"(dispatched {message.dispatched_at.isoformat()}, received {now.isoformat()})"
    )


async def reject_invalid(invalid: Invalid, publisher: Publisher) -> None:
    """Copy a message that is not a valid job to the dead letters, then terminate it."""
    letter = dead_letter(invalid, utcnow())
    await publisher.dead(letter, msg_id=str(invalid.msg.metadata.sequence.stream))
    log.warning("job.invalid", subject=letter.subject, company=letter.company, reason=letter.reason)
    await settle(invalid.msg, action_for(Rejected(invalid.reason)))


async def run_delivery(delivery: Delivery[JobMessage], runtime: Runtime, abort: asyncio.Event) -> None:
    """Run one delivered job message to its outcome and settle it accordingly."""
    message = delivery.payload
    attempt = Attempt(message, attempt_number(message, delivery.delivered), runtime.runner)
    jlog = log.bind(job_id=message.job_id, company=message.company, attempt=attempt.number)
    async with _heartbeat(delivery, runtime.heartbeat, jlog):
        outcome = await _attempt(attempt, delivery.delivered, runtime, abort, jlog)
    await settle(delivery.msg, action_for(outcome))


@asynccontextmanager
async def _heartbeat(delivery: Delivery[JobMessage], every: float, jlog: Log) -> AsyncIterator[None]:
    """Keep JetStream from redelivering the message while this executor works on it."""
    task = asyncio.create_task(_beat(delivery, every, jlog))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _beat(delivery: Delivery[JobMessage], every: float, jlog: Log) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await delivery.progress()
        except Exception as error:
            jlog.warning("job.heartbeat_failed", error=repr(error))


async def _attempt(
    attempt: Attempt, delivered: int, runtime: Runtime, abort: asyncio.Event, jlog: Log
) -> Outcome:
    message = attempt.message
    too_late = expired(message, delivered, utcnow())
    if too_late is not None:
        await runtime.publisher.event(events.rejected(attempt, ErrorKind.UNDELIVERED, too_late))
        jlog.warning("job.finished", kind=ErrorKind.UNDELIVERED.value, reason=too_late, final=True)
        return Rejected(too_late)
    await runtime.publisher.event(events.acknowledged(attempt))
    jlog.info("job.acknowledged", runner=runtime.runner)
    deadline = asyncio.get_running_loop().time() + message.timeout_result
    async with workdir(message.job_id) as cwd:
        event, outcome = await _run(attempt, cwd, deadline, runtime, abort, jlog)
    await runtime.publisher.event(event)
    jlog.info(
        "job.finished",
        status=event.status.value,
        kind=event.kind.value if event.kind else None,
        exit_code=event.exit_code,
        final=event.final,
        retry_in=event.retry_in,
    )
    return outcome


async def _run(
    attempt: Attempt, cwd: str, deadline: float, runtime: Runtime, abort: asyncio.Event, jlog: Log
) -> tuple[JobEvent, Outcome]:
    """Start the process and supervise it; the result is reported once its
    working directory is gone, so nothing of the attempt is left behind."""
    message = attempt.message
    env = job_env(runtime.base_env, message, attempt.number)
    spawned = await launch(Launch(message.argv, env, cwd, runtime.output_limit, runtime.runner))
    if isinstance(spawned, NotRunnable):
        return events.rejected(attempt, ErrorKind.INVALID, spawned.reason), Failed()
    async with spawned as running:
        begin = utcnow()
        await runtime.publisher.event(events.started(attempt, running.pid, begin))
        jlog.info("job.started", pid=running.pid)
        ending = await running.finish(deadline, abort, runtime.grace)
    exit_code = ending.code if isinstance(ending, Exited) else None
    return conclude(attempt, ending, Result(begin, utcnow(), running.stdout, running.stderr, exit_code))


def conclude(attempt: Attempt, ending: Ending, result: Result) -> tuple[JobEvent, Outcome]:
    """The result event and the outcome of a process that ended."""
    match ending:
        case Exited(0):
            return events.processed(attempt, result), Succeeded()
        case Exited(code, signum):
            return _error(attempt, ErrorKind.EXIT, _exit_reason(code, signum), result)
        case TimedOut():
            limit = attempt.message.timeout_result
            reason = f"no result within {limit:g} s of acknowledgement: killed (raise timeout_result if it needs longer)"
            return _error(attempt, ErrorKind.TIMEOUT, reason, result)
        case Aborted():
            reason = f"runner {attempt.runner} stopped before the job finished: handed back to the pool"
            return events.failed(attempt, ErrorKind.LOST, reason, result, retry_in=0.0), HandedBack()


def _error(attempt: Attempt, kind: ErrorKind, reason: str, result: Result) -> tuple[JobEvent, Outcome]:
    message = attempt.message
    delay = next_retry(attempt.number, message.attempt, message.retries)
    outcome: Outcome = Failed() if delay is None else Retry(delay)
    return events.failed(attempt, kind, reason, result, retry_in=delay), outcome


def _exit_reason(code: int, signum: int | None) -> str:
    if signum is None:
        return f"exited with code {code}"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"killed by {name} (exit status {code})"
