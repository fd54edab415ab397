"""The life of one job message on this executor: check, acknowledge, run, report, settle.

The result event is stored by JetStream before the message is settled, so a
crash in between at worst runs the job again; it never loses the outcome."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import structlog

from bus import Delivery, EventTrail, Invalid, Publisher, misaddressed, settle
from bus.letters import dead_letter
from contracts import subjects as s
from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent, JobMessage

from . import events
from .artifacts import Collected
from .budget import Story, no_story, spared_attempts
from .classify import ExitClass, classify
from .control import Control
from .dead import exhausted_letter
from .environment import job_env
from .events import Attempt, Result, utcnow
from .gate import Refuse, Release, check
from .gate import expired as expired
from .heartbeats import Heartbeats
from .joblog import JobLog
from .live import LiveOutput
from .metrics import ExecutorMetrics, unobserved
from .noop import NoopRunning
from .outcome import (
    Failed,
    HandedBack,
    Outcome,
    Rejected,
    Retry,
    Succeeded,
    action_for,
    next_retry,
    retry_delay,
)
from .process import Aborted, Ending, Exited, Launch, NotRunnable, Running, TimedOut, launch
from .results import read_results, with_result_file
from .secrets import MaskingSink, Refused, Tenancy, Unavailable
from .workdirs import NoWorkdir, Workdir, Workdirs

log = structlog.get_logger("jetjobs.executor")


async def no_history(company: str, job_id: str) -> JobEvent | None:
    """A runtime without access to the events stream knows of no earlier outcome."""
    return None


Received = Delivery[JobMessage] | Invalid
"""A fetched message, decoded or not."""


@dataclass(frozen=True)
class Runtime:
    """What every job of one executor shares."""

    publisher: Publisher
    runner: str
    grace: float
    output_limit: int
    heartbeats: Heartbeats
    workdirs: Workdirs
    base_env: Mapping[str, str]
    launch: Callable[[Launch], Awaitable[Running | NoopRunning | NotRunnable]] = launch
    cancelled: Mapping[str, str] = field(default_factory=dict)
    """Job ids cancelled so far, with the reason (kept current by the service)."""
    history: Callable[[str, str], Awaitable[JobEvent | None]] = no_history
    """The job's latest event on the bus, to recognise a redelivery of a finished job."""
    story: Story = no_story
    """The job's events on the bus, to tell its failures from its hand-backs (`budget`)."""
    ruling_wait: float = 0.0
    """Seconds a redelivery waits for the store to rule on an earlier attempt that was
    left running (its executor died): the ruling may end the job (`reaper.LOST_LIMIT`)."""
    metrics: ExecutorMetrics = field(default_factory=unobserved)
    tenancy: Tenancy = field(default_factory=Tenancy)
    """Credentials fetched just in time and artifacts stored, through the store API."""
    live_output_limit: int = 16 * 1024 * 1024
    """Bytes of one attempt's output published live (`LiveOutput`)."""


def admitted(received: Received) -> Received:
    """A job must travel on its own company's and pool's subject: subject permissions
    are what confine a tenant, so a payload naming another company is refused."""
    if isinstance(received, Invalid):
        return received
    expected = s.dispatch_subject(received.payload.company, received.payload.pool)
    return misaddressed(received.msg, expected) or received


def attempt_number(message: JobMessage, delivered: int) -> int:
    """The fencing token: every JetStream delivery of a message is a new attempt."""
    return message.attempt + delivered - 1


async def reject_invalid(invalid: Invalid, publisher: Publisher) -> None:
    """Copy a message that is not a valid job to the dead letters, then terminate it."""
    letter = dead_letter(invalid, utcnow())
    await publisher.dead(letter, f"{s.DISPATCH_STREAM}.{invalid.msg.metadata.sequence.stream}")
    log.warning("job.invalid", subject=letter.subject, company=letter.company, reason=letter.reason)
    await settle(invalid.msg, action_for(Rejected(invalid.reason)))


async def run_delivery(delivery: Delivery[JobMessage], runtime: Runtime, control: Control) -> None:
    """Run one delivered job message to its outcome and settle it accordingly."""
    message = delivery.payload
    attempt = Attempt(message, attempt_number(message, delivery.delivered), runtime.runner)
    jlog = JobLog(
        job_id=message.job_id, company=message.company, template=message.template_id, attempt=attempt.number
    )
    outcome = await _attempt(attempt, delivery, runtime, control, jlog)
    await settle(delivery.msg, action_for(outcome))


async def _attempt(
    attempt: Attempt, delivery: Delivery[JobMessage], runtime: Runtime, control: Control, jlog: JobLog
) -> Outcome:
    if delivery.delivered > 1:  # its wait for the store's ruling may outlast the ack wait
        with runtime.heartbeats.keep(delivery):
            return await _checked(attempt, delivery, runtime, control, jlog)
    return await _checked(attempt, delivery, runtime, control, jlog)


