"""Servers stopped under load: Postgres away for seconds, nats-server restarted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jetjobs.embedded import NatsServer, PostgresServer
from tests.faults.harness import Faults, faults

pytestmark = pytest.mark.timeout(150)

JOBS = 500
QUICK = ["sh", "-c", "sleep 0.05"]


async def recorded_once(f: Faults, ids: list[str]) -> None:
    """Each job processed by exactly one attempt, with one processed event."""
    jobs = await f.all_final(ids, 90)
    assert len(jobs) == len(ids)
    assert {j["status"] for j in jobs.values()} == {"processed"}
    counts = await f.rows(
        "SELECT job_id, count(*) AS n FROM job_event WHERE job_id = ANY($1::text[]) AND status = 'processed' "
        "AND NOT stale GROUP BY job_id",
        ids,
    )
    assert len(counts) == len(ids) and {c["n"] for c in counts} == {1}


async def test_postgres_outage_under_load_records_every_job_once(
    nats_url: str, embedded_postgres: PostgresServer, tmp_path: Path
) -> None:
    embedded_postgres.create_database("outage")
    async with faults(nats_url, embedded_postgres.dsn("outage"), tmp_path) as f:
        for _ in range(2):
            await f.ready(f.executor(slots=8))
        ids = await f.submit(JOBS, QUICK)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(embedded_postgres.stop)
        await asyncio.sleep(4.0)
        await asyncio.to_thread(embedded_postgres.restart)
        await recorded_once(f, ids)
        attempts = await f.rows("SELECT count(*) AS n FROM job_attempt WHERE job_id = ANY($1::text[])", ids)
        assert attempts[0]["n"] == JOBS, "no job ran twice: executors never saw the outage"


async def test_nats_restart_under_load_loses_and_doubles_nothing(
    embedded_nats: NatsServer, database_url: str, tmp_path: Path
) -> None:
    # AckWait must outlast the restart plus the clients' reconnect, or running jobs
    # are (correctly, at least once) handed to another executor meanwhile.
    async with faults(embedded_nats.url, database_url, tmp_path, ack_wait=10.0) as f:
        for _ in range(2):
            await f.ready(f.executor(slots=8))
        ids = await f.submit(JOBS, QUICK)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(embedded_nats.restart)
        await recorded_once(f, ids)
