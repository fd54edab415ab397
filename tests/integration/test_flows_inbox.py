"""The flow inbox on real servers: the events projection hands flow nodes' outcomes
to the orchestrator through Postgres, ordinary jobs never enter it, and a step that
fails is deferred without holding up other runs."""

from __future__ import annotations

import asyncio

import asyncpg
from nats.js.api import ConsumerConfig

from bus import Bus, Layout
from bus.infra import RETIRED_CONSUMERS, provision
from bus.telemetry import Telemetry
from contracts import subjects as s
from contracts.flows import FlowSpec, FlowStatus
from store.metrics import StoreMetrics
from store.service import STOP_GRACE
from tests.integration.test_flows import ended, flows, node
from tests.stack import eventually, make_store


async def test_a_failing_step_is_deferred_and_other_runs_go_on(nats_url: str, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with flows(nats_url, database_url) as (stack, engine, app):

            def chain(name: str) -> FlowSpec:
                return FlowSpec.model_validate(
                    {
                        "name": name,
                        "company": "acme",
                        "nodes": [node(app, "first", "sleep 1"), node(app, "second", "true", "first")],
                    }
                )

            broken = await engine.start_run(chain("broken"))
            healthy = await engine.start_run(chain("healthy"))
            spec = await conn.fetchval("SELECT spec::text FROM flow_run WHERE id = $1", broken.id)
            await conn.execute("UPDATE flow_run SET spec = '{\"nodes\": 7}' WHERE id = $1", broken.id)

            assert (await ended(engine, healthy.id)).status is FlowStatus.FINISHED

            async def deferred() -> int | None:
                return await conn.fetchval("SELECT max(tries) FROM flow_inbox WHERE tries > 0")

            assert await eventually(deferred, 20, "the broken run's outcome to be deferred") >= 1
            telemetry = Telemetry()
            await StoreMetrics(telemetry).inbox(conn)
            gauge = telemetry.registry.get_sample_value("jetjobs_store_flow_outcomes", {"state": "deferred"})
            assert gauge is not None and gauge >= 1
            assert (await engine.get(healthy.id)).status is FlowStatus.FINISHED

            await conn.execute("UPDATE flow_run SET spec = $2::jsonb WHERE id = $1", broken.id, spec)
            repaired = await ended(engine, broken.id, timeout=60)
            assert repaired.status is FlowStatus.FINISHED
            assert await conn.fetchval("SELECT count(*) FROM flow_inbox") == 0

            template = await stack.template(name="plain", app=app, company="acme", env={"SCRIPT": "true"})
            plain = await stack.final_job((await stack.run(template.id)).job_id)
            assert plain.status.value == "processed"
            kept = await conn.fetchval("SELECT count(*) FROM flow_inbox WHERE job_id = $1", plain.id)
            assert kept == 0, "an ordinary job's outcome entered the flow inbox"
    finally:
        await conn.close()


async def test_provisioning_deletes_the_retired_flows_consumer(nats_url: str) -> None:
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        await provision(bus.js, Layout())
        for stream, durable in RETIRED_CONSUMERS:
            config = ConsumerConfig(durable_name=durable, filter_subject=s.events_filter())
            await bus.js.add_consumer(stream, config)
        await provision(bus.js, Layout(), store=True)
        for stream, _ in RETIRED_CONSUMERS:
            names = {info.name for info in await bus.js.consumers_info(stream)}
            assert names.isdisjoint(durable for _, durable in RETIRED_CONSUMERS)
            assert s.STORE_EVENTS_CONSUMER in names
    finally:
        await bus.nc.close()


async def test_a_store_stops_promptly_and_closes_every_connection(nats_url: str, database_url: str) -> None:
    store = make_store(nats_url, database_url)
    await store.start()
    await asyncio.sleep(0.5)  # the orchestrator is listening on its own connection by now
    async with asyncio.timeout(STOP_GRACE / 2):
        await store.stop()
    conn = await asyncpg.connect(database_url)
    try:
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    assert others == 0, "the store left connections open"
