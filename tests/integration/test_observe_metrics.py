"""Metrics and health endpoints against real servers: counters move as jobs run,
readiness follows the NATS connection."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from bus import Bus, Layout
from bus.overview import store_lag
from bus.telemetry import Telemetry
from contracts import subjects as s
from jetjobs.embedded import NatsServer, PostgresServer
from jetjobs.observe.http import MetricsServer
from store import StoreConfig, StoreService
from tests.observe import http_get, observed_stack, scrape
from tests.stack import eventually
from tests.unit.jobs import message


async def test_metrics_change_as_jobs_run(nats_url: str, database_url: str) -> None:
    async with observed_stack(nats_url, database_url) as (stack, server):
        before = await scrape(server.url)
        assert before.value("jetjobs_executor_jobs_finished_total") == 0
        assert before.value("jetjobs_executor_slots", pool="default") == 4
        assert before.value("jetjobs_nats_connected", service="store") == 1
        assert before.value("jetjobs_build_info") == 1

        await stack.company("acme")
        ok = await stack.app("-c 'echo hello'")
        bad = await stack.app("-c 'exit 3'")
        good_t = await stack.template(name="ok", app=ok.app.uuid, company="acme")
        bad_t = await stack.template(name="bad", app=bad.app.uuid, company="acme")
        for template in (good_t, bad_t):
            await stack.final_job((await stack.run(template.id)).job_id)

        async def settled() -> bool:
            after = await scrape(server.url)
            return after.value("jetjobs_store_job_outcomes_total") >= 2

        await eventually(settled, what="the store to record both outcomes")
        after = await scrape(server.url)
        assert after.value("jetjobs_executor_jobs_acknowledged_total", pool="default") == 2
        assert after.value("jetjobs_executor_jobs_started_total", pool="default") == 2
        assert after.value("jetjobs_executor_jobs_finished_total", status="processed") == 1
        assert after.value("jetjobs_executor_jobs_finished_total", status="error", kind="exit") == 1
        assert after.value("jetjobs_executor_job_run_seconds_count") == 2
        assert after.value("jetjobs_executor_dispatch_lag_seconds_count") == 2
        assert after.value("jetjobs_store_jobs_dispatched_total") == 2
        assert after.value("jetjobs_store_messages_ingested_total", feed="store_events") >= 6
        assert after.value("jetjobs_store_pending_messages", feed="store_events") == 0
        assert after.value("jetjobs_executor_running_jobs") == 0
        assert after.value("jetjobs_scheduler_templates") == 0  # manual templates are not scheduled


async def test_company_labels_only_when_turned_on(nats_url: str, database_url: str) -> None:
    async with observed_stack(nats_url, database_url, company_labels=True) as (stack, server):
        await stack.company("acme")
        app = await stack.app("-c true")
        template = await stack.template(name="t", app=app.app.uuid, company="acme")
        await stack.final_job((await stack.run(template.id)).job_id)
        scraped = await scrape(server.url)
        assert scraped.value("jetjobs_executor_jobs_finished_total", company="acme") == 1


async def test_health_and_readiness_follow_nats(embedded_nats: NatsServer, database_url: str) -> None:
    async with observed_stack(embedded_nats.url, database_url) as (_, server):
        assert await http_get(f"{server.url}/healthz") == (200, "ok\n")
        status, body = await http_get(f"{server.url}/readyz")
        assert status == 200, body
        assert json.loads(body) == {
            "executor-default.nats": True,
            "scheduler.nats": True,
            "store.nats": True,
            "store.postgres": True,
        }
        assert (await http_get(f"{server.url}/nope"))[0] == 404

        embedded_nats.kill()

        async def unready() -> bool:
            code, text = await http_get(f"{server.url}/readyz")
            return code == 503 and json.loads(text)["store.nats"] is False

        await eventually(unready, what="/readyz to report NATS gone")
        assert (await http_get(f"{server.url}/healthz"))[0] == 200
        assert (await scrape(server.url)).value("jetjobs_nats_connected", service="store") == 0

        embedded_nats.restart()

        async def ready_again() -> bool:
            return (await http_get(f"{server.url}/readyz"))[0] == 200

        await eventually(ready_again, timeout=30, what="/readyz after NATS came back")
        scraped = await scrape(server.url)
        assert scraped.value("jetjobs_nats_reconnects_total", service="store") >= 1
        assert scraped.value("jetjobs_nats_disconnects_total", service="store") >= 1


async def test_store_lag_counts_what_the_store_holds_unwritten(
    nats_url: str, embedded_postgres: PostgresServer
) -> None:
    """With Postgres away the store holds what it fetched, unacknowledged: that is lag
    too, in the metric and in `jetjobs status`, until Postgres has it."""
    embedded_postgres.create_database("lag")
    telemetry = Telemetry()
    server = MetricsServer(telemetry, "127.0.0.1", 0)
    await server.start()
    store = StoreService(
        StoreConfig(nats_url=nats_url, database_url=embedded_postgres.dsn("lag")), Layout(), telemetry
    )
    await store.start()
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        await asyncio.to_thread(embedded_postgres.stop)
        now = datetime.now(UTC)
        jobs = [
            message(job_id=f"lag-{i}", pool="parked", scheduled_at=now, dispatched_at=now, timeout=600)
            for i in range(60)
        ]
        await bus.publisher.dispatch(jobs)

        async def lag(wanted: int) -> bool:
            scraped = await scrape(server.url)
            return scraped.value("jetjobs_store_pending_messages", feed="store_dispatch") == wanted

        await eventually(lambda: lag(60), what="the metric to count the 60 jobs the store holds")

        async def holding() -> bool:
            info = await bus.js.consumer_info(s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER)
            held, waiting = info.num_ack_pending, info.num_pending
            assert held + waiting == 60, "none written"
            return held > 0

        await eventually(holding, what="the store to hold some of the jobs, unwritten")
        assert (await store_lag(bus.js))["store_dispatch"] == 60, "what `jetjobs status` shows"

        await asyncio.to_thread(embedded_postgres.restart)
        await eventually(lambda: lag(0), timeout=30, what="the lag to fall once Postgres is back")
    finally:
        await bus.nc.close()
        await store.stop()
        await server.stop()
