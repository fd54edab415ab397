"""Retention of deleted templates, on real servers: a template deleted before the
horizon goes once nothing left names it (its jobs and slot records go first, in
the same prune); one still named by a kept job or flow run, one deleted since the
horizon and a live one stay. A dry run counts exactly what goes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts import api
from contracts.models import RunTemplate
from contracts.retention import DAY, PruneCounts
from store import migrate
from store.retention import Horizons, count, prune, retention_sql
from tests.stack import Stack, running_stack

from . import old_rows
from .test_store_retention import _scans

MONTH = Horizons.ago(30 * DAY, None)
NAMES = ("unused", "with-old-history", "with-a-recent-job", "in-a-run-in-progress", "deleted-lately", "live")


async def _templates(stack: Stack) -> dict[str, int]:
    """A template of each name; all deleted but the live one."""
    app = (await stack.app("-c true")).app.uuid
    made = {name: (await stack.template(name=name, app=app, company="acme")).id for name in NAMES}
    for name, template_id in made.items():
        if name != "live":
            await stack.client.call("template.delete", api.TemplateRef(id=template_id), RunTemplate)
    return made


async def _history(conn: asyncpg.Connection, made: dict[str, int]) -> None:
    """Deleted 40 days ago (one 2 days ago), with what names each: a run that names
    one began before it was deleted."""
    await conn.execute(
        "UPDATE runtemplate SET deleted_at = now() - make_interval(days => CASE WHEN id = $2 THEN 2 ELSE 40 END) "
        "WHERE id = ANY($1::bigint[])",
        [i for name, i in made.items() if name != "live"],
        made["deleted-lately"],
    )
    for job_id, name, days in (("old", "with-old-history", 40), ("recent", "with-a-recent-job", 2)):
        await old_rows.job(conn, job_id, days)
        await conn.execute("UPDATE job SET template_id = $2 WHERE id = $1", job_id, made[name])
    await old_rows.slot(conn, made["with-old-history"], 40, "old")
    spec = {
        "name": "f",
        "company": "acme",
        "nodes": [{"name": "a", "template": made["in-a-run-in-progress"]}],
    }
    await conn.execute(
        "INSERT INTO flow_run (id, company, name, spec, status, created_at) "
        "VALUES ('run', 'acme', 'f', $1::jsonb, 'started', now() - interval '41 days')",
        json.dumps(spec),
    )


async def test_deleted_templates_go_once_nothing_names_them(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        made = await _templates(stack)
        conn = await asyncpg.connect(database_url)
        try:
            await _history(conn, made)
            gone = PruneCounts(jobs=1, attempts=1, events=3, artifacts=1, deadlines=1, slots=1, templates=2)
            assert await count(conn, MONTH) == gone
            assert await prune(conn, MONTH, 1, None, lambda _: None) == (gone, False)
            left = {r["name"] for r in await conn.fetch("SELECT name FROM runtemplate")}
            assert left == set(NAMES) - {"unused", "with-old-history"}
            assert await count(conn, MONTH) == PruneCounts()
        finally:
            await conn.close()


CATALOGS = {"company", "flow_definition"}
"""Tables of a few rows (companies, saved flows), which the planner rightly reads whole."""

FILL = (
    "INSERT INTO runtemplate (name, app_id, company_id, timeout, timeout_ack, timeout_result, deleted_at) "
    "SELECT 't' || n, 1, 1, 60, 30, 60, CASE WHEN n % 10 = 0 THEN now() END FROM generate_series(1, $1) n",
    "INSERT INTO job (id, company, status, final, template_id) "
    "SELECT 'j' || n, 'acme', 'processed', true, n FROM generate_series(1, $1) n",
    "INSERT INTO schedule_slot (template_id, slot, company, outcome, trigger, job_id, recorded_at) "
    "SELECT n, now(), 'acme', 'fired', 'schedule', 'j' || n, now() FROM generate_series(1, $1) n",
    "INSERT INTO flow_run (id, company, name, spec, status, ended_at) "
    "SELECT 'r' || n, 'acme', 'f', '{\"nodes\": []}', 'finished', now() FROM generate_series(1, $1) n",
)


async def test_a_prune_of_templates_reads_through_indexes(database_url: str) -> None:
    """Many templates, jobs, slot records and flow runs, and no old deleted template:
    a batch scans none of these tables."""
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO company (code, name) VALUES ('acme', 'ACME')")
        await conn.execute(
            "INSERT INTO application (uuid, name, executable, document) "
            "VALUES (gen_random_uuid(), 'app', 'true', '{}')"
        )
        for statement in FILL:
            await conn.execute(statement, 20000)
        await conn.execute("ANALYZE")
        horizon = datetime.now(UTC) - timedelta(days=30)
        statement = await conn.prepare(f"EXPLAIN (FORMAT JSON) {retention_sql()['prune_templates'].sql}")
        scans = _scans(json.loads(await statement.fetchval(horizon, 2000))[0]["Plan"])
        assert not [t for kind, t in scans if kind == "Seq Scan" and t not in CATALOGS], scans
    finally:
        await conn.close()
