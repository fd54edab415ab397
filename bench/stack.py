"""The jetjobs services of one benchmark run, and watching Postgres for outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from contracts.messages import JobMessage

from .harness import Servers, ServiceProcess, running

FIRST_POLL = 0.05
"""Seconds before the second look, when nothing had finished at the first."""
POLL_RANGE = (0.005, 0.5)
"""Shortest and longest wait between two looks at the job table."""


@dataclass
class System:
    """Store and executor processes on one NATS and one fresh database."""

    nats_url: str
    database_url: str
    store: ServiceProcess
    executors: list[ServiceProcess]

    @property
    def executor(self) -> ServiceProcess:
        """The first (usually the only) executor."""
        return self.executors[0]


@contextlib.contextmanager
def system(
    box: Servers,
    runner: str,
    slots: int,
    logs: Path,
    tag: str,
    tmpdir: str | None = None,
    executors: int = 1,
) -> Iterator[System]:
    """Empty streams, a fresh database, the store (migrated) and `executors` executor
    processes sharing the pool's `slots` evenly (their jobs' working directories go
    under `tmpdir` when given)."""
    box.restart_nats()
    database = box.fresh_database()
    nats_url = box.nats.url
    store_argv = ["store", "--nats", nats_url, "--database", database]
    exec_argv = ["executor", "--nats", nats_url, "--slots", str(slots // executors), "--runner", runner]
    exec_env = {"TMPDIR": tmpdir} if tmpdir else None
    store_spec = (store_argv, logs / f"{tag}-store.log", None)
    exec_specs = [(exec_argv, logs / f"{tag}-executor{i or ''}.log", exec_env) for i in range(executors)]
    with running(store_spec, *exec_specs) as procs:
        yield System(nats_url, database, procs[0], procs[1:])


def job_messages(count: int, argv: list[str], company: str = "bench") -> list[JobMessage]:
    """`count` ad-hoc jobs, built before the clock starts."""
    now = datetime.now(UTC)
    return [
        JobMessage(
            job_id=str(uuid.uuid4()),
            company=company,
            argv=argv,
            scheduled_at=now,
            dispatched_at=now,
            timeout=3600,
            timeout_ack=60,
            timeout_result=60,
            launched_by="bench",
        )
        for _ in range(count)
    ]


async def wait_final(database_url: str, count: int, timeout: float) -> float:
    """Poll until `count` jobs have a final outcome in Postgres; returns when (wall clock).

    Each look scans the job table, with time taken from the system being measured:
    about 10 ms with 80,000 jobs in it, so a look every 50 ms would take a fifth
    of a core. The next look comes after half the time left at the rate of the
    last two looks instead: a few while the bulk is written, then closer and
    closer ones around the end, down to `POLL_RANGE[0]` apart."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        seen, seen_at = 0, time.monotonic()
        while time.monotonic() < deadline:
            done = await conn.fetchval("SELECT count(*) FROM job WHERE final")
            if done >= count:
                return time.time()
            now = time.monotonic()
            await asyncio.sleep(next_look(count - done, done - seen, now - seen_at))
            seen, seen_at = done, now
    finally:
        await conn.close()
    raise TimeoutError(f"only part of {count} jobs finished within {timeout:g} s")


def next_look(left: int, finished: int, seconds: float) -> float:
    """Seconds until the next look: half the time `left` jobs take at the rate of the
    last interval (`finished` jobs in `seconds`), within `POLL_RANGE`."""
    shortest, longest = POLL_RANGE
    if finished <= 0 or seconds <= 0:
        return FIRST_POLL
    return min(longest, max(shortest, left * seconds / finished / 2))


async def completeness(database_url: str) -> dict[str, int]:
    """What the record holds: jobs by status, attempts, events (every status persisted?)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status::text, count(*) FROM job GROUP BY status")
        attempts = await conn.fetchval("SELECT count(*) FROM job_attempt")
        events = await conn.fetchval("SELECT count(*) FROM job_event")
        lag = await conn.fetchrow(STORE_LAG)
        spans = await conn.fetchrow(JOB_SPANS)
    finally:
        await conn.close()
    timing = {k: round(float(v), 4) for k, v in [*lag.items(), *spans.items()] if v is not None}
    return {**{f"jobs_{r[0]}": r[1] for r in rows}, "attempts": attempts, "events": events, **timing}


STORE_LAG = """
SELECT
    extract(epoch FROM max(recorded_at) - min(recorded_at)) AS store_span_s,
    extract(epoch FROM max((payload->>'at')::timestamptz) - min((payload->>'at')::timestamptz)) AS executor_span_s,
    extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY recorded_at - (payload->>'at')::timestamptz))
        AS store_lag_p50_s,
    extract(epoch FROM max(recorded_at - (payload->>'at')::timestamptz)) AS store_lag_max_s
FROM job_event
"""
"""How long the executor's events took to land in Postgres (recorded_at is the
store's transaction start, so this is a slight underestimate)."""
JOB_SPANS = """
WITH ack AS (SELECT job_id, (payload->>'at')::timestamptz AS at FROM job_event WHERE status = 'acknowledged'),
done AS (SELECT job_id, (payload->>'at')::timestamptz AS at FROM job_event WHERE status IN ('processed', 'error'))
SELECT
    extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY ack.at - job.dispatched_at)) AS wait_p50_s,
    extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY done.at - ack.at)) AS run_p50_s,
    extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY done.at - ack.at)) AS run_p99_s
FROM job JOIN ack ON ack.job_id = job.id JOIN done ON done.job_id = job.id
"""
"""Per job: dispatch → acknowledged (queueing) and acknowledged → result (the executor's work)."""
