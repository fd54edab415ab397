"""A job that kills its own executor: run a bounded number of times, then dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contracts import subjects as s
from contracts.messages import JobMessage
from store.reaper import LOST_LIMIT
from tests.faults.harness import Faults, Proc, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


def runs_of(log: Path) -> list[tuple[int, int]]:
    """(attempt, parent pid) of every run the job logged."""
    if not log.exists():
        return []
    return [(int(a), int(p)) for a, p in (line.split() for line in log.read_text().splitlines())]


async def reaches(f: Faults, job_id: str, attempt: int, status: str, kind: str | None = None) -> None:
    """Until the job's row is at `attempt`, in `status` (of `kind`)."""

    async def there() -> bool:
        job = (await f.jobs([job_id])).get(job_id)
        return job is not None and (job["attempt"], job["status"], job["kind"]) == (attempt, status, kind)

    await eventually(there, 20, f"attempt {attempt} of job {job_id} to be {status}")


async def died(proc: Proc) -> int:
    return await asyncio.to_thread(proc.popen.wait, 20)


async def test_a_job_that_kills_its_executor_ends_lost_after_the_limit(f: Faults, tmp_path: Path) -> None:
    """The job kills its executor once its start is recorded, and the test restarts an
    executor each time one dies, once the store has recorded the loss (a supervisor
    slower than the ack wait): the job runs LOST_LIMIT times, whatever its `retries`
    (0), then ends final and goes to the dead letters."""
    log = tmp_path / "runs"
    go = tmp_path / "go"
    poison = [
        "sh",
        "-c",
        f'echo "$JETJOBS_ATTEMPT $PPID" >> {log}; i=0; '
        f"while [ ! -e {go}.$JETJOBS_ATTEMPT ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done; "
        f"[ -e {go}.$JETJOBS_ATTEMPT ] && kill -9 $PPID",
    ]
    job_id = ""
    for run in range(1, LOST_LIMIT + 1):
        executor = f.executor(slots=1)
        await f.ready(executor)
        if not job_id:
            [job_id] = await f.submit(1, poison, retries=0)
        await reaches(f, job_id, run, "started")
        await asyncio.to_thread(Path(f"{go}.{run}").touch)
        assert await died(executor) == -9
        assert runs_of(log)[-1] == (run, executor.pid), "the job's parent is the executor it kills"
        await reaches(f, job_id, run, "error", "lost")

    job = (await f.jobs([job_id]))[job_id]
    assert (job["status"], job["kind"], job["final"], job["attempt"]) == ("error", "lost", True, LOST_LIMIT)
    assert f"its executor stopped {LOST_LIMIT} times while running it" in job["reason"]
    assert "see the dead letters" in job["reason"]

    async def letters() -> list[Any] | None:
        found = await f.rows("SELECT * FROM dead_letter WHERE job_id = $1", job_id)
        return found or None

    [letter] = await eventually(letters, 20, "the job's dead letter")
    assert f"its executor stopped {LOST_LIMIT} times" in letter["reason"]
    original = JobMessage.model_validate_json(letter["payload"])
    assert (original.job_id, original.argv, original.retries) == (job_id, poison, 0)

    later = f.executor(slots=1)
    await f.ready(later)
    await asyncio.sleep(3 * f.ack_wait)  # past any redelivery of the job's message
    assert later.popen.poll() is None, "a later executor must not run the job again"
    assert [attempt for attempt, _ in runs_of(log)] == list(range(1, LOST_LIMIT + 1))
    assert len(await f.rows("SELECT 1 FROM dead_letter WHERE job_id = $1", job_id)) == 1
    assert (await f.jobs([job_id]))[job_id]["final"]
    info = await f.bus.js.consumer_info(s.DISPATCH_STREAM, s.pool_consumer("default"))
    assert (info.num_pending, info.num_ack_pending) == (0, 0), "its message has left the dispatch stream"


async def test_a_job_that_kills_each_executor_at_once_runs_no_more_than_the_limit(
    f: Faults, tmp_path: Path
) -> None:
    """The supervisor's worst case: the job kills its executor the moment it starts, and
    a new executor is up at once, before the store has ruled on the loss. A redelivery
    waits for that ruling, and puts its own start on record before it runs the job, so
    each of its losses is counted. A first delivery's start is not awaited (that would
    cost every job a round trip): when the job kills it before it is sent, that run goes
    uncounted, so the job runs at most once more than LOST_LIMIT."""
    log = tmp_path / "runs"
    poison = ["sh", "-c", f'echo "$JETJOBS_ATTEMPT $PPID" >> {log}; kill -9 $PPID']
    [job_id] = await f.submit(1, poison, retries=0)

    async def final() -> bool:
        job = (await f.jobs([job_id])).get(job_id)
        return job is not None and job["final"]

    deadline = asyncio.get_running_loop().time() + 45
    while not await final():
        assert asyncio.get_running_loop().time() < deadline, f"runs so far: {runs_of(log)}"
        executor = f.executor(slots=1)

        async def dead_or_ended(proc: Proc = executor) -> bool:
            return proc.popen.poll() is not None or await final()

        await eventually(dead_or_ended, 20, "the executor to die or the job to end")
    later = f.executor(slots=1)
    await f.ready(later)
    await asyncio.sleep(2 * f.ack_wait)  # past any redelivery
    assert later.popen.poll() is None
    assert LOST_LIMIT <= len(runs_of(log)) <= LOST_LIMIT + 1, runs_of(log)
    job = (await f.jobs([job_id]))[job_id]
    assert (job["kind"], job["final"]) == ("lost", True)