async def _checked(
    attempt: Attempt, delivery: Delivery[JobMessage], runtime: Runtime, control: Control, jlog: JobLog
) -> Outcome:
    """The attempt, unless the gate or an earlier attempt's record says not to run it."""
    message = attempt.message
    earlier = await _earlier_event(message, attempt.number, runtime) if delivery.delivered > 1 else None
    if earlier is not None and (earlier.final or earlier.status is Status.PROCESSED):
        jlog.info("job.already_finished")
        return Succeeded()
    gate = check(message, delivery.delivered, control, runtime.cancelled, utcnow(), _retry_due(earlier))
    if isinstance(gate, Release):
        jlog.warning("job.released", reason=gate.reason, retry_in=gate.delay)
        return HandedBack(gate.delay)
    if isinstance(gate, Refuse):
        rejection = events.rejected(attempt, gate.kind, gate.reason)
        await runtime.publisher.event(rejection, attempt.nonce)
        runtime.metrics.finished(rejection)
        jlog.warning("job.finished", kind=gate.kind.value, reason=gate.reason, final=True)
        await _bury(delivery, rejection, attempt, runtime, jlog)
        return Rejected(gate.reason)
    if delivery.delivered > 1:
        attempt = replace(attempt, spared=await spared_attempts(runtime.story, message, attempt.number))
    trail = runtime.publisher.trail(attempt.nonce)
    acknowledged = events.acknowledged(attempt)
    await trail.add(acknowledged)
    if delivery.delivered > 1:  # a redelivery may follow a crash: its run is on record before it starts
        await trail.stored()
    runtime.metrics.acknowledged(message, acknowledged.at, delivery.delivered)
    jlog.debug("job.acknowledged", runner=runtime.runner)
    with runtime.heartbeats.keep(delivery):
        deadline = asyncio.get_running_loop().time() + message.timeout_result
        try:
            async with runtime.workdirs.attempt() as workdir:
                event, outcome, found = await _run(attempt, workdir, deadline, runtime, control, trail, jlog)
        except NoWorkdir as error:
            event, outcome, found = _no_workdir(attempt, error, jlog)
        control.release()  # the process is gone: its outcome is reported while the next job starts
        if found:  # read before the directory went; the store gets them while the next job runs
            await runtime.tenancy.artifacts.upload(message, attempt.number, found, control.abort)
        await trail.close(event)
        await _bury(delivery, event, attempt, runtime, jlog)
    runtime.metrics.finished(event)
    if jlog.informs:  # one line per job at info: acknowledged and started are at debug
        jlog.info(
            "job.finished",
            status=event.status.value,
            kind=event.kind.value if event.kind else None,
            exit_code=event.exit_code,
            final=event.final,
            retry_in=event.retry_in,
            runner=runtime.runner,
            seconds=round((event.end - event.begin).total_seconds(), 3)
            if event.begin and event.end
            else None,
        )
    return outcome


Ended = tuple[JobEvent, Outcome, Sequence[Collected]]
"""An attempt's result event, its outcome, and the artifacts read from its directory."""
NONE: Sequence[Collected] = ()


def _no_workdir(attempt: Attempt, error: NoWorkdir, jlog: JobLog) -> Ended:
    """No working directory could be made (a full or read-only TMPDIR): nothing ran, so
    another executor, or this one once there is room, takes the job after a delay."""
    delay = retry_delay(attempt.number - attempt.message.attempt + 1)
    reason = f"{error}: handed back to the pool, to run once there is room (in {delay:.0f} s)"
    jlog.warning("job.handed_back", reason=reason, retry_in=delay)
    return events.handed_back(attempt, reason, delay), HandedBack(delay), NONE


RULING_POLL = 0.25
"""Seconds between two looks at a job's latest event while waiting for a ruling."""


async def _earlier_event(message: JobMessage, number: int, runtime: Runtime) -> JobEvent | None:
    """The latest event of a redelivered message's job, None when unknown. A final one
    means the job already ended (its ack was lost, e.g. in a NATS restart): then it is
    acknowledged again instead of run twice. When an earlier attempt was left running,
    its executor most likely died with it: the store's ruling on it (lost, and final
    after too many) is awaited for up to `ruling_wait`, so a job that kills its executor
    is not run again before it is counted."""
    deadline = asyncio.get_running_loop().time() + runtime.ruling_wait
    while True:
        try:
            last = await runtime.history(message.company, message.job_id)
        except Exception:
            return None
        if last is None or last.attempt < message.attempt:
            return None
        left_running = last.attempt < number and last.status in (Status.ACKNOWLEDGED, Status.STARTED)
        if not left_running or asyncio.get_running_loop().time() >= deadline:
            return last
        await asyncio.sleep(RULING_POLL)


def _retry_due(earlier: JobEvent | None) -> datetime | None:
    """When the attempt an error announced was due (a retry, or a redelivery after its
    executor handed the job back), or None: it must be taken within `timeout` of that."""
    if earlier is None or earlier.status is not Status.ERROR or earlier.final or earlier.retry_in is None:
        return None
    return earlier.at + timedelta(seconds=earlier.retry_in)


