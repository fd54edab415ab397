"""asyncpg raises an InterfaceError both for a misuse of its API (a wrong number of query
arguments) and for a connection PostgreSQL closed. Only the second is an outage: the
first used to answer an API caller "the store cannot reach PostgreSQL" and be logged as
a warning without a traceback, hiding the bug."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from contracts.api import ApiFailure
from store.api import answering
from store.db import BAD_DATA, UNAVAILABLE, connect, open_pool


class _Probe(BaseModel):
    pass


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    opened = await open_pool(database_url, 2)
    yield opened
    await asyncio.wait_for(opened.close(), 10)


async def _lose(conn: Any, pool: Any) -> None:
    """Have PostgreSQL end `conn`'s session, and wait until asyncpg has seen it go."""
    gone = asyncio.Event()
    conn.add_termination_listener(lambda _: gone.set())
    await pool.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    await asyncio.wait_for(gone.wait(), 10)


async def test_a_wrong_number_of_query_arguments_is_not_an_outage(pool: Any) -> None:
    with pytest.raises(Exception, match="expects 1 argument") as caught:
        await pool.fetchval("SELECT $1::int")
    assert not isinstance(caught.value, UNAVAILABLE)
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(Exception, match="expects 2 arguments") as caught:
            await conn.execute("SELECT $1::int, $2::int", 1)
        assert not isinstance(caught.value, UNAVAILABLE)

    async def misuse(_: BaseModel) -> BaseModel:
        await pool.fetchrow("SELECT $1::int, $2::int", 1)
        return _Probe()

    handle = answering({"probe": misuse})["probe"]
    with pytest.raises(Exception, match="expects 2 arguments") as caught:
        await handle(_Probe())
    assert not isinstance(caught.value, ApiFailure), "the API server logs it and answers 500, not 503"


async def test_bad_data_stays_bad_data(pool: Any) -> None:
    with pytest.raises(BAD_DATA):
        await pool.fetchval("SELECT $1::int", "not a number")


async def test_a_connection_postgres_closed_is_an_outage(pool: Any) -> None:
    async with pool.acquire() as conn:
        await _lose(conn, pool)
        with pytest.raises(UNAVAILABLE):
            await conn.fetchval("SELECT 1")
    async with pool.acquire() as conn:
        with pytest.raises(UNAVAILABLE):
            async with conn.transaction():
                await conn.execute("SELECT 1")
                await _lose(conn, pool)
    assert await pool.fetchval("SELECT 1") == 1


async def test_a_closed_single_connection_is_an_outage(database_url: str) -> None:
    conn = await connect(database_url)
    await conn.execute("SELECT 1")
    await conn.close()
    with pytest.raises(UNAVAILABLE):
        await conn.fetch("SELECT 1")
