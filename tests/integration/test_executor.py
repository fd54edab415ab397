"""The executor against a real nats-server: real processes, real JetStream acks."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg

from bus import Bus, Layout
from bus.output import job_output
from bus.tasks import stop_tasks
from contracts import subjects as s
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent, JobMessage
from executor import ExecutorConfig, ExecutorService
from executor.budget import may_spare, spared
from executor.workdirs import SWEEP_EVERY
from tests.processes import alive

StartExecutor = Callable[..., Awaitable[ExecutorService]]
WAIT = 20.0


class Events:
    """Every lifecycle event published while the test runs, by job."""

    def __init__(self) -> None:
        self.seen: list[JobEvent] = []
        self._changed = asyncio.Event()

    async def receive(self, msg: Msg) -> None:
        self.seen.append(JobEvent.model_validate_json(msg.data))
        self._changed.set()

    def of(self, job_id: str) -> list[JobEvent]:
        return [e for e in self.seen if e.job_id == job_id]

    def statuses(self, job_id: str) -> list[tuple[int, Status]]:
        return [(e.attempt, e.status) for e in self.of(job_id)]

    async def until(self, check: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    async def final(self, job_id: str, timeout: float = WAIT) -> JobEvent:
        """The event that ends the job (no attempt follows)."""
        await self.until(lambda: any(e.final for e in self.of(job_id)), timeout)
        return next(e for e in self.of(job_id) if e.final)


def job(argv: list[str], **fields: Any) -> JobMessage:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex,
        "company": "acme",
        "argv": argv,
        "scheduled_at": now,
        "dispatched_at": now,
        "timeout": 60,
        "timeout_ack": 30,
        "timeout_result": 20,
    }
    return JobMessage(**(values | fields))


def sh(script: str, **fields: Any) -> JobMessage:
    return job(["sh", "-c", script], **fields)


@pytest.fixture
def layout() -> Layout:
    return Layout()


@pytest.fixture
async def bus(nats_url: str, layout: Layout) -> AsyncIterator[Bus]:
    opened = await Bus.open(nats_url, "executor-test", layout)
    yield opened
    await opened.close()


@pytest.fixture
async def events(bus: Bus) -> AsyncIterator[Events]:
    seen = Events()
    sub = await bus.nc.subscribe(s.EVENTS_ALL, cb=seen.receive)
    yield seen
    await sub.unsubscribe()


@pytest.fixture
async def start_executor(nats_url: str, layout: Layout) -> AsyncIterator[StartExecutor]:
    started: list[ExecutorService] = []

    async def start(**fields: Any) -> ExecutorService:
        config = ExecutorConfig(nats_url=nats_url, runner_id=f"runner-{len(started) + 1}", **fields)
        service = ExecutorService(config, layout)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


async def consumer_settled(bus: Bus, pool: str = "default") -> bool:
    info = await bus.js.consumer_info(s.DISPATCH_STREAM, s.pool_consumer(pool))
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- outcomes


async def test_success_reports_each_step_and_acks(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor()
    message = sh("echo hi")
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert events.statuses(message.job_id) == [
        (1, Status.ACKNOWLEDGED),
        (1, Status.STARTED),
        (1, Status.PROCESSED),
    ]
    assert (final.exit_code, final.stdout, final.stderr, final.runner) == (0, "hi\n", "", "runner-1")
    started = events.of(message.job_id)[1]
    assert started.pid is not None and started.begin is not None
    assert final.end is not None and final.end >= started.begin
    await eventually(lambda: consumer_settled(bus))


async def test_failure_reports_exit_code_and_stderr(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor()
    message = sh("echo oops >&2; exit 3")
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert (final.status, final.kind, final.exit_code) == (Status.ERROR, ErrorKind.EXIT, 3)
    assert (final.stderr, final.reason, final.retry_in) == ("oops\n", "exited with code 3", None)
    await eventually(lambda: consumer_settled(bus))


async def test_environment_and_workdir(
    bus: Bus, events: Events, start_executor: StartExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JETJOBS_TEST_EXECUTOR_SECRET", "leak")
    await start_executor()
    script = (
        'echo "$GREETING|$JETJOBS_JOB_ID|$JETJOBS_ATTEMPT|$JETJOBS_COMPANY|'
        '${JETJOBS_TEST_EXECUTOR_SECRET:-none}"; pwd; ls -A | wc -l; touch left-behind'
    )
    message = sh(script, env={"GREETING": "hello"})
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert final.stdout is not None
    line, cwd, count = final.stdout.splitlines()
    assert line == f"hello|{message.job_id}|1|acme|none"
    assert count.strip() == "0"
    assert not await asyncio.to_thread(Path(cwd).exists)


async def test_clean_workdir_is_reused_empty(bus: Bus, events: Events, start_executor: StartExecutor) -> None:
    """A directory its job left empty serves the next job, once the sweep found nothing
    of that job still running in it; one with files never does."""
    await start_executor()
    cwds = []
    for script in ("pwd", "pwd; ls -A | wc -l; touch mine", "pwd; ls -A | wc -l"):
        await asyncio.sleep(SWEEP_EVERY * 5)
        message = sh(script)
        await bus.publisher.dispatch([message])
        stdout = (await events.final(message.job_id)).stdout
        assert stdout is not None
        cwd, *count = stdout.splitlines()
        assert [c.strip() for c in count] in ([], ["0"])
        cwds.append(cwd)
    assert cwds[1] == cwds[0] and cwds[2] != cwds[1]
    assert not await asyncio.to_thread(Path(cwds[1]).exists)


async def test_stdin_is_empty(bus: Bus, events: Events, start_executor: StartExecutor) -> None:
    await start_executor()
    message = sh("cat; echo end")
    await bus.publisher.dispatch([message])
    assert (await events.final(message.job_id)).stdout == "end\n"


async def test_executable_not_found_is_invalid_without_retry(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor()
    message = job(["jetjobs-no-such-program", "x"], retries=3)
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert (final.status, final.kind, final.attempt) == (Status.ERROR, ErrorKind.INVALID, 1)
    assert final.reason is not None
    assert "executable 'jetjobs-no-such-program' not found on PATH of runner runner-1" in final.reason
    assert Status.STARTED not in {e.status for e in events.of(message.job_id)}
    await eventually(lambda: consumer_settled(bus))


async def test_file_that_is_not_executable_is_invalid(
    bus: Bus, events: Events, start_executor: StartExecutor, tmp_path: Path
) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    await start_executor()
    message = job([str(script)])
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert final.kind is ErrorKind.INVALID
    assert final.reason is not None and "is not executable by runner runner-1" in final.reason


async def test_output_over_the_limit_is_truncated(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor(output_limit=1000)
    message = job(["python3", "-c", "import sys; print('x' * 5000); sys.stderr.write('e' * 10)"])
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert final.stdout == "x" * 1000 + "\n[jetjobs: output truncated, kept the first 1000 of 5001 bytes]\n"
    assert final.stderr == "e" * 10


async def test_live_output_stops_at_the_limit_and_says_so_while_the_job_runs_on(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor(live_output_limit=100_000, output_limit=1000)
    message = sh("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done >&2")
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert (final.status, final.stderr) == (Status.PROCESSED, "done\n")
    assert final.stdout is not None and "kept the first 1000 of 3000001 bytes" in final.stdout
    chunks = [c async for c in job_output(bus.js, "acme", message.job_id)]
    text = "".join(c.data for c in chunks)
    assert text.startswith("x" * 100_000 + "\n[jetjobs: live output stopped after 100000 bytes")
    assert text.endswith("the job runs on, and its outcome keeps the start of each stream]\n")
    assert "done" not in text, "nothing is published past the limit, on either stream"


# --------------------------------------------------------------------------- retries


async def test_failing_job_runs_once_more_per_retry(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor()
    message = sh('echo "run $JETJOBS_ATTEMPT"; exit 1', retries=1)
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    errors = [e for e in events.of(message.job_id) if e.status is Status.ERROR]
    assert [(e.attempt, e.final, e.stdout) for e in errors] == [(1, False, "run 1\n"), (2, True, "run 2\n")]
    assert errors[0].retry_in is not None and 0.8 <= errors[0].retry_in <= 1.2
    assert final.retry_in is None
    second = next(e for e in events.of(message.job_id) if e.attempt == 2)
    assert (second.at - errors[0].at).total_seconds() >= 0.7
    await eventually(lambda: consumer_settled(bus))


async def test_retry_can_succeed(bus: Bus, events: Events, start_executor: StartExecutor) -> None:
    await start_executor()
    message = sh('test "$JETJOBS_ATTEMPT" -ge 2', retries=3)
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert (final.attempt, final.status) == (2, Status.PROCESSED)


# --------------------------------------------------------------------------- time limits


async def test_timeout_kills_the_whole_process_group(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor(grace=1.0)
    message = sh("sleep 60 & echo $!; wait", timeout_result=1)
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id, timeout=10)
    assert (final.kind, final.exit_code) == (ErrorKind.TIMEOUT, None)
    assert final.stdout is not None
    grandchild = int(final.stdout.split()[0])

    async def grandchild_gone() -> bool:
        return not alive(grandchild)

    # the signal is sent before the outcome; its delivery to the grandchild is asynchronous
    await eventually(grandchild_gone, timeout=2.0)
    await eventually(lambda: consumer_settled(bus))


async def test_timeout_escalates_to_kill_when_term_is_ignored(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor(grace=0.5)
    message = sh("trap '' TERM; sleep 60 & echo $!; wait; wait", timeout_result=1)
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id, timeout=10)
    assert final.kind is ErrorKind.TIMEOUT
    assert final.begin is not None and final.end is not None
    assert 1.3 <= (final.end - final.begin).total_seconds() < 5
    assert final.stdout is not None and not alive(int(final.stdout.split()[0]))


async def test_expired_message_never_runs(
    bus: Bus, events: Events, start_executor: StartExecutor, tmp_path: Path
) -> None:
    await start_executor()
    marker = tmp_path / "ran"
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    message = job(["touch", str(marker)], dispatched_at=long_ago, timeout=60, retries=2)
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert events.statuses(message.job_id) == [(1, Status.ERROR)]
    assert final.kind is ErrorKind.UNDELIVERED
    assert final.reason is not None and final.reason.startswith("not taken within 60 s of dispatch")
    assert not marker.exists()
    await eventually(lambda: consumer_settled(bus))
    [(subject, letter)] = await dead_letters(bus, 1)
    assert (subject, letter.job_id) == ("jetjobs.dead.acme", message.job_id)
    assert letter.reason.startswith("never run: not taken within 60 s of dispatch")
    assert letter.reason.endswith("replay it (`jetjobs dlq replay`) to run it now")
    assert JobMessage.model_validate_json(letter.payload) == message


@pytest.mark.parametrize("layout", [Layout(ack_wait=1.5)])
async def test_heartbeat_keeps_a_long_job_from_redelivery(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor(slots=2)
    await start_executor(slots=2)
    message = sh("sleep 4; echo done")
    await bus.publisher.dispatch([message])
    final = await events.final(message.job_id)
    assert (final.attempt, final.stdout) == (1, "done\n")
    await asyncio.sleep(2)
    assert {e.attempt for e in events.of(message.job_id)} == {1}
    assert [e.status for e in events.of(message.job_id)].count(Status.ACKNOWLEDGED) == 1


# --------------------------------------------------------------------------- bad input


async def dead_letters(bus: Bus, count: int) -> list[tuple[str, DeadLetter]]:
    async def stored() -> bool:
        info = await bus.js.stream_info(s.DEAD_STREAM)
        return info.state.messages >= count

    await eventually(stored, timeout=WAIT)
    letters = []
    for seq in range(1, count + 1):
        raw = await bus.js.get_msg(s.DEAD_STREAM, seq)
        letters.append((raw.subject or "", DeadLetter.model_validate_json(raw.data or b"")))
    return letters


async def test_malformed_messages_are_dead_lettered_and_work_goes_on(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor()
    await bus.js.publish("jetjobs.dispatch.acme.default", b"\xff\x00 not json")
    await bus.js.publish("jetjobs.dispatch.acme.default", b'{"job_id": "j-1", "company": "acme"}')
    await bus.js.publish("jetjobs.dispatch.ACME.default", b"{}", headers={"X-Trace": "t1"})
    message = sh("echo still working")
    await bus.publisher.dispatch([message])
    assert (await events.final(message.job_id)).stdout == "still working\n"
    letters = {letter.payload: (subject, letter) for subject, letter in await dead_letters(bus, 3)}
    subject, garbage = letters["\ufffd\x00 not json"]
    assert (subject, garbage.reason, garbage.company) == ("jetjobs.dead.acme", "not valid JSON", "acme")
    subject, partial = letters['{"job_id": "j-1", "company": "acme"}']
    assert subject == "jetjobs.dead.acme" and partial.job_id == "j-1"
    assert partial.reason.startswith("invalid JobMessage: ") and "argv" in partial.reason
    subject, stranger = letters["{}"]
    assert (subject, stranger.company, stranger.subject) == (
        "jetjobs.dead.unknown",
        "unknown",
        "jetjobs.dispatch.ACME.default",
    )
    assert stranger.headers == {"X-Trace": "t1"}
    await eventually(lambda: consumer_settled(bus))


async def test_job_naming_another_company_is_refused(
    bus: Bus, events: Events, start_executor: StartExecutor, tmp_path: Path
) -> None:
    await start_executor()
    marker = tmp_path / "ran"
    spoofed = job(["touch", str(marker)], company="other")
    await bus.js.publish("jetjobs.dispatch.acme.default", spoofed.model_dump_json().encode())
    [(subject, letter)] = await dead_letters(bus, 1)
    assert (subject, letter.company, letter.job_id) == ("jetjobs.dead.acme", "acme", spoofed.job_id)
    assert "publish it to jetjobs.dispatch.other.default" in letter.reason
    assert not marker.exists() and events.of(spoofed.job_id) == []
    await eventually(lambda: consumer_settled(bus))


# --------------------------------------------------------------------------- capacity


async def test_never_runs_more_than_its_slots(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    await start_executor(slots=2)
    messages = [sh("sleep 1") for _ in range(6)]
    await bus.publisher.dispatch(messages)
    pending: list[int] = []

    async def sample() -> None:
        while True:
            info = await bus.js.consumer_info(s.DISPATCH_STREAM, s.pool_consumer("default"))
            pending.append(info.num_ack_pending)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        for message in messages:
            await events.final(message.job_id)
    finally:
        await stop_tasks([sampler])  # a cancel landing as consumer_info's reply comes is lost on 3.11
    spans = []
    for message in messages:
        final = next(e for e in events.of(message.job_id) if e.final)
        assert final.status is Status.PROCESSED and final.begin and final.end
        spans.append((final.begin, final.end))
    most = max(sum(1 for b, e in spans if b <= at < e) for at, _ in spans)
    assert most == 2
    assert max(pending) <= 4  # two running, and at most two more reporting their outcomes


# --------------------------------------------------------------------------- stopping


async def test_stop_waits_for_running_jobs(bus: Bus, events: Events, start_executor: StartExecutor) -> None:
    executor = await start_executor(drain_timeout=10)
    message = sh("sleep 1; echo finished")
    await bus.publisher.dispatch([message])
    await events.until(lambda: (1, Status.STARTED) in events.statuses(message.job_id))
    await executor.stop()
    await executor.stop()
    final = next(e for e in events.of(message.job_id) if e.final)
    assert (final.attempt, final.stdout) == (1, "finished\n")
    await eventually(lambda: consumer_settled(bus))


async def test_stop_hands_unfinished_jobs_to_another_executor(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    first = await start_executor(drain_timeout=0.5, grace=0.5)
    message = sh('if [ "$JETJOBS_ATTEMPT" = 1 ]; then sleep 60 & echo $!; wait; fi; echo done')
    await bus.publisher.dispatch([message])
    await events.until(lambda: (1, Status.STARTED) in events.statuses(message.job_id))
    await first.stop()
    lost = events.of(message.job_id)[-1]
    assert (lost.status, lost.kind, lost.final, lost.attempt) == (Status.ERROR, ErrorKind.LOST, False, 1)
    assert lost.stdout is not None and not alive(int(lost.stdout.split()[0]))
    await start_executor()
    final = await events.final(message.job_id)
    assert (final.attempt, final.status, final.stdout, final.runner) == (
        2,
        Status.PROCESSED,
        "done\n",
        "runner-2",
    )
    assert os.environ.get("JETJOBS_ATTEMPT") is None


async def test_an_attempt_handed_back_by_a_stopping_executor_spends_no_retry(
    bus: Bus, events: Events, start_executor: StartExecutor
) -> None:
    """A job's retries count its own failures: an attempt handed back by an executor
    that stopped (or lost with one that died, or let go before it started) spends
    none. Counted as runs, a rolling restart left a failing job fewer retries."""
    first = await start_executor(drain_timeout=0.5, grace=0.5)
    message = sh('if [ "$JETJOBS_ATTEMPT" = 1 ]; then exec sleep 60; fi; echo failing; exit 1', retries=2)
    await bus.publisher.dispatch([message])
    await events.until(lambda: (1, Status.STARTED) in events.statuses(message.job_id))
    await first.stop()  # attempt 1 is handed back: not a failure of the job's
    await start_executor()
    final = await events.final(message.job_id, timeout=60)
    ended = [(e.attempt, e.kind, e.final) for e in events.of(message.job_id) if e.status is Status.ERROR]
    assert ended == [
        (1, ErrorKind.LOST, False),
        (2, ErrorKind.EXIT, False),
        (3, ErrorKind.EXIT, False),  # the second retry it was given, though its third delivery
        (4, ErrorKind.EXIT, True),
    ], ended
    assert final.attempt == 4 and final.retry_in is None


def attempt_event(attempt: int, status: Status, kind: ErrorKind | None = None) -> JobEvent:
    at = datetime.now(UTC)
    return JobEvent(job_id="j", company="acme", attempt=attempt, status=status, kind=kind, at=at, runner="r")


def test_only_failures_of_the_job_spend_its_retries() -> None:
    message = sh("exit 1", retries=2, attempt=3)  # a replayed dead letter's fresh budget starts at 3
    story = [
        attempt_event(1, Status.ERROR, ErrorKind.EXIT),  # before the replay: not this message's
        attempt_event(3, Status.ACKNOWLEDGED),
        attempt_event(3, Status.ERROR, ErrorKind.LOST),  # handed back
        attempt_event(4, Status.STARTED),
        attempt_event(4, Status.ERROR, ErrorKind.TIMEOUT),
        # attempt 5 let go before it was acknowledged: no event
        attempt_event(6, Status.ERROR, ErrorKind.EXIT),
    ]
    assert not may_spare(message, 4)  # within the budget by count: no lookup
    assert may_spare(message, 7)
    assert spared(story, message, 7) == 2  # attempts 3 and 5
    assert not may_spare(sh("exit 1", retries=0), 9)  # no retries: nothing to spare
