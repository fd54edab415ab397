"""Retention in Postgres: final history older than the horizon goes with every row
of its own, in batches; recent, running, queued and in-flow history stays; a dry
run counts exactly what a prune removes and changes nothing; one store prunes at
a time; every batch reads its candidates through an index."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.retention import DAY, PruneCounts
from store import migrate
from store.db import connect
from store.retention import Horizons, Retention, count, prune, retention_sql, try_lock
from store.retention_loop import prune_round

from . import old_rows

REMOVED = PruneCounts(
    jobs=7,
    attempts=7,
    events=21,
    artifacts=7,
    deadlines=7,
    flow_runs=1,
    flow_nodes=1,
    slots=1,
    dead_letters=7,
)
KEPT_JOBS = {"new-1", "old-run", "old-queued", "flow-live-job", "flow-recent-job"}


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Any]:
    await migrate(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def seed(conn: Any) -> None:
    """Seven final jobs from 40 days ago (one of a flow run that ended then), and what
    must stay: recent, running and queued jobs, and those of a flow run in progress or
    ended since the horizon."""
    for n in range(1, 6):
        await old_rows.job(conn, f"old-{n}", 40)
    await old_rows.job(conn, "old-err", 40, status="error")
    await old_rows.job(conn, "new-1", 2)
    await old_rows.job(conn, "old-run", 40, status="started", final=False)
    await old_rows.job(conn, "old-queued", 40, status="dispatched", final=False, artifact=False)
    await old_rows.job(conn, "flow-live-job", 40)
    await old_rows.flow_run(conn, "run-live", 40, "started", "flow-live-job")
    await old_rows.job(conn, "flow-done-job", 40)
    await old_rows.flow_run(conn, "run-done", 40, "finished", "flow-done-job")
    await old_rows.job(conn, "flow-recent-job", 40)
    await old_rows.flow_run(conn, "run-recent", 40, "error", "flow-recent-job", ended_days=2)
    await old_rows.slot(conn, 1, 40, "old-1")
    await old_rows.slot(conn, 2, 40, "old-run")
    await old_rows.slot(conn, 3, 2)
    await old_rows.dead_letters(conn, 7, 40)
    await old_rows.dead_letters(conn, 2, 2)
    await old_rows.audit_entries(conn, 4, 40)


def month() -> Horizons:
    return Horizons.ago(30 * DAY, None)


async def test_old_final_history_goes_in_batches_and_the_rest_stays(conn: Any) -> None:
    await seed(conn)
    before = await old_rows.counts(conn)
    assert await count(conn, month()) == REMOVED
    assert await old_rows.counts(conn) == before, "a dry run changes nothing"

    batches: list[PruneCounts] = []
    removed, more = await prune(conn, month(), 2, None, batches.append)
    assert (removed, more) == (REMOVED, False)
    assert max(b.jobs for b in batches) == 2 and len([b for b in batches if b.jobs]) == 4
    total = PruneCounts()
    for batch in batches:
        total = total.plus(batch)
    assert total == REMOVED, "every batch is reported once"

    assert {r["id"] for r in await conn.fetch("SELECT id FROM job")} == KEPT_JOBS
    for table in ("job_attempt", "job_event", "artifact", "job_dispatch"):
        left = {r["job_id"] for r in await conn.fetch(f"SELECT DISTINCT job_id FROM {table}")}
        assert left <= KEPT_JOBS, table
    assert {r["id"] for r in await conn.fetch("SELECT id FROM flow_run")} == {"run-live", "run-recent"}
    assert {r["template_id"] for r in await conn.fetch("SELECT template_id FROM schedule_slot")} == {2, 3}
    assert await conn.fetchval("SELECT count(*) FROM dead_letter") == 2
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 4, "the audit log is kept unless asked"
    assert await count(conn, month()) == PruneCounts()


async def test_a_budget_stops_a_prune_that_then_resumes(conn: Any) -> None:
    await seed(conn)
    rounds, total, more = 0, PruneCounts(), True
    while more:
        removed, more = await prune(conn, month(), 2, 0.0, lambda _: None)
        total, rounds = total.plus(removed), rounds + 1
        assert rounds < 20
    assert total == REMOVED and rounds > 3


async def test_the_audit_log_goes_only_with_its_own_horizon(conn: Any) -> None:
    await old_rows.audit_entries(conn, 5, 400)
    await old_rows.audit_entries(conn, 3, 100)
    horizons = Horizons.ago(30 * DAY, 365 * DAY)
    assert (await count(conn, horizons)).audit_entries == 5
    removed, _ = await prune(conn, horizons, 2, None, lambda _: None)
    assert removed == PruneCounts(audit_entries=5)
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 3


async def test_one_store_prunes_at_a_time(conn: Any, database_url: str) -> None:
    await seed(conn)
    assert await try_lock(conn)
    policy = Retention(days=30)
    assert not await prune_round(lambda: connect(database_url), policy, lambda _: None)
    assert await conn.fetchval("SELECT count(*) FROM job") == 12, (
        "nothing pruned while another holds the lock"
    )
    await conn.execute("SELECT pg_advisory_unlock_all()")
    assert await prune_round(lambda: connect(database_url), policy, lambda _: None)
    assert await conn.fetchval("SELECT count(*) FROM job") == 5


def _scans(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    found = [(plan["Node Type"], plan.get("Relation Name"))]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


ROWS = 20000

FILL = (
    "INSERT INTO job (id, company, status, final, created_at, updated_at) "
    "SELECT 'j' || n, 'acme', 'processed', true, now() - n * interval '1 s', now() FROM generate_series(1, $1) n",
    "INSERT INTO job_attempt (job_id, attempt, status) SELECT 'j' || n, 1, 'processed' FROM generate_series(1, $1) n",
    "INSERT INTO job_event (job_id, attempt, status, at, payload) SELECT 'j' || n, 1, s::job_status, now(), '{}' "
    "FROM generate_series(1, $1) n, unnest(ARRAY['dispatched', 'started', 'processed']) s",
    "INSERT INTO artifact (job_id, attempt, name, size, sha256) SELECT 'j' || n, 1, 'f', 0, '' "
    "FROM generate_series(1, $1) n",
    "INSERT INTO job_dispatch (job_id, attempt, deadline) SELECT 'j' || n, 1, now() FROM generate_series(1, $1) n",
    "INSERT INTO flow_run (id, company, name, spec, status, ended_at) "
    "SELECT 'r' || n, 'acme', 'f', '{}', 'finished', now() FROM generate_series(1, $1) n",
    "INSERT INTO flow_node (run_id, node, status, job_id) SELECT 'r' || n, 'a', 'succeeded', 'j' || n "
    "FROM generate_series(1, $1) n",
    "INSERT INTO schedule_slot (template_id, slot, company, outcome, trigger, job_id, recorded_at) "
    "SELECT 1, now() - n * interval '1 s', 'acme', 'fired', 'schedule', 'j' || n, now() FROM generate_series(1, $1) n",
    "INSERT INTO job_secret (job_id, name, company, template_id, key_id, nonce, ciphertext) "
    "SELECT 'j' || n, 'PASSWORD', 'acme', 1, 'k', '', '' FROM generate_series(1, $1) n",
)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_every_batch_reads_through_indexes(conn: Any, mode: str) -> None:
    """Many recent rows and no old ones: a batch must scan no table, neither to find
    its oldest rows nor the rows that go with them."""
    for statement in FILL:
        await conn.execute(statement, ROWS)
    await old_rows.dead_letters(conn, ROWS, 0)
    await old_rows.audit_entries(conn, ROWS, 0)
    await conn.execute("ANALYZE")
    await conn.execute(f"SET plan_cache_mode = {mode}")
    horizon = datetime.now(UTC) - timedelta(days=30)
    for name in ("prune_jobs", "prune_flow_runs", "prune_slots", "prune_dead_letters", "prune_audit"):
        statement = await conn.prepare(f"EXPLAIN (FORMAT JSON) {retention_sql()[name].sql}")
        scans = _scans(json.loads(await statement.fetchval(horizon, 2000))[0]["Plan"])
        assert not [table for kind, table in scans if kind == "Seq Scan"], (name, scans)
