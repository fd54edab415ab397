"""An on-demand prune cut short still leaves an audit entry for every row it removed:
the entry is written with its first batch and kept up to date with each later one,
in that batch's transaction. Here the prune's connection to Postgres dies in its
last step, after two batches of jobs went."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bus import ApiClient, Bus, Layout
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.retention import DAY, Pruned, PruneRequest
from store import StoreConfig, StoreService, migrate
from store.retention import BATCH
from store.tokens import bootstrap_token

from . import old_rows

pytestmark = pytest.mark.timeout(120)

JOBS = BATCH + 500
"""Two batches of jobs: the entry must count both."""

MONTH = PruneRequest(older_than=30 * DAY)

OLD_JOBS = (
    "INSERT INTO job (id, company, status, final, created_at, updated_at) "
    "SELECT 'old-' || n, 'acme', 'processed', true, now() - interval '40 days', now() - interval '40 days' "
    "FROM generate_series(1, $1) n",
    "INSERT INTO job_event (job_id, attempt, status, at, payload) "
    "SELECT 'old-' || n, 1, 'processed', now() - interval '40 days', '{}' FROM generate_series(1, $1) n",
)

CONNECTION_DIES = (
    "CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN OLD; END $$",
    "CREATE TRIGGER die BEFORE DELETE ON dead_letter FOR EACH ROW EXECUTE FUNCTION die()",
)
"""Whoever deletes a dead letter loses its connection, in the middle of the statement."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Any]:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_every_batch_a_prune_cut_short_removed_is_audited(
    nats_url: str, database_url: str, db: Any
) -> None:
    for statement in OLD_JOBS:
        await db.execute(statement, JOBS)
    await old_rows.dead_letters(db, 3, 40)
    for statement in CONNECTION_DIES:
        await db.execute(statement)
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    store = StoreService(StoreConfig(nats_url, database_url), Layout())
    await store.start()
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        admin = ApiClient(bus.nc, 60.0, token=root.token)
        with pytest.raises(ApiFailure) as cut:
            await admin.call("history.prune", MONTH, Pruned)
        assert cut.value.code == 503, cut.value.message
        assert await db.fetchval("SELECT count(*) FROM job") == 0, "both batches of jobs went"
        assert await db.fetchval("SELECT count(*) FROM dead_letter") == 3, "the last batch was rolled back"

        entries = await db.fetch("SELECT actor, detail FROM audit_log WHERE action = 'history.prune'")
        assert len(entries) == 1, entries
        detail = json.loads(entries[0]["detail"])
        assert entries[0]["actor"] == "root"
        assert detail["older_than"] == 30 * DAY and detail["before"]
        assert detail["removed"] == {"jobs": JOBS, "events": JOBS}

        await db.execute("DROP TRIGGER die ON dead_letter")
        done = await admin.call("history.prune", MONTH, Pruned)
        assert done.counts.dead_letters == 3 and done.counts.jobs == 0
        removed = [
            json.loads(r["detail"])["removed"]
            for r in await db.fetch("SELECT detail FROM audit_log WHERE action = 'history.prune' ORDER BY id")
        ]
        assert removed == [{"jobs": JOBS, "events": JOBS}, {"dead_letters": 3}], "one entry per request"
    finally:
        await bus.nc.close()
        await store.stop()
