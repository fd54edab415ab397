"""The machine's raw limits, measured in the same run as the system:
JetStream publish and fetch+ack, Postgres COPY and INSERT, and spawning
/bin/true with pipes. Every ratio in a report is against these."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from executor.watcher import use_pidfd_watcher

PAYLOAD = b'{"job_id":"00000000-0000-0000-0000-000000000000","company":"bench","status":"started"}' * 3
STREAM = "BENCH_RAW"
WINDOW = 2000


@dataclass(frozen=True)
class RawSizes:
    messages: int = 20000
    awaited: int = 2000
    rows: int = 50000
    inserts: int = 2000
    spawns: int = 1000
    spawn_parallel: int = 8

    def scaled(self, fraction: float) -> RawSizes:
        """Smaller (or larger) counts, at least 10 of each."""

        def size(n: int) -> int:
            return max(10, int(n * fraction))

        return RawSizes(
            size(self.messages),
            size(self.awaited),
            size(self.rows),
            size(self.inserts),
            size(self.spawns),
            self.spawn_parallel,
        )


async def _pipelined_publish(js: nats.js.JetStreamContext, count: int) -> float:
    start = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []
    for i in range(count):
        pending.append(await js.publish_async(f"bench.raw.{i % 16}", PAYLOAD))
        if len(pending) >= WINDOW:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    return count / (time.perf_counter() - start)


async def _awaited_publish(js: nats.js.JetStreamContext, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        await js.publish(f"bench.raw.{i % 16}", PAYLOAD)
    return count / (time.perf_counter() - start)


async def _fetch_ack(js: nats.js.JetStreamContext, count: int) -> float:
    await js.add_consumer(STREAM, ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind("raw", STREAM)
    start = time.perf_counter()
    done = 0
    while done < count:
        for msg in await sub.fetch(500, timeout=5):
            await msg.ack()
            done += 1
    await sub.unsubscribe()
    return done / (time.perf_counter() - start)


async def jetstream(url: str, sizes: RawSizes) -> dict[str, float]:
    """Publish pipelined / awaited, then fetch+ack everything, on a scratch stream."""
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    try:
        js = nc.jetstream(timeout=10)
        await js.add_stream(StreamConfig(name=STREAM, subjects=["bench.raw.>"], storage=StorageType.FILE))
        pipelined = await _pipelined_publish(js, sizes.messages)
        awaited = await _awaited_publish(js, sizes.awaited)
        fetched = await _fetch_ack(js, sizes.messages + sizes.awaited)
        await js.delete_stream(STREAM)
    finally:
        await nc.close()
    return {"publish_pipelined": pipelined, "publish_awaited": awaited, "fetch_ack": fetched}


async def postgres(url: str, sizes: RawSizes) -> dict[str, float]:
    """COPY many rows in one go, then INSERT one row per awaited statement."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE bench_raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, job_id text, "
            "attempt int, status text, at timestamptz, payload jsonb)"
        )
        now = datetime.now(UTC)
        event = PAYLOAD.decode()[: len(PAYLOAD) // 3]
        rows = [(f"job-{i}", 1, "started", now, event) for i in range(sizes.rows)]
        start = time.perf_counter()
        await conn.copy_records_to_table(
            "bench_raw", records=rows, columns=["job_id", "attempt", "status", "at", "payload"]
        )
        copied = sizes.rows / (time.perf_counter() - start)
        insert = "INSERT INTO bench_raw (job_id, attempt, status, at, payload) VALUES ($1, $2, $3, $4, $5)"
        start = time.perf_counter()
        for row in rows[: sizes.inserts]:
            await conn.execute(insert, *row)
        inserted = sizes.inserts / (time.perf_counter() - start)
        await conn.execute("DROP TABLE bench_raw")
    finally:
        await conn.close()
    return {"pg_copy": copied, "pg_insert": inserted}


async def _spawn_true(true: str) -> None:
    process = await asyncio.create_subprocess_exec(
        true,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await process.communicate()


async def spawn(sizes: RawSizes) -> dict[str, float]:
    """`true` with stdout/stderr piped and read, `spawn_parallel` at a time, with
    children waited for through a pidfd (as the executor does), not a thread each,
    and the file found on PATH once (as the executor does) rather than at each spawn."""
    use_pidfd_watcher()
    true = shutil.which("true") or "/bin/true"
    todo = iter(range(sizes.spawns))

    async def worker() -> None:
        for _ in todo:
            await _spawn_true(true)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sizes.spawn_parallel)))
    return {"spawn_true": sizes.spawns / (time.perf_counter() - start)}


async def measure(nats_url: str, database_url: str, sizes: RawSizes) -> dict[str, float]:
    """Every raw limit, one after another (nothing else running)."""
    figures = await jetstream(nats_url, sizes)
    figures |= await postgres(database_url, sizes)
    figures |= await spawn(sizes)
    return figures


UNITS = {
    "publish_pipelined": ("raw JetStream publish, pipelined", "msgs/s"),
    "publish_awaited": ("raw JetStream publish, awaited", "msgs/s"),
    "fetch_ack": ("raw JetStream fetch+ack", "msgs/s"),
    "pg_copy": ("raw asyncpg COPY", "rows/s"),
    "pg_insert": ("raw asyncpg INSERT, awaited", "rows/s"),
    "spawn_true": ("raw spawn /bin/true with pipes, 8-way", "procs/s"),
}

BESIDE = ("raw spawn /bin/true with pipes, 8-way, beside each e2e true run", "procs/s")
"""The spawn rate measured right before and right after each e2e `true` run (their
mean): the machine's speed drifts within minutes, so each run is set against its own."""
