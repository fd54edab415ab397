"""Late messages of a pruned job, on real servers: a redelivered event or a job
message the store records late does not bring back a row of a job retention
removed; it is dropped, acked and counted, not dead-lettered. A message of a job
the store has no row of, not older than the pruned horizon, is recorded as ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats

from bus import Layout
from bus.telemetry import Telemetry
from contracts import subjects as s
from contracts.enums import Status
from contracts.messages import JobEvent, JobMessage
from contracts.retention import DAY
from store import StoreConfig, StoreService, migrate
from store.retention import BATCH, Horizons, prune
from tests.stack import eventually

from . import old_rows


def job_message(job_id: str, at: datetime) -> JobMessage:
    return JobMessage(
        job_id=job_id,
        company="acme",
        argv=["true"],
        scheduled_at=at,
        dispatched_at=at,
        timeout=60,
        timeout_ack=30,
        timeout_result=10,
    )


def outcome(job_id: str, at: datetime) -> JobEvent:
    return JobEvent(job_id=job_id, company="acme", attempt=1, status=Status.PROCESSED, at=at, final=True)


async def publish(js: Any, *messages: JobMessage | JobEvent) -> None:
    """Publish as any NATS client would: the JSON on the subject the contract names."""
    for m in messages:
        subject = (
            s.dispatch_subject(m.company, m.pool)
            if isinstance(m, JobMessage)
            else s.events_subject(m.company, m.job_id)
        )
        await js.publish(subject, m.model_dump_json().encode())


async def test_late_messages_of_a_pruned_job_do_not_bring_it_back(nats_url: str, database_url: str) -> None:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    telemetry = Telemetry()
    store = StoreService(StoreConfig(nats_url, database_url), Layout(), telemetry)
    await store.start()
    client = await nats.connect(nats_url)
    try:
        await old_rows.job(conn, "pruned", 40)
        removed, _ = await prune(conn, Horizons.ago(30 * DAY, None), BATCH, None, lambda _: None)
        assert removed.jobs == 1

        long_ago, days_ago = datetime.now(UTC) - timedelta(days=40), datetime.now(UTC) - timedelta(days=2)
        js = client.jetstream()
        await publish(js, outcome("pruned", long_ago), job_message("pruned", long_ago))
        # after them on each feed: a job unknown to the store, from before the hour
        # a horizon may reach, but after the pruned one
        await publish(js, outcome("recent", days_ago), job_message("recent", days_ago))

        async def recent_recorded() -> bool:
            row = await conn.fetchrow("SELECT status::text, dispatched_at FROM job WHERE id = 'recent'")
            return row is not None and row["status"] == "processed" and row["dispatched_at"] is not None

        await eventually(recent_recorded, 15, "the recent job's event and message")
        assert await conn.fetchval("SELECT count(*) FROM job WHERE id = 'pruned'") == 0
        for table in ("job_attempt", "job_event", "job_dispatch"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE job_id = 'pruned'") == 0, table
        sample = telemetry.registry.get_sample_value
        for feed in (s.STORE_EVENTS_CONSUMER, s.STORE_DISPATCH_CONSUMER):
            assert sample("jetjobs_store_pruned_job_messages_total", {"feed": feed}) == 1, feed
        assert (await js.stream_info(s.DEAD_STREAM)).state.messages == 0, "nothing is dead-lettered"
    finally:
        await client.close()
        await store.stop()
        await conn.close()
