"""A job's recorded end is when its process exited, not when the executor was done
reporting it: with NATS away just then, storing the live output waited its whole
timeout, and that wait used to be counted as the job's own run time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jetjobs.embedded import NatsServer
from tests.faults.harness import faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)

OUTAGE = 8.0
"""Seconds NATS stays away after the job exits: longer than the live output's wait for acks."""


async def test_the_end_of_a_job_is_when_its_process_exited_not_when_nats_came_back(
    embedded_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    script = f"date +%s.%N >&2; while [ ! -e {go} ]; do sleep 0.05; done; seq 1 20000; date +%s.%N >&2"
    async with faults(embedded_nats.url, database_url, tmp_path, ack_wait=60.0) as f:
        await f.ready(f.executor(slots=1))
        [job_id] = await f.submit(1, ["sh", "-c", script])

        async def started() -> bool:
            return await f.status(job_id) == "started"

        await eventually(started, 20, "the job to start")
        await asyncio.to_thread(embedded_nats.stop)
        go.touch()
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(embedded_nats.restart)
        row = (await f.all_final([job_id], 60))[job_id]
    assert row["status"] == "processed", row
    own_start, own_end = (float(line) for line in row["stderr"].split())
    recorded = (row["end_at"] - row["begin_at"]).total_seconds()
    assert recorded < own_end - own_start + 1.0, (recorded, own_end - own_start)
    assert abs(row["end_at"] - datetime.fromtimestamp(own_end, UTC)).total_seconds() < 1.0, row["end_at"]
