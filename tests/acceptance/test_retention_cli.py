"""`jetjobs prune` as an operator runs it, and the store's retention settings."""

from __future__ import annotations

import json

import asyncpg

from contracts import tenants as t
from store.tokens import bootstrap_token
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.integration import old_rows
from tests.stack import make_store


async def _seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for n in range(3):
            await old_rows.job(conn, f"old-{n}", 40)
        await old_rows.job(conn, "new", 1)
        await old_rows.dead_letters(conn, 2, 40)
        await old_rows.audit_entries(conn, 4, 400)
        await conn.execute("INSERT INTO company (code, name) VALUES ('acme', 'ACME')")
        await conn.execute(
            "INSERT INTO application (uuid, name, executable, document) VALUES (gen_random_uuid(), 'a', 'true', '{}')"
        )
        await conn.execute(
            "INSERT INTO runtemplate (name, app_id, company_id, timeout, timeout_ack, timeout_result, deleted_at) "
            "VALUES ('gone', 1, 1, 60, 30, 60, now() - interval '40 days')"
        )
    finally:
        await conn.close()


async def test_an_admin_prunes_history_dry_first(nats_url: str, database_url: str) -> None:
    store = make_store(nats_url, database_url)
    await store.start()
    try:
        await _seed(database_url)
        root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
        alice = await bootstrap_token(database_url, t.TokenCreate(actor="alice"))
        env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_API_TOKEN=root.token)

        dry = await jetjobs("prune", "--older-than", "30d", "--dry-run", env=env)
        assert dry.code == 0, dry
        assert dry.out.startswith("would remove history that ended before ")
        assert any(line.split() == ["jobs", "3"] for line in dry.out.splitlines()), dry.out
        assert any(line.split() == ["dead", "letters", "2"] for line in dry.out.splitlines()), dry.out
        assert any(line.split() == ["templates", "1"] for line in dry.out.splitlines()), dry.out

        done = await jetjobs("--json", "prune", "--older-than", "4w", "--audit-older-than", "365d", env=env)
        assert done.code == 0, done
        reply = json.loads(done.out)
        assert not reply["dry_run"] and not reply["more"]
        assert reply["counts"] == {
            "jobs": 3,
            "attempts": 3,
            "events": 9,
            "artifacts": 3,
            "deadlines": 3,
            "flow_runs": 0,
            "flow_nodes": 0,
            "slots": 0,
            "templates": 1,
            "dead_letters": 2,
            "audit_entries": 4,
        }
        again = await jetjobs("prune", "--older-than", "30d", env=env)
        assert again.out.startswith("removed history"), again.out
        assert ["jobs", "0"] in [line.split() for line in again.out.splitlines()], again.out
        assert "audit" not in again.out, "no audit horizon, no audit row"

        refused = await jetjobs("prune", "--older-than", "30d", env=env | {"JETJOBS_API_TOKEN": alice.token})
        one_line_error(refused, "only an actor with an admin token may prune history")
    finally:
        await store.stop()


async def test_bad_ages_and_retention_settings_are_one_line_errors() -> None:
    env = clean_env(JETJOBS_NATS_URL="nats://127.0.0.1:1")
    for age, expected in (("10m", "expected a number and a unit h, d or w"), ("0h", "give from 1h")):
        result = await jetjobs("prune", "--older-than", age, env=env)
        assert result.code == 2 and expected in result.err and "Traceback" not in result.err, result
    store_env = env | {"JETJOBS_DATABASE_URL": "postgresql://u@127.0.0.1:1/db", "JETJOBS_METRICS_PORT": "0"}
    too_long = await jetjobs("store", env=store_env | {"JETJOBS_RETENTION_DAYS": "40000"})
    one_line_error(too_long, "JETJOBS_RETENTION_DAYS=40000: give a number of days from 1 to 36500")
    negative = await jetjobs("store", env=store_env | {"JETJOBS_AUDIT_RETENTION_DAYS": "-1"})
    one_line_error(negative, "JETJOBS_AUDIT_RETENTION_DAYS='-1' must be at least 0")
    flag = await jetjobs("store", "--retention-days", "x", env=store_env)
    assert flag.code == 2 and "--retention-days: expected a whole number" in flag.err, flag
