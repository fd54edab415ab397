"""Migrations against a real PostgreSQL: idempotent, safe to race, enums in step with contracts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bus import encode
from contracts.enums import ErrorKind, Status
from jetjobs.embedded import PostgresServer
from store import StoreUnavailable, migrate
from store.loader import migrations
from store.queries import Queries
from store.writers import write_dispatches, write_events
from tests.integration.test_store_projection import event, message
from tests.servers import ExternalPostgres

TABLES = {
    "company",
    "application",
    "runtemplate",
    "job",
    "job_attempt",
    "job_event",
    "artifact",
    "dead_letter",
    "jetjobs_migrations",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in found}
    finally:
        await conn.close()


async def _ledger(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch("SELECT version, name FROM jetjobs_migrations ORDER BY version")
        return [(r["version"], r["name"]) for r in found]
    finally:
        await conn.close()


async def test_migrate_creates_schema_and_is_idempotent(database_url: str) -> None:
    every = [m.version for m in migrations()]
    assert await migrate(database_url) == every
    assert await _tables(database_url) >= TABLES
    assert await migrate(database_url) == []
    assert await _ledger(database_url) == [(m.version, m.name) for m in migrations()]


async def test_concurrent_migrations_apply_each_once(database_url: str) -> None:
    results = await asyncio.gather(*(migrate(database_url) for _ in range(4)))
    every = [m.version for m in migrations()]
    assert sorted(results, key=len) == [[], [], [], every]
    assert await _ledger(database_url) == [(m.version, m.name) for m in migrations()]


async def test_enum_labels_match_contracts(database_url: str) -> None:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        queries = Queries(conn)
        assert await queries.enum_labels("job_status") == [s.value for s in Status]
        assert await queries.enum_labels("error_kind") == [k.value for k in ErrorKind]
    finally:
        await conn.close()


async def test_unreachable_database_names_the_url_without_password() -> None:
    url = "postgresql://someone:secret@127.0.0.1:1/nowhere"
    with pytest.raises(StoreUnavailable) as caught:
        await migrate(url)
    message = str(caught.value)
    assert "postgresql://someone:***@127.0.0.1:1/nowhere" in message
    assert "secret" not in message
    assert "JETJOBS_DATABASE_URL" in message


BYTE_ORDER_COLUMNS = {
    ("job", "id"),
    ("job", "company"),
    ("job_attempt", "job_id"),
    ("job_event", "job_id"),
    ("job_dispatch", "job_id"),
    ("artifact", "job_id"),
    ("schedule_slot", "job_id"),
    ("flow_node", "job_id"),
    ("flow_inbox", "job_id"),
}
"""Where every job event's statements compare job ids: byte order, whatever the database's default."""


@pytest.fixture
async def linguistic_database_url(pg_server: PostgresServer | ExternalPostgres) -> AsyncIterator[str]:
    """A new database whose default collation is not "C" (C.UTF-8: libc's, through strcoll)."""
    name = f"jj_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(pg_server.dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE 'C.UTF-8'")
    except asyncpg.PostgresError as error:
        pytest.skip(f"this PostgreSQL cannot make a C.UTF-8 database: {error}")
    finally:
        await admin.close()
    try:
        yield pg_server.dsn(name)
    finally:
        pg_server.drop_database(name)


async def test_job_ids_compare_in_byte_order_in_a_linguistic_database(linguistic_database_url: str) -> None:
    await migrate(linguistic_database_url)
    conn = await asyncpg.connect(linguistic_database_url)
    try:
        assert (
            await conn.fetchval("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            != "C"
        )
        found = await conn.fetch(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND (table_name, column_name) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [t for t, _ in BYTE_ORDER_COLUMNS],
            [c for _, c in BYTE_ORDER_COLUMNS],
        )
        assert {(r["table_name"], r["column_name"]): r["collation_name"] for r in found} == dict.fromkeys(
            BYTE_ORDER_COLUMNS, "C"
        )
        # the writers mix these columns with ids of the database's collation (from JSON): it still works
        ids = ["job-B", "job-a", "job-_1"]
        async with conn.transaction():
            await write_dispatches(Queries(conn), [message(job_id) for job_id in ids])
        lifecycle = [
            event(job_id, status) for job_id in ids for status in (Status.ACKNOWLEDGED, Status.PROCESSED)
        ]
        async with conn.transaction():
            await write_events(Queries(conn), lifecycle, [encode(e) for e in lifecycle])
        async with conn.transaction():
            locked = await Queries(conn).lock_jobs(ids)
        assert {job_id: state.status for job_id, state in locked.states.items()} == dict.fromkeys(
            ids, Status.PROCESSED
        )
        listed = await conn.fetch("SELECT id FROM job ORDER BY id")
        assert [r["id"] for r in listed] == sorted(ids)  # byte order, as Python sorts them
    finally:
        await conn.close()
