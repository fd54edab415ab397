"""Bringing a database to the current schema, safely when several stores start at once."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from .loader import Migration, migrations

# `store` re-exports `migrate` eagerly (a lazy one would be shadowed by this submodule's
# name) and the CLI imports `store`: the asyncpg side is imported in the functions below.
if TYPE_CHECKING:
    from .queries import Queries

log = structlog.get_logger("jetjobs.store")

MIGRATION_LOCK = 0x6A65746A6F6273
"""The advisory lock key ("jetjobs" in ASCII) every store takes while migrating."""

OLDEST_POSTGRES = 13
"""The oldest PostgreSQL major version the schema runs on (it uses `xid8`)."""


class UnsupportedPostgres(Exception):
    """The server is older than the schema needs; the message says what to do."""


class NewerSchema(Exception):
    """The database was migrated by a newer jetjobs than this store; the message says what to do."""


def check_server(major: int, minor: int) -> None:
    """Refuse a server older than `OLDEST_POSTGRES`, before any migration runs on it."""
    if major < OLDEST_POSTGRES:
        raise UnsupportedPostgres(
            f"jetjobs needs PostgreSQL {OLDEST_POSTGRES} or newer, and this server is {major}.{minor}: "
            "upgrade it, or set JETJOBS_DATABASE_URL to a newer one (`jetjobs up` runs one)"
        )


def schema_version() -> int:
    """The highest migration this code knows: what a store announces, so that a newer
    store refuses to start beside it (an older one would misread the newer schema)."""
    return max(m.version for m in migrations())


async def _apply(conn: Any, queries: Queries, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await queries.record_migration(migration.version, migration.name)
    log.info("store.migrated", version=migration.version, migration=migration.name)


async def apply_migrations(conn: Any) -> list[int]:
    """Apply the missing migrations in order, each in its own transaction, under
    the advisory lock held on `conn`; returns the versions applied (none when current)."""
    from .db import UNAVAILABLE  # here: see the imports at the top
    from .queries import Queries

    version = conn.get_server_version()
    check_server(version.major, version.minor)
    queries = Queries(conn)
    await queries.lock_migrations(MIGRATION_LOCK)
    try:
        await queries.create_migrations_table()
        applied = set(await queries.applied_migrations())
        known = migrations()
        if applied - {m.version for m in known}:
            raise NewerSchema(
                f"this database was migrated by a newer jetjobs (schema {max(applied)}), and this "
                f"store knows schema {max(m.version for m in known)}: it would misread it; run the "
                "newer version (README: Upgrading)"
            )
        pending = [m for m in known if m.version not in applied]
        for migration in pending:
            await _apply(conn, queries, migration)
        return [m.version for m in pending]
    finally:
        with contextlib.suppress(*UNAVAILABLE):  # a lost session has released its lock already
            await queries.unlock_migrations(MIGRATION_LOCK)


async def migrate(database_url: str, first: Callable[[], Awaitable[None]] | None = None) -> list[int]:
    """Migrate the database at `database_url`; returns the versions applied. `first`
    runs once the database answers, before anything in it changes."""
    from .db import connect  # here: see the imports at the top

    conn = await connect(database_url)
    try:
        if first is not None:
            await first()
        return await apply_migrations(conn)
    finally:
        await conn.close()
