"""A bounded soak: thousands of jobs while executors are killed at random."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import pytest

from tests.faults.harness import faults

pytestmark = pytest.mark.timeout(180)

JOBS = 2000
KILLS = 4


async def test_random_executor_kills_end_with_every_job_final(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    chaos = random.Random(20261125)
    async with faults(nats_url, database_url, tmp_path) as f:
        executors = [f.executor(slots=8) for _ in range(3)]
        for proc in executors:
            await f.ready(proc)
        ids = await f.submit(JOBS, ["true"])
        for _ in range(KILLS):
            await asyncio.sleep(chaos.uniform(1.0, 3.0))
            victim = executors.pop(chaos.randrange(len(executors)))
            victim.signal(signal.SIGKILL)
            executors.append(f.executor(slots=8))
        jobs = await f.all_final(ids, 120)
        statuses = [j["status"] for j in jobs.values()]
        assert len(jobs) == JOBS and statuses.count("processed") == JOBS
        processed = await f.rows(
            "SELECT count(DISTINCT job_id) AS n FROM job_event WHERE job_id = ANY($1::text[]) "
            "AND status = 'processed' AND NOT stale",
            ids,
        )
        assert processed[0]["n"] == JOBS
