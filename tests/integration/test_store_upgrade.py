"""Upgrading store by store: a store announces its schema in `$SRV.INFO` and
refuses to start beside a store of an older one (which would go on answering
from a database it no longer understands), before it migrates anything."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from nats import micro
from nats.aio.client import Client
from nats.micro.request import Request

from bus import Bus, OlderStoreRunning
from bus.peers import running_stores
from contracts import subjects as s
from store.migrate import NewerSchema, schema_version
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import make_store

pytestmark = pytest.mark.timeout(120)

REFUSAL = "stop every store of an older version before starting this one (README: Upgrading)"


@asynccontextmanager
async def fake_store(nats_url: str, metadata: dict[str, str] | None) -> AsyncIterator[str]:
    """A store of another version as `$SRV.INFO` shows it: the API service with
    `metadata` (none at all: a version from before stores announced their schema)."""

    async def ignore(request: Request) -> None:
        return None

    nc = Client()
    await nc.connect(nats_url)
    service = await micro.add_service(nc, name=s.API_SERVICE, version="0.1.0", metadata=metadata)
    await service.add_endpoint(name="company-list", subject=s.api_subject("company.list"), handler=ignore)
    try:
        yield service.id
    finally:
        await service.stop()
        await nc.close()


async def _migrations_table(database_url: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT to_regclass('jetjobs_migrations')::text")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("metadata", "shown"),
    [(None, "no schema announced"), ({"schema": "25"}, "schema 25")],
    ids=["before-schemas", "older-schema"],
)
async def test_a_store_refuses_to_start_beside_an_older_one_and_migrates_nothing(
    nats_url: str, database_url: str, metadata: dict[str, str] | None, shown: str
) -> None:
    async with fake_store(nats_url, metadata) as instance:
        store = make_store(nats_url, database_url)
        with pytest.raises(OlderStoreRunning) as refused:
            await store.start()
    assert str(refused.value) == (
        f"a store of an older schema serves this NATS: {instance} (version 0.1.0, {shown}); "
        f"this store's schema is {schema_version()}: {REFUSAL}"
    )
    assert await _migrations_table(database_url) is None, "no migration was applied"


async def test_the_store_command_says_so_in_one_line(nats_url: str, database_url: str) -> None:
    async with fake_store(nats_url, None):
        env = clean_env(
            JETJOBS_NATS_URL=nats_url, JETJOBS_DATABASE_URL=database_url, JETJOBS_METRICS_PORT="0"
        )
        result = await jetjobs("store", env=env, timeout=30)
    assert result.code == 1, result
    assert "Traceback" not in result.err
    last = result.err.strip().splitlines()[-1]
    assert (
        last.startswith("jetjobs: error: a store of an older schema serves this NATS: ") and REFUSAL in last
    )


async def test_stores_of_the_same_or_a_newer_schema_start_together(nats_url: str, database_url: str) -> None:
    first, second = make_store(nats_url, database_url), make_store(nats_url, database_url)
    async with fake_store(nats_url, {"schema": str(schema_version() + 1)}):
        await asyncio.gather(first.start(), second.start())
        try:
            bus = await Bus.attach(nats_url, "upgrade-test")
            try:
                announced = await running_stores(bus.nc)
                info = json.loads((await bus.nc.request(f"$SRV.INFO.{s.API_SERVICE}", b"", timeout=5)).data)
            finally:
                await bus.close()
            third = make_store(nats_url, database_url)
            await third.start()
            await third.stop()
        finally:
            await first.stop()
            await second.stop()
    assert sorted(store.schema or 0 for store in announced) == [schema_version()] * 2 + [schema_version() + 1]
    assert info["metadata"]["schema"] in (str(schema_version()), str(schema_version() + 1))


async def test_asking_with_no_store_running_costs_no_wait(nats_url: str) -> None:
    bus = await Bus.attach(nats_url, "upgrade-test")
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await running_stores(bus.nc) == []
        assert loop.time() - began < 0.2, "NATS says at once that no store listens"
    finally:
        await bus.close()


async def test_a_store_refuses_a_database_a_newer_version_migrated(nats_url: str, database_url: str) -> None:
    store = make_store(nats_url, database_url)
    await store.start()
    await store.stop()
    newer = schema_version() + 1
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO jetjobs_migrations (version, name) VALUES ($1, 'from a newer jetjobs')", newer
        )
    finally:
        await conn.close()
    with pytest.raises(NewerSchema) as refused:
        await make_store(nats_url, database_url).start()
    assert str(refused.value) == (
        f"this database was migrated by a newer jetjobs (schema {newer}), and this store knows schema "
        f"{schema_version()}: it would misread it; run the newer version (README: Upgrading)"
    )
