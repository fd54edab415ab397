"""`jetjobs job logs` and `jetjobs events`: a job's output and lifecycle events, live."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import TextIO

from bus import job_events, live_events
from bus.output import job_output, oldest_output
from bus.watch import following
from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.messages import JobEvent
from contracts.output import LogChunk
from contracts.records import JobRecord

from .. import render
from ..commands import CommandError, Session, exit_status, known_company

APPEAR_WAIT = 5.0
"""Seconds `job logs -f` waits, silently, for a job the store does not know yet.

Why wait at all: a job the scheduler, a flow or another NATS client has just
queued is recorded by the store's dispatch projection a moment after it is
published (milliseconds, more under a backlog), and `job run` records it before
it answers only while Postgres is up; so a follower started right after the job
may ask before the record exists. Why bounded: an id that is wrong (a typo, a
job of another system) never appears, and the command must then fail with the
same error as without `-f` rather than wait for nothing. A few seconds cover the
store's usual lag and keep a typo's error quick."""


async def _job(ses: Session, job_id: str, *, wait: bool) -> JobRecord:
    """The job's record; when following, a job the store has not recorded yet is
    waited for, up to `APPEAR_WAIT` seconds, before the same "no job" error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (APPEAR_WAIT if wait else 0)
    while True:
        try:
            return await ses.api.call("job.get", api.JobRef(id=job_id), JobRecord)
        except ApiFailure as failure:
            if failure.code != 404:
                raise CommandError(failure.message) from None  # e.g. not allowed to read it: says who may
            if loop.time() >= deadline:
                raise CommandError(f"no job {job_id}: check the id with `jetjobs job list`") from None
        await asyncio.sleep(0.2)


async def _until_final(ses: Session, company: str, job_id: str) -> JobEvent:
    """The job's final event (the events of a job end only by raising: see `bus.watch`)."""
    events = job_events(ses.bus.js, s.events_subject(company, job_id))
    return await anext(event async for event in events if event.final)


LOST = (
    "job {id}: the live log stream no longer holds {what} of this job's output (it is bounded and "
    "shared by every tenant); `jetjobs job show {id}` has what the store kept"
)
GONE = (
    "job {id}: the live log stream holds nothing stored before {start} (it is bounded and shared by "
    "every tenant), so whatever attempt{s} {attempts} printed is gone from it; `jetjobs job show {id}` "
    "has what the store kept of the last attempt"
)
RECORDED = (
    "job {id}: the live log stream no longer holds this job's output (it is bounded and shared by "
    "every tenant); printing what the store kept of its last attempt, as `jetjobs job show {id}` does"
)


class _Printer:
    """Prints a job's chunks and says, once, on stderr, when the logs stream lost some.

    The stream drops its oldest chunks first (by age and size, across all tenants),
    and each attempt numbers the chunks of each of its streams from 0: a stream of
    an attempt whose first chunk read is not 0, or a number skipped, means output
    is gone. A final job of which nothing is left gets the output its record kept.
    Costs one dict entry per attempt and stream, and one lookup per chunk."""

    def __init__(self, job_id: str, as_json: bool) -> None:
        self._job_id = job_id
        self._as_json = as_json
        self._next: dict[tuple[int, str], int] = {}
        self._attempt: int | None = None
        self._warned = False

    def chunk(self, chunk: LogChunk) -> None:
        key = (chunk.attempt, chunk.stream)
        expected = self._next.get(key, 0)
        if chunk.seq > expected and not self._warned:
            self._warned = True
            _note(LOST.format(id=self._job_id, what="the start" if expected == 0 else "part"))
        self._next[key] = max(expected, chunk.seq + 1)
        self._print(chunk)

    def _gone(self, job: JobRecord, start: datetime) -> None:
        """Say which attempts ran a process before the oldest chunk the stream holds
        (`start`) and have no chunk left: a chunk numbering cannot tell an attempt whose
        output is all gone from one that printed nothing."""
        read = {attempt for attempt, _ in self._next}
        gone = [
            a.attempt
            for a in job.attempts
            if a.pid is not None and a.attempt not in read and a.begin is not None and a.begin < start
        ]
        if gone:
            attempts = ", ".join(map(str, gone))
            when = start.isoformat(timespec="seconds")
            _note(GONE.format(id=self._job_id, start=when, s="s" if len(gone) > 1 else "", attempts=attempts))

    def finish(self, job: JobRecord, end: JobRecord | JobEvent, start: datetime) -> None:
        """When nothing was read of a final job that printed something, print the
        output its record (or final event) kept instead; else say which attempts'
        output the stream, which holds nothing before `start`, lost whole."""
        if self._next or not end.final or not (end.stdout or end.stderr):
            self._gone(job, start)
            return
        _note(RECORDED.format(id=self._job_id))
        at = end.end or datetime.now(UTC)
        for stream, data in (("stdout", end.stdout), ("stderr", end.stderr)):
            if data:
                fields = {"job_id": job.id, "company": job.company, "attempt": end.attempt}
                self._print(
                    LogChunk.model_validate({**fields, "stream": stream, "seq": 0, "data": data, "at": at})
                )

    def _print(self, chunk: LogChunk) -> None:
        if self._as_json:
            print(chunk.model_dump_json(), flush=True)
            return
        if self._attempt is not None and self._attempt != chunk.attempt:
            _note(f"--- attempt {chunk.attempt} ---")
        self._attempt = chunk.attempt
        out: TextIO = sys.stdout if chunk.stream == "stdout" else sys.stderr
        out.write(render.job_text(chunk.data, out.isatty()))
        out.flush()


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def job_logs(ses: Session, job_id: str, follow: bool) -> int:
    """Print the job's output so far; with `follow`, keep printing until the job ends,
    say on stderr how it ended, and exit as `job run --wait` does (`exit_status`)."""
    job = await _job(ses, job_id, wait=follow)
    printer = _Printer(job.id, ses.as_json)
    if not follow:
        await _print_output(ses, job, None, printer)
        printer.finish(job, job, await oldest_output(ses.bus.js))
        return 0
    with following(ses.bus.nc):
        if job.final:
            await _print_output(ses, job, None, printer)
            end: JobRecord | JobEvent = job
        else:
            ended = asyncio.create_task(_until_final(ses, job.company, job.id))
            try:
                await _print_output(ses, job, ended, printer)
            finally:
                ended.cancel()
                await asyncio.gather(ended, return_exceptions=True)
            end = ended.result()
    printer.finish(job, end, await oldest_output(ses.bus.js))
    print(ending_line(job.id, end), file=sys.stderr, flush=True)
    return exit_status(end.status)


