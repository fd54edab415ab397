"""Backfill after retention, on real servers: a slot whose records a prune removed
is not run again (whether it ran is no longer known), a slot after the horizon
is, and a slot whose record is still there counts as run. A prune measures its
horizon by PostgreSQL's clock, not by the store host's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import store.retention
from bus import Layout
from contracts import schedule as sc
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.dispatch import scheduled_job_id
from contracts.retention import DAY, HOUR, Pruned, PruneRequest
from store.tokens import bootstrap_token
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(150)

LAYOUT = Layout(dedup_window=2)
"""A short duplicate window: in production a prune comes long after JetStream forgets a slot's job."""


@asynccontextmanager
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    """Store and executor, no scheduler; the client holds an admin token (to prune)."""
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    async with running_stack(
        nats_url, database_url, scheduler=False, layout=LAYOUT, token=root.token
    ) as running:
        yield running


async def backfill(s: Stack, template_id: int, start: datetime, end: datetime) -> sc.BackfillReply:
    request = sc.Backfill(id=template_id, start=start, end=end)
    return await s.client.call("template.backfill", request, sc.BackfillReply)


async def refused(s: Stack, template_id: int, start: datetime, end: datetime) -> ApiFailure:
    try:
        reply = await backfill(s, template_id, start, end)
    except ApiFailure as failure:
        return failure
    raise AssertionError(
        f"backfill was not refused: {len(reply.queued)} queued, {len(reply.deduplicated)} already ran"
    )


async def sql(url: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


async def ran_and_aged(s: Stack, template_id: int, start: datetime, end: datetime) -> int:
    """Backfill the range, let its jobs finish, and date their records back to their slots."""
    reply = await backfill(s, template_id, start, end)
    for slot in reply.queued:
        await s.final_job(slot.job_id)
    await sql(
        s.database_url,
        "UPDATE job SET created_at = scheduled_at, updated_at = scheduled_at + interval '1 min' "
        "WHERE template_id = $1",
        template_id,
    )
    await sql(
        s.database_url, "UPDATE schedule_slot SET recorded_at = slot WHERE template_id = $1", template_id
    )
    return len(reply.queued)


async def test_backfill_does_not_rerun_slots_whose_history_was_pruned(
    nats_url: str, database_url: str
) -> None:
    async with stack(nats_url, database_url) as s:
        await s.company("acme")
        app = (await s.app("-c 'echo ran'")).app.uuid
        template = (await s.template(name="daily", app=app, company="acme", interv="d")).id
        now = datetime.now(UTC)
        old = (now - timedelta(days=45), now - timedelta(days=40))
        assert await ran_and_aged(s, template, *old) == 5
        again = await backfill(s, template, *old)
        assert (len(again.queued), len(again.deduplicated)) == (0, 5), "their records say they ran"

        pruned = await s.client.call("history.prune", PruneRequest(older_than=30 * DAY), Pruned)
        assert (pruned.counts.jobs, pruned.counts.slots) == (5, 5)
        after = pruned.before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        gone = await refused(s, template, *old)
        assert gone.code == 409, gone.message
        assert (
            f"history before {after} was pruned, so whether 5 slot(s) of template {template}" in gone.message
        )
        assert f"--from {after}" in gone.message and f"`jetjobs job run {template}`" in gone.message
        straddling = await refused(s, template, now - timedelta(days=35), now - timedelta(days=25))
        assert straddling.code == 409 and f"--from {after}" in straddling.message
        assert await sql(database_url, "SELECT count(*) FROM job") == 0, "nothing was queued"

        later = await backfill(s, template, datetime.fromisoformat(after), now - timedelta(days=25))
        assert later.queued and not later.deduplicated
        assert all(slot.slot > pruned.before for slot in later.queued)
        for slot in later.queued:
            await s.final_job(slot.job_id)

        kept = again.deduplicated[0].slot
        await sql(
            database_url,
            "INSERT INTO schedule_slot (template_id, slot, company, outcome, trigger, job_id, recorded_at) "
            "VALUES ($1, $2, 'acme', 'fired', 'backfill', $3, $2)",
            template,
            kept,
            scheduled_job_id(template, kept),
        )
        recorded = await backfill(s, template, kept - timedelta(seconds=1), kept)
        assert (len(recorded.queued), len(recorded.deduplicated)) == (0, 1), "a record kept still counts"


class AheadClock(datetime):
    """The store host's clock, two hours ahead of PostgreSQL's."""

    @classmethod
    def now(cls, tz: Any = None) -> AheadClock:
        return super().now(tz) + timedelta(hours=2)


async def test_a_prune_counts_its_horizon_by_postgres_clock(
    nats_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stack(nats_url, database_url) as s:
        await s.company("acme")
        app = (await s.app("-c 'echo ran'")).app.uuid
        template = (await s.template(name="now", app=app, company="acme", interv="n")).id
        job = await s.final_job((await s.run(template)).job_id)
        monkeypatch.setattr(store.retention, "datetime", AheadClock)

        pruned = await s.client.call("history.prune", PruneRequest(older_than=HOUR), Pruned)
        assert pruned.counts.jobs == 0, "a job that ended moments ago is an hour from the horizon"
        assert (await s.job(job.id)).final
        database_now = await sql(database_url, "SELECT now()")
        assert timedelta(0) < database_now - timedelta(hours=1) - pruned.before < timedelta(minutes=1)
        recorded = await sql(database_url, "SELECT pruned_before FROM retention_horizon")
        assert recorded == pruned.before, "no horizon in the future is recorded"
