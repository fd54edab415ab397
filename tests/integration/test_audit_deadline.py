"""A change the store carried out is audited even when its caller gave up first:
the entry written after the handler (`audit="guard"`, e.g. `app.import`) waited on
PostgreSQL under the request's deadline, so a re-import of an application used by
10,000 templates took effect with no entry in the audit log."""

from __future__ import annotations

import asyncio

from contracts import api
from store.actors import RULES, guarded
from store.db import Deadline, deadline, open_pool
from store.migrate import migrate
from store.tenant_queries import TenantQueries


async def test_a_guard_audited_change_is_audited_past_its_callers_deadline(database_url: str) -> None:
    await migrate(database_url)
    pool = await open_pool(database_url, 2)
    try:
        reply = api.AppImported.model_construct(created=False)

        async def slow_import(request: object) -> api.AppImported:
            await asyncio.sleep(0.3)  # the change is made, past the caller's wait
            return reply

        handle = guarded(pool, "app.import", RULES["app.import"], slow_import)  # type: ignore[arg-type]
        deadline.set(Deadline.until(asyncio.get_running_loop().time() + 0.1))
        assert await handle(api.AppImport(document={"name": "x"}, source="x.json")) is reply
        deadline.set(None)
        entries = await TenantQueries(pool).audit_entries(None, 10)
        assert [e.action for e in entries] == ["app.import"], entries
    finally:
        await pool.close()
