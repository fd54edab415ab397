"""Executors killed, frozen and stopped for real, while their jobs run."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor.config import MEMORY_EXIT
from tests.acceptance.test_up_memory_limit import LIMIT_MB, leaking_pythonpath
from tests.faults.harness import ACK_WAIT, Faults, Proc, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(90)

SLEEP = ["sh", "-c", "sleep 3"]


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def started_on(f: Faults, job_id: str) -> str:
    async def probe() -> str | None:
        row = (await f.jobs([job_id])).get(job_id)
        return str(row["runner"]) if row is not None and row["status"] == "started" else None

    return await eventually(probe, 20, f"job {job_id} to start")


async def test_sigkill_mid_job_is_redelivered_and_recorded_once(f: Faults) -> None:
    doomed = f.executor(slots=1)
    await f.ready(doomed)
    [job_id] = await f.submit(1, SLEEP)
    await started_on(f, job_id)
    doomed.signal(signal.SIGKILL)
    survivor = f.executor(slots=1)
    await f.ready(survivor)
    job = (await f.all_final([job_id], 30))[job_id]
    assert job["status"] == "processed" and job["attempt"] == 2
    attempts = await f.attempts(job_id)
    assert [(a["status"], a["kind"]) for a in attempts] == [("error", "lost"), ("processed", None)]
    assert attempts[0]["runner"] != attempts[1]["runner"]


async def test_frozen_before_ack_loses_the_job_to_another_executor(f: Faults) -> None:
    frozen, job_id = await f.frozen_holding(["true"], timeout_ack=ACK_WAIT)
    taker = f.executor(slots=1)
    await f.ready(taker)
    job = (await f.all_final([job_id], 30))[job_id]
    assert job["status"] == "processed" and job["attempt"] == 2
    assert str(job["runner"]).endswith(f"-{taker.pid}")
    frozen.signal(signal.SIGCONT)


async def test_frozen_mid_run_reports_late_and_is_fenced(f: Faults) -> None:
    sleeper = f.executor(slots=1)
    await f.ready(sleeper)
    [job_id] = await f.submit(1, SLEEP)
    first_runner = await started_on(f, job_id)
    sleeper.signal(signal.SIGSTOP)
    other = f.executor(slots=1)
    await f.ready(other)
    job = (await f.all_final([job_id], 30))[job_id]
    assert job["status"] == "processed" and job["attempt"] == 2
    sleeper.signal(signal.SIGCONT)

    async def late_result() -> bool:
        events = await f.rows("SELECT attempt, status, stale FROM job_event WHERE job_id = $1", job_id)
        return any(e["attempt"] == 1 and e["status"] == "processed" and e["stale"] for e in events)

    await eventually(late_result, 20, "the late result of attempt 1 to be recorded stale")
    after = (await f.jobs([job_id]))[job_id]
    assert after["status"] == "processed" and after["attempt"] == 2 and after["runner"] != first_runner


async def test_sigterm_drains_running_jobs_and_hands_on_the_queue(f: Faults) -> None:
    busy = f.executor(slots=2)
    await f.ready(busy)
    ids = await f.submit(6, ["sh", "-c", "sleep 2"])
    running = await eventually(lambda: _started(f, ids, 2), 20, "two jobs to start")
    busy.signal(signal.SIGTERM)
    other = f.executor(slots=2)
    jobs = await f.all_final(ids, 40)
    assert await asyncio.to_thread(busy.popen.wait, 20) == 0
    assert all(j["status"] == "processed" for j in jobs.values())
    for job_id in running:
        assert jobs[job_id]["attempt"] == 1 and str(jobs[job_id]["runner"]).endswith(f"-{busy.pid}")
    assert sum(str(j["runner"]).endswith(f"-{other.pid}") for j in jobs.values()) == 4


async def test_a_second_sigterm_hands_running_jobs_back_at_once(f: Faults) -> None:
    """The first stop signal drains; another one meanwhile does not kill the executor
    (its jobs would be left running, unowned) but has it hand its jobs back now."""
    busy = f.executor(slots=1)
    await f.ready(busy)
    [job_id] = await f.submit(1, ["sh", "-c", "sleep 60"])
    await started_on(f, job_id)
    busy.signal(signal.SIGTERM)
    await eventually(lambda: _said(busy, "executor.draining"), 10, "the executor to drain")
    busy.signal(signal.SIGTERM)
    assert await asyncio.to_thread(busy.popen.wait, 20) == 0, busy.tail()
    assert "service.hurried" in busy.tail(100)
    [attempt] = await f.attempts(job_id)
    assert (attempt["status"], attempt["kind"]) == ("error", "lost"), dict(attempt)
    assert "handed back" in str(attempt["reason"]), dict(attempt)


async def _said(proc: Proc, event: str) -> bool:
    return event in proc.tail(100)


async def _started(f: Faults, ids: list[str], count: int) -> list[str] | None:
    found = [k for k, r in (await f.jobs(ids)).items() if r["status"] == "started"]
    return found if len(found) >= count else None


async def test_memory_ceiling_drains_and_exits_for_a_restart(f: Faults, tmp_path: Path) -> None:
    capped = f.executor(slots=1, JETJOBS_MEMORY_LIMIT_MB=LIMIT_MB, PYTHONPATH=leaking_pythonpath(tmp_path))
    await f.ready(capped)
    [job_id] = await f.submit(1, SLEEP)
    await started_on(f, job_id)
    capped.signal(signal.SIGUSR1)
    assert await asyncio.to_thread(capped.popen.wait, 30) == MEMORY_EXIT, capped.tail()
    said = capped.tail(200)
    assert "executor.memory_limit" in said and f"exit status {MEMORY_EXIT}, for its supervisor" in said
    job = (await f.jobs([job_id]))[job_id]  # drained: the job in hand finished before the exit
    assert job["status"] == "processed" and job["attempt"] == 1, job
    assert str(job["runner"]).endswith(f"-{capped.pid}")


async def test_a_memory_limit_the_executor_already_fills_is_refused_at_start(f: Faults) -> None:
    refused = f.executor(JETJOBS_MEMORY_LIMIT_MB="32")
    assert await asyncio.to_thread(refused.popen.wait, 30) == 1
    said = refused.tail()
    told = re.search(
        r"^jetjobs: error: memory_limit_mb \(JETJOBS_MEMORY_LIMIT_MB\) is 32 MiB, but this executor process "
        r"already uses \d+ MiB before running a job: set it to at least (\d+) \(its size now plus 32 MiB "
        r"for jobs and 16 MiB for its own growth\), or to 0 for no limit$",
        said,
        re.MULTILINE,
    )
    assert told is not None and "Traceback" not in said, said
    advised = f.executor(JETJOBS_MEMORY_LIMIT_MB=told[1])
    await f.ready(advised)
