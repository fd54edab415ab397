"""Retention through a running store: the background round prunes on its own (and
counts and audits what it removed), `history.prune` is for admin tokens only, dry or not,
and answers 409 while another prune holds the lock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bus import ApiClient, Bus, Layout
from bus.telemetry import Telemetry
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.retention import DAY, PruneCounts, Pruned, PruneRequest
from store import StoreConfig, StoreService, migrate
from store.retention import Retention, try_lock
from store.tokens import bootstrap_token
from tests.stack import eventually

from . import old_rows
from .tenants_stack import tenant_stack

MONTH = PruneRequest(older_than=30 * DAY)


async def seed(url: str) -> None:
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        for n in range(5):
            await old_rows.job(conn, f"old-{n}", 40)
        await old_rows.job(conn, "new", 1)
        await old_rows.job(conn, "running", 40, status="started", final=False)
        await old_rows.dead_letters(conn, 3, 40)
    finally:
        await conn.close()


async def rows(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    attached = await Bus.attach(nats_url, "jetjobs-test")
    try:
        yield attached
    finally:
        await attached.nc.close()


async def test_the_store_prunes_in_the_background(nats_url: str, database_url: str) -> None:
    await seed(database_url)
    telemetry = Telemetry()
    config = StoreConfig(nats_url, database_url, retention=Retention(days=30, every=0.2))
    store = StoreService(config, Layout(), telemetry)
    await store.start()
    try:

        async def pruned() -> bool:  # dead letters go in a later batch of the round
            return await rows(database_url, "job") == 2 and await rows(database_url, "dead_letter") == 0

        await eventually(pruned, 20, "the background round")
        assert await rows(database_url, "job_event") == 6, "the kept jobs keep their events"
        sample = telemetry.registry.get_sample_value
        assert sample("jetjobs_store_pruned_rows_total", {"kind": "jobs"}) == 5
        assert sample("jetjobs_store_pruned_rows_total", {"kind": "events"}) == 15
        assert sample("jetjobs_store_pruned_rows_total", {"kind": "dead_letters"}) == 3
        [(actor, detail)] = await retention_entries(database_url)
        assert actor == "store retention"
        assert detail["retention_days"] == 30 and detail["before"]
        assert detail["removed"] == {
            "jobs": 5,
            "attempts": 5,
            "events": 15,
            "artifacts": 5,
            "deadlines": 5,
            "dead_letters": 3,
        }
    finally:
        await store.stop()


async def retention_entries(url: str) -> list[tuple[str, Any]]:
    """The background rounds' audit entries: who, and what they say went."""
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch("SELECT actor, detail FROM audit_log WHERE action = 'history.retention'")
    finally:
        await conn.close()
    return [(row["actor"], json.loads(row["detail"])) for row in found]


async def test_a_store_keeps_everything_by_default(nats_url: str, database_url: str) -> None:
    await seed(database_url)
    config = StoreConfig(nats_url, database_url)
    assert not config.retention.active
    store = StoreService(config, Layout())
    await store.start()
    try:
        assert not [task for task in store._helpers if task.get_name() == "store.retention"]
    finally:
        await store.stop()
    assert await rows(database_url, "job") == 7


async def test_only_admin_tokens_may_prune(nats_url: str, database_url: str, bus: Bus) -> None:
    await seed(database_url)
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    alice = await bootstrap_token(database_url, t.TokenCreate(actor="alice"))
    store = StoreService(StoreConfig(nats_url, database_url), Layout())
    await store.start()
    try:
        for client in (ApiClient(bus.nc, actor="root"), ApiClient(bus.nc, token=alice.token)):
            with pytest.raises(ApiFailure, match="only an actor with an admin token may prune") as refused:
                await client.call("history.prune", MONTH, Pruned)
            assert refused.value.code == 403
        assert await rows(database_url, "job") == 7

        admin = ApiClient(bus.nc, token=root.token)
        dry = await admin.call("history.prune", MONTH.model_copy(update={"dry_run": True}), Pruned)
        assert dry.dry_run and dry.counts.jobs == 5 and dry.counts.dead_letters == 3
        assert await rows(database_url, "job") == 7, "a dry run removes nothing"

        done = await admin.call("history.prune", MONTH, Pruned)
        assert done.counts == dry.counts and not done.more and not done.dry_run
        assert await rows(database_url, "job") == 2
        conn: Any = await asyncpg.connect(database_url)
        try:
            entry = await conn.fetchrow("SELECT actor, detail FROM audit_log WHERE action = 'history.prune'")
        finally:
            await conn.close()
        assert entry["actor"] == "root" and '"jobs": 5' in entry["detail"]
        again = await admin.call("history.prune", MONTH, Pruned)
        assert again.counts == PruneCounts()
    finally:
        await store.stop()


async def test_a_prune_while_another_runs_is_refused(nats_url: str, database_url: str, bus: Bus) -> None:
    await seed(database_url)
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    store = StoreService(StoreConfig(nats_url, database_url), Layout())
    await store.start()
    holder = await asyncpg.connect(database_url)
    try:
        assert await try_lock(holder)
        with pytest.raises(ApiFailure, match="being pruned right now") as busy:
            await ApiClient(bus.nc, token=root.token).call("history.prune", MONTH, Pruned)
        assert busy.value.code == 409
    finally:
        await holder.close()
        await store.stop()
    assert await rows(database_url, "job") == 7


async def test_a_job_run_for_real_goes_with_everything_it_left(nats_url: str, database_url: str) -> None:
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    async with tenant_stack(nats_url, database_url, None, token=root.token) as stack:
        await stack.company("acme")
        document = {
            "name": "leaves",
            "executable": "sh",
            "cmdparams": '-c \'echo hi > out.txt && echo {\\"k\\": \\"v\\"} > $JETJOBS_RESULT_FILE\'',
            "artifacts": ["out.txt"],
        }
        app = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
        template = await stack.template(name="a", app=str(app.app.id), company="acme")
        old = await stack.final_job((await stack.run(template.id)).job_id)
        new = await stack.final_job((await stack.run(template.id)).job_id)
        assert old.status is Status.PROCESSED and old.attempts[0].results == {"k": "v"}, old.reason
        listed = await stack.client.call("artifact.list", api.JobRef(id=old.id), t.ArtifactList)
        assert [a.name for a in listed.artifacts] == ["out.txt"]
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE job SET created_at = now() - interval '40 days', updated_at = now() - interval '40 days' "
                "WHERE id = $1",
                old.id,
            )
        finally:
            await conn.close()

        done = await stack.client.call("history.prune", MONTH, Pruned)
        assert (done.counts.jobs, done.counts.artifacts, done.counts.attempts) == (1, 1, 1)
        assert (done.counts.events, done.counts.deadlines) == (3, 1), "acknowledged, started, processed"
        with pytest.raises(ApiFailure, match="unknown job"):
            await stack.job(old.id)
        assert (await stack.job(new.id)).status is Status.PROCESSED
        for table in ("job_attempt", "job_event", "artifact"):
            assert await rows(database_url, table) > 0, f"the new job keeps its {table} rows"
