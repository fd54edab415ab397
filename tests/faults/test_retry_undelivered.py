"""A retry must be taken within its message's `timeout` of when it is due, as a first
delivery must be within `timeout` of dispatch: in a pool whose executors have all
gone it ends `undelivered`, final and dead-lettered, instead of waiting for ever."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bus import ApiClient
from contracts import subjects as s
from contracts.enums import ErrorKind
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRef, Replayed
from contracts.messages import JobEvent
from tests.faults.harness import Faults, Proc, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(150)

TIMEOUT = 3.0
"""Seconds a job message (and so each of its retries) has to be taken."""

FAILS_ONCE = 'echo run >> "$RUNS"; [ "$(wc -l < "$RUNS")" -gt 1 ] && exit 0; sleep 1; exit 1'
"""Fails on its first run, a second after it starts, and succeeds on any later one."""


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


@pytest.fixture
async def slow_reaper(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    """A store whose reaper looks every 30 s (a third of the ack wait), so an executor
    can take a retry past its deadline before the reaper rules on it."""
    async with faults(nats_url, database_url, tmp_path, ack_wait=90.0) as harness:
        yield harness


async def _fail_first_run_then_drain(f: Faults, runs: Path) -> tuple[str, Proc]:
    """A job with one retry whose first run fails while its pool's only executor
    drains (SIGTERM): the executor reports the failure, hands the retry to the pool
    and exits, leaving no executor to take it."""
    runner = f.executor(slots=1)
    await f.ready(runner)
    [job_id] = await f.submit(
        1, ["sh", "-c", FAILS_ONCE], timeout=TIMEOUT, retries=1, env={"RUNS": str(runs)}
    )
    await eventually(lambda: asyncio.to_thread(runs.exists), 20, "the first run to start")
    runner.signal(signal.SIGTERM)
    assert await asyncio.to_thread(runner.popen.wait, 30) == 0, runner.tail()
    return job_id, runner


async def _first_error(f: Faults, job_id: str) -> JobEvent:
    async def recorded() -> JobEvent | None:
        rows = await f.rows(
            "SELECT payload FROM job_event WHERE job_id = $1 AND attempt = 1 AND status = 'error'", job_id
        )
        return JobEvent.model_validate(json.loads(rows[0]["payload"])) if rows else None

    return await eventually(recorded, 20, "the first attempt's error")


async def _letters(f: Faults, job_id: str) -> list[Any]:
    async def buried() -> list[Any] | None:
        return list(await f.rows("SELECT * FROM dead_letter WHERE job_id = $1", job_id)) or None

    return await eventually(buried, 15, "the dead letter")


async def test_a_retry_no_executor_takes_ends_undelivered_and_its_replay_runs(
    f: Faults, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    job_id, _ = await _fail_first_run_then_drain(f, runs)
    error = await _first_error(f, job_id)
    assert error.retry_in is not None and not error.final, "the first run left a retry"

    job = (await f.all_final([job_id], 30))[job_id]
    assert (job["status"], job["kind"], job["final"], job["attempt"]) == ("error", "undelivered", True, 2)
    assert "no executor of pool `default` took the retry (attempt 2) within 3 s" in job["reason"]
    attempts = [(a["status"], a["kind"]) for a in await f.attempts(job_id)]
    assert attempts == [("error", "exit"), ("error", "undelivered")]
    [ended] = await f.rows(
        "SELECT at FROM job_event WHERE job_id = $1 AND attempt = 2 AND status = 'error'", job_id
    )
    due = error.at + timedelta(seconds=error.retry_in)
    assert due + timedelta(seconds=TIMEOUT) < ended["at"] < due + timedelta(seconds=TIMEOUT + 10), (
        "ended once its timeout had passed since the retry was due, and soon after"
    )
    stream = await f.bus.js.stream_info(s.DISPATCH_STREAM)
    assert stream.state.messages == 0, "the retry's message left the stream"

    [letter] = await _letters(f, job_id)
    assert letter["reason"].startswith("never run: no executor of pool `default` took the retry")
    assert letter["subject"] == s.dispatch_subject("acme", "default") and job_id in letter["payload"]
    client = ApiClient(f.bus.nc)
    [listed] = (await client.call("dlq.list", DeadLetterQuery(), DeadLetterList)).dead_letters
    replayed = await client.call("dlq.replay", DeadLetterRef(id=listed.id), Replayed)
    assert replayed.attempt == 3
    await f.ready(f.executor(slots=1))

    async def ran() -> bool:
        return await f.status(job_id) == "processed"

    await eventually(ran, 30, "the replay to run")
    assert runs.read_text().split() == ["run", "run"], "the first run and the replay, nothing else"


async def test_a_retry_taken_past_its_deadline_is_refused_not_run(
    slow_reaper: Faults, tmp_path: Path
) -> None:
    f = slow_reaper
    runs = tmp_path / "runs"
    job_id, _ = await _fail_first_run_then_drain(f, runs)
    error = await _first_error(f, job_id)
    assert error.retry_in is not None
    await asyncio.sleep(error.retry_in + TIMEOUT + 0.5)  # from now: past when the retry must be taken by

    late = f.executor(slots=1)
    job = (await f.all_final([job_id], 25))[job_id]
    assert (job["status"], job["kind"], job["final"], job["attempt"]) == ("error", "undelivered", True, 2)
    assert job["runner"] is not None, "the executor that took it late refused it, before the reaper ruled"
    assert "no executor of pool `default` took the retry within 3 s of when it was due" in job["reason"]
    statuses = await f.rows("SELECT status FROM job_event WHERE job_id = $1 AND attempt = 2", job_id)
    assert [r["status"] for r in statuses] == ["error"], "the late retry was never acknowledged"
    assert runs.read_text().split() == ["run"], "the job ran once"
    [letter] = await _letters(f, job_id)
    assert letter["reason"].startswith("never run: no executor of pool `default` took the retry")
    assert late.popen.poll() is None, late.tail()


async def test_a_retry_an_executor_takes_runs_even_past_its_deadline(f: Faults, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    await f.ready(f.executor(slots=1))
    slow_retry = 'echo run >> "$RUNS"; [ "$(wc -l < "$RUNS")" -gt 1 ] && sleep 5 && exit 0; exit 1'
    [job_id] = await f.submit(
        1, ["sh", "-c", slow_retry], timeout=TIMEOUT, retries=1, env={"RUNS": str(runs)}
    )
    error = await _first_error(f, job_id)
    assert error.retry_in is not None
    [armed] = await f.rows("SELECT retry_attempt, retry_deadline FROM job_dispatch WHERE job_id = $1", job_id)
    due = error.at + timedelta(seconds=error.retry_in)
    assert armed["retry_attempt"] == 1, "the error set when its retry must be taken by"
    assert abs(armed["retry_deadline"] - (due + timedelta(seconds=TIMEOUT))) < timedelta(milliseconds=1)

    job = (await f.all_final([job_id], 30))[job_id]
    assert (job["status"], job["attempt"]) == ("processed", 2), "the retry ran to its end, past that time"
    assert runs.read_text().split() == ["run", "run"]
    assert await f.rows("SELECT 1 FROM dead_letter WHERE job_id = $1", job_id) == []


async def test_a_job_lost_with_no_executor_left_ends_undelivered(f: Faults, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    doomed = f.executor(slots=1)
    await f.ready(doomed)
    [job_id] = await f.submit(
        1, ["sh", "-c", 'echo run >> "$RUNS"; sleep 30'], timeout=TIMEOUT, env={"RUNS": str(runs)}
    )

    async def started() -> bool:
        return await f.status(job_id) == "started"

    await eventually(started, 20, "the job to start")
    await asyncio.to_thread(doomed.kill_group)

    async def ruled_lost() -> JobEvent | None:
        rows = await f.rows(
            "SELECT payload FROM job_event WHERE job_id = $1 AND attempt = 1 AND status = 'error'", job_id
        )
        return JobEvent.model_validate(json.loads(rows[0]["payload"])) if rows else None

    lost = await eventually(ruled_lost, 30, "the reaper to rule the attempt lost")
    assert (lost.kind, lost.final) == (ErrorKind.LOST, False), lost.reason

    job = (await f.all_final([job_id], 30))[job_id]
    assert (job["status"], job["kind"], job["final"], job["attempt"]) == ("error", "undelivered", True, 2)
    assert "no executor of pool `default` took the retry (attempt 2) within 3 s" in job["reason"]
    attempts = [(a["status"], a["kind"]) for a in await f.attempts(job_id)]
    assert attempts == [("error", "lost"), ("error", "undelivered")]
    [ended] = await f.rows(
        "SELECT at FROM job_event WHERE job_id = $1 AND attempt = 2 AND status = 'error'", job_id
    )
    assert lost.at + timedelta(seconds=TIMEOUT) < ended["at"] < lost.at + timedelta(seconds=TIMEOUT + 10), (
        "ended once its timeout had passed since the ruling, and soon after"
    )
    stream = await f.bus.js.stream_info(s.DISPATCH_STREAM)
    assert stream.state.messages == 0, "its message left the stream"
    [letter] = await _letters(f, job_id)
    assert letter["reason"].startswith("never run: no executor of pool `default` took the retry")
    assert runs.read_text().split() == ["run"]
