"""`jetjobs prune` against a store whose prune does not answer: it gives up once a
prune request should long have answered (not after a dry run's long wait), and says
what may have been removed and where to see it; the audit log then shows what the
store removed once it could go on."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from contracts import tenants as t
from jetjobs.cli_retention import PRUNE_WAIT
from store import migrate
from store.tokens import bootstrap_token
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.integration import old_rows
from tests.stack import eventually, make_store

pytestmark = pytest.mark.timeout(120)


async def test_a_prune_that_does_not_answer_is_given_up_with_a_way_to_see_what_went(
    nats_url: str, database_url: str
) -> None:
    await migrate(database_url)
    seed = await asyncpg.connect(database_url)
    try:
        for n in range(3):
            await old_rows.job(seed, f"old-{n}", 40)
    finally:
        await seed.close()
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_API_TOKEN=root.token)
    store = make_store(nats_url, database_url)
    await store.start()
    holder: Any = await asyncpg.connect(database_url)
    try:
        blocked = holder.transaction()
        await blocked.start()
        await holder.execute(
            "LOCK TABLE retention_horizon IN EXCLUSIVE MODE"
        )  # the prune's first write waits
        hung = await jetjobs("prune", "--older-than", "30d", env=env, timeout=PRUNE_WAIT + 40)
        one_line_error(hung, f"the store did not answer history.prune within {PRUNE_WAIT:g} s")
        assert "it may have removed history since, and may still be at it" in hung.err
        assert "`jetjobs audit`" in hung.err and "`jetjobs prune --older-than 30d --dry-run`" in hung.err
        await blocked.rollback()

        async def audited() -> dict[str, Any] | None:
            detail = await holder.fetchval("SELECT detail FROM audit_log WHERE action = 'history.prune'")
            return detail and json.loads(detail)

        entry = await eventually(audited, 20, "the prune to go on and be audited")
        assert entry["removed"]["jobs"] == 3
        shown = await jetjobs("audit", env=env)
        assert "history.prune" in shown.out, shown
    finally:
        await holder.close()
        await store.stop()
