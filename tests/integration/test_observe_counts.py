"""Metrics that count jobs count each one once: retries do not add dispatch lag,
redelivered or repeated messages do not add outcomes, a stuck write keeps its
batch, and made-up companies do not make series."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from bus import Bus, Layout
from bus.batches import BatchPuller
from bus.publish import encode
from bus.telemetry import Telemetry
from contracts import subjects as s
from contracts.enums import Status
from contracts.messages import JobEvent
from jetjobs.observe.http import MetricsServer
from store import StoreConfig, StoreService
from tests.observe import Scrape, observed_stack, scrape
from tests.stack import eventually
from tests.unit.jobs import message


async def test_dispatch_lag_is_measured_once_per_job_not_per_retry(nats_url: str, database_url: str) -> None:
    """Attempts 2 and 3 come after 1 s and 2 s of backoff: that is not lag."""
    async with observed_stack(nats_url, database_url) as (stack, server):
        await stack.company("acme")
        failing = await stack.app("-c 'exit 1'")
        template = await stack.template(name="flaky", app=failing.app.uuid, company="acme", retries=2)
        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert job.attempt == 3
        scraped = await scrape(server.url)
        assert scraped.value("jetjobs_executor_jobs_acknowledged_total") == 3
        assert scraped.value("jetjobs_executor_dispatch_lag_seconds_count") == 1
        assert scraped.value("jetjobs_executor_dispatch_lag_seconds_sum") < 0.9


async def _publish(bus: Bus, subject: str, payload: bytes, msg_id: str) -> None:
    await bus.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})


async def test_store_counts_a_job_and_its_outcome_once_however_often_they_come(
    nats_url: str, database_url: str
) -> None:
    """The same job message and final event, each on the stream twice (as after the
    duplicate window), are one job and one outcome, though both copies are ingested."""
    async with observed_stack(nats_url, database_url) as (stack, server):
        await stack.company("acme")
        now = datetime.now(UTC)
        job = message(job_id="twice", pool="parked", scheduled_at=now, dispatched_at=now, timeout=600)
        done = JobEvent(
            job_id="twice", company="acme", attempt=1, status=Status.PROCESSED, at=now, final=True
        )
        await stack.bus.publisher.ensure_pools(["parked"])
        for copy in ("a", "b"):
            await _publish(stack.bus, s.dispatch_subject("acme", "parked"), encode(job), f"job-{copy}")
            await _publish(stack.bus, s.events_subject("acme", "twice"), encode(done), f"event-{copy}")

        async def ingested() -> bool:
            scraped = await scrape(server.url)
            return (
                scraped.value("jetjobs_store_messages_ingested_total", feed="store_dispatch") == 2
                and scraped.value("jetjobs_store_messages_ingested_total", feed="store_events") == 2
            )

        await eventually(ingested, what="the store to write both copies of each")
        scraped = await scrape(server.url)
        assert scraped.value("jetjobs_store_jobs_dispatched_total") == 1
        assert scraped.value("jetjobs_store_job_outcomes_total", status="processed") == 1


async def test_a_stuck_write_keeps_its_batch_from_being_redelivered(nats_url: str, database_url: str) -> None:
    """While Postgres holds the store's write longer than AckWait, the store tells
    JetStream it is still working: nothing is handed out again (to another store
    sharing the consumer, or to this one's next fetch), each job counts once."""
    telemetry = Telemetry()
    server = MetricsServer(telemetry, "127.0.0.1", 0)
    await server.start()
    store = StoreService(
        StoreConfig(nats_url=nats_url, database_url=database_url), Layout(ack_wait=2.0), telemetry
    )
    await store.start()
    bus = await Bus.attach(nats_url, "jetjobs-test")
    blocker = await asyncpg.connect(database_url)
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("LOCK TABLE job_dispatch IN EXCLUSIVE MODE")
        now = datetime.now(UTC)
        jobs = [
            message(job_id=f"stuck-{i}", pool="parked", scheduled_at=now, dispatched_at=now, timeout=600)
            for i in range(5)
        ]
        await bus.publisher.dispatch(jobs)
        await asyncio.sleep(7.0)  # over three AckWaits
        other = BatchPuller(bus.nc, s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)  # a second store
        try:
            assert await other.fetch(10, timeout=1.0) == [], "the stuck batch was handed out again"
        finally:
            await other.close()
        await locked.rollback()

        async def written() -> bool:
            scraped = await scrape(server.url)
            return scraped.value("jetjobs_store_pending_messages", feed="store_dispatch") == 0

        await eventually(written, what="the batch to be written once the lock is gone")
        assert (await scrape(server.url)).value("jetjobs_store_jobs_dispatched_total") == 5
    finally:
        await blocker.close()
        await bus.nc.close()
        await store.stop()
        await server.stop()


async def test_dead_letters_of_made_up_companies_share_one_series(nats_url: str, database_url: str) -> None:
    """Garbage on `jetjobs.dispatch.<anything>.default` is dead-lettered under the
    subject's company; the counter names only companies the store has."""
    async with observed_stack(nats_url, database_url, company_labels=True) as (stack, server):
        await stack.company("acme")
        for company in ("acme", "made-up-1", "made-up-2"):
            await _publish(stack.bus, s.dispatch_subject(company, "default"), b"not a job", f"junk-{company}")

        async def counted() -> bool:
            return (await scrape(server.url)).value("jetjobs_store_dead_letters_total") == 3

        await eventually(counted, what="the store to record the three dead letters")
        scraped = await scrape(server.url)
        assert scraped.value("jetjobs_store_dead_letters_total", company="acme") == 1
        assert scraped.value("jetjobs_store_dead_letters_total", company="unknown") == 2
        companies = {
            dict(labels).get("company") for name, labels in scraped.samples if "dead_letters" in name
        }
        assert companies == {"acme", "unknown"}


async def test_outcomes_of_made_up_companies_share_one_series(nats_url: str, database_url: str) -> None:
    """A job message may name any company its publisher can publish for: the store
    counts the outcomes of one it does not have under `unknown`."""
    async with observed_stack(nats_url, database_url, company_labels=True) as (stack, server):
        await stack.company("acme")
        now = datetime.now(UTC)
        jobs = [
            message(job_id=f"of-{company}", company=company, scheduled_at=now, dispatched_at=now)
            for company in ("acme", "made-up")
        ]
        await stack.bus.publisher.dispatch(jobs)

        async def counted() -> Scrape | None:
            scraped = await scrape(server.url)
            return (
                scraped
                if scraped.value("jetjobs_store_job_outcomes_total", status="processed") == 2
                else None
            )

        scraped = await eventually(counted, what="the store to record both outcomes")
        for counter in ("jetjobs_store_job_outcomes_total", "jetjobs_store_attempt_outcomes_total"):
            assert scraped.value(counter, status="processed", company="acme") == 1
            assert scraped.value(counter, status="processed", company="unknown") == 1
            companies = {dict(labels).get("company") for name, labels in scraped.samples if name == counter}
            assert companies == {"acme", "unknown"}
