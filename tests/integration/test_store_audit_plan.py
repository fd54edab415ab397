"""The newest-first audit read walks an index, not a sort of the whole log."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from store import migrate
from store.tenant_queries import tenant_sql

ENTRIES = 5000


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first."""
    found = [plan]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("before", [None, ENTRIES // 2])
@pytest.mark.parametrize("actor", [None, "alice"])
async def test_audit_list_of_every_company_reads_the_newest_index(
    database_url: str, mode: str, before: int | None, actor: str | None
) -> None:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO audit_log (at, actor, action, company) "
            "SELECT now() - make_interval(secs => $1 - n), 'admin', 'company.create', 'c' || (n % 50) "
            "FROM generate_series(1, $1) AS n",
            ENTRIES,
        )
        await conn.execute("ANALYZE audit_log")
        await conn.execute(f"SET plan_cache_mode = {mode}")
        roles = None if actor is None else ["reader", "admin"]
        sql = tenant_sql()["audit_entries"].sql
        explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", None, 51, actor, roles, before)
    finally:
        await conn.close()
    plan = nodes(json.loads(explained)[0]["Plan"])
    kinds = [(node["Node Type"], node.get("Relation Name")) for node in plan]
    assert ("Seq Scan", "audit_log") not in kinds, kinds
    assert not any(kind == "Sort" for kind, _ in kinds), kinds
    assert any(node.get("Index Name") == "audit_log_newest" for node in plan), kinds