async def _bury(
    delivery: Delivery[JobMessage], event: JobEvent, attempt: Attempt, runtime: Runtime, jlog: JobLog
) -> None:
    """A job that ran out of retries goes to the dead letters, with its original message."""
    letter = exhausted_letter(delivery.msg, event)
    if letter is None:
        return
    await runtime.publisher.dead(letter, f"{event.job_id}.{event.attempt}.dead", attempt.nonce)
    jlog.warning("job.dead_lettered", reason=letter.reason)


async def _run(
    attempt: Attempt,
    workdir: Workdir,
    deadline: float,
    runtime: Runtime,
    control: Control,
    trail: EventTrail,
    jlog: JobLog,
) -> Ended:
    """Start the process and supervise it, then read its results and artifacts: the
    result is reported once its working directory is gone, so nothing of the attempt
    is left behind."""
    message = attempt.message
    cwd = workdir.path
    env = with_result_file(job_env(runtime.base_env, message, attempt.number), cwd)
    prepared = await runtime.tenancy.secrets.prepare(message, env)
    if isinstance(prepared, Refused):
        return events.rejected(attempt, ErrorKind.INVALID, prepared.reason), Failed(), NONE
    if isinstance(prepared, Unavailable):
        delay = retry_delay(attempt.number - message.attempt + 1)
        reason = (
            f"{prepared.reason}: handed back to the pool, to run once the store answers (in {delay:.0f} s)"
        )
        return events.handed_back(attempt, reason, delay), HandedBack(delay), NONE
    live = LiveOutput(attempt, runtime.publisher, runtime.live_output_limit)
    masked = MaskingSink(live.feed, prepared.masker)
    spawn = Launch(
        prepared.argv,
        prepared.env,
        cwd,
        runtime.output_limit,
        runtime.runner,
        on_output=masked,
        job_id=message.job_id,
        image=message.image,
    )
    spawned = await runtime.launch(spawn)
    if isinstance(spawned, NotRunnable):
        return events.rejected(attempt, ErrorKind.INVALID, spawned.reason), Failed(), NONE
    workdir.hosts(spawned.pid, runtime.grace, jlog, runtime.metrics)
    async with spawned as running:
        begin = utcnow()
        await trail.add(events.started(attempt, running.pid, begin))
        runtime.metrics.started(message)
        jlog.debug("job.started", pid=running.pid)
        ending = await running.finish(deadline, control.abort, runtime.grace)
        end = utcnow()  # the process is reaped: storing its output and artifacts is not its run time
    await masked.flush()
    await live.close()
    found = await runtime.tenancy.artifacts.collect(message, attempt.number, cwd)
    exit_code = ending.code if isinstance(ending, Exited) else None
    mask = prepared.masker.capture
    results = {} if workdir.left_clean() else read_results(cwd)  # a clean directory holds no results file
    results = prepared.masker.results(results)
    result = Result(begin, end, mask(running.stdout), mask(running.stderr), exit_code, results)
    return *conclude(attempt, ending, result, cancelled=control.cancelled), found


def conclude(
    attempt: Attempt, ending: Ending, result: Result, cancelled: str | None = None
) -> tuple[JobEvent, Outcome]:
    """The result event and the outcome of a process that ended."""
    match ending:
        case Exited(code, None) if classify(code, attempt.message.exit_codes) is ExitClass.SUCCESS:
            return events.processed(attempt, result), Succeeded()
        case Exited(code, signum):
            return _exited(attempt, code, signum, result)
        case TimedOut():
            limit = attempt.message.timeout_result
            reason = f"no result within {limit:g} s of acknowledgement: killed (raise timeout_result if it needs longer)"
            return _error(attempt, ErrorKind.TIMEOUT, reason, result)
        case Aborted() if cancelled is not None:
            reason = f"cancelled while running: {cancelled}"
            return events.failed(attempt, ErrorKind.CANCELLED, reason, result, retry_in=None), Failed()
        case Aborted():
            reason = f"runner {attempt.runner} stopped before the job finished: handed back to the pool"
            return events.failed(attempt, ErrorKind.LOST, reason, result, retry_in=0.0), HandedBack()


def _exited(attempt: Attempt, code: int, signum: int | None, result: Result) -> tuple[JobEvent, Outcome]:
    """A failed exit: retried, unless the application says this code is final."""
    reason = _exit_reason(code, signum)
    if signum is None and classify(code, attempt.message.exit_codes) is ExitClass.FINAL:
        reason = f"{reason}, which the application declares final: not retried"
        return events.failed(attempt, ErrorKind.EXIT, reason, result, retry_in=None), Failed()
    return _error(attempt, ErrorKind.EXIT, reason, result)


def _error(attempt: Attempt, kind: ErrorKind, reason: str, result: Result) -> tuple[JobEvent, Outcome]:
    message = attempt.message
    delay = next_retry(attempt.number - attempt.spared, message.attempt, message.retries)
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