async def _print_output(
    ses: Session, job: JobRecord, ended: asyncio.Task[JobEvent] | None, printer: _Printer
) -> None:
    async for chunk in job_output(ses.bus.js, job.company, job.id, ended):
        printer.chunk(chunk)


def ending_line(job_id: str, end: JobRecord | JobEvent) -> str:
    """How a job ended: `job ID ended: error (exit), exit code 3, attempt 2: why`."""
    parts = [end.status.value + (f" ({end.kind.value})" if end.kind else "")]
    if end.exit_code is not None:
        parts.append(f"exit code {end.exit_code}")
    if end.attempt > 1:
        parts.append(f"attempt {end.attempt}")
    why = (end.reason or "").strip().splitlines()[:1]
    return f"job {job_id} ended: {', '.join(parts)}" + (f": {why[0]}" if why else "")


def event_line(event: JobEvent) -> str:
    """One readable line per lifecycle event."""
    parts = [event.at.strftime("%H:%M:%S.%f")[:-3], event.company, event.job_id, f"#{event.attempt}"]
    parts.append(event.status.value + (f"/{event.kind.value}" if event.kind else ""))
    if event.exit_code is not None:
        parts.append(f"exit={event.exit_code}")
    if event.runner:
        parts.append(f"on {event.runner}")
    if event.reason:
        parts.append(f"- {event.reason}")
    return " ".join(parts)


STORE_AWAY = frozenset({503, 504})
"""API failure codes that mean no store answered (none running, or too slow)."""


CHECK_WAIT = 3.0
"""Seconds `events` waits for the store to confirm a company before following it
unchecked: a store that is hung rather than gone would hold it for the API's 10 s."""


async def _checked_company(ses: Session, company: str) -> None:
    """Refuse a company the store does not know (or will not let the actor read):
    events come straight from NATS, which would follow a subject no job ever
    publishes on without a word. When no store answers, a note says so on stderr
    and the events are followed all the same, as `status` reports a store that is
    away rather than failing: watching events is how one sees what still runs
    while the store is down."""
    try:
        async with asyncio.timeout(CHECK_WAIT):
            await known_company(ses, company)
    except ApiFailure as failure:
        if failure.code not in STORE_AWAY:
            raise
        _unchecked(company, failure.message)
    except TimeoutError:
        _unchecked(company, f"the store did not answer within {CHECK_WAIT:g} s")


def _unchecked(company: str, why: str) -> None:
    print(
        f"could not check that company '{company}' exists ({why}); following anyway",
        file=sys.stderr,
        flush=True,
    )


async def tail_events(ses: Session, company: str | None) -> None:
    """Print lifecycle events as they happen, until interrupted. A company given must
    be one the store knows; with no store answering it is followed unchecked (see
    `_checked_company`)."""
    if company is not None:
        await _checked_company(ses, company)
    print(f"following {s.events_filter(company or '*')} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    with following(ses.bus.nc):
        async for event in live_events(ses.bus.nc, s.events_filter(company or "*")):
            print(event.model_dump_json() if ses.as_json else event_line(event), flush=True)
