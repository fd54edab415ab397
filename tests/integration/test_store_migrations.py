"""Migrations against a real PostgreSQL: idempotent, safe to race, enums in step with contracts."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from contracts.enums import ErrorKind, Status
from store import StoreUnavailable, migrate
from store.loader import migrations
from store.queries import Queries

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
