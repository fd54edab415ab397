"""A job's key-value results kept with its attempt in Postgres, on real servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contracts.enums import ErrorKind, Status
from store import migrate
from store.loader import migrations
from tests.acceptance.cli import clean_env, jetjobs
from tests.integration.test_store import Harness, harness, job_when
from tests.integration.test_store_projection import drained, event, get, message, new_id, publish
from tests.stack import running_stack

WRITE = """-c 'printf "{\\"answer\\": \\"42\\", \\"city\\": \\"Brno\\"}" > "$JETJOBS_RESULT_FILE"'"""


@pytest.fixture
async def h(nats_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(nats_url, database_url) as running:
        yield running


async def test_a_jobs_results_are_kept_with_its_attempt_and_shown(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app(WRITE)
        template = await stack.template(name="answers", app=app.app.uuid, company="acme")
        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert job.status is Status.PROCESSED
        [attempt] = job.attempts
        assert attempt.results == {"answer": "42", "city": "Brno"}

        env = clean_env(JETJOBS_NATS_URL=nats_url)
        shown = await jetjobs("job", "show", job.id, env=env)
        assert shown.code == 0, shown.err
        assert "--- results\nanswer=42\ncity=Brno" in shown.out
        record = json.loads((await jetjobs("--json", "job", "show", job.id, env=env)).out)
        assert record["attempts"][0]["results"] == {"answer": "42", "city": "Brno"}


async def test_each_attempt_keeps_its_own_results_and_later_events_never_erase_them(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id)])
    await publish(
        h,
        event(job_id, Status.ERROR, kind=ErrorKind.EXIT, exit_code=1, results={"try": "1"}, retry_in=1),
        event(job_id, Status.STARTED, attempt=2, pid=9),
        event(job_id, Status.PROCESSED, attempt=2, exit_code=0, final=True, results={"try": "2"}),
    )
    job = await job_when(h, job_id, lambda j: j.attempt == 2 and j.final)
    assert [(a.attempt, a.results) for a in job.attempts] == [(1, {"try": "1"}), (2, {"try": "2"})]

    await publish(h, event(job_id, Status.PROCESSED, attempt=2, exit_code=0, final=True))  # no results
    await publish(h, event(job_id, Status.ERROR, attempt=1, kind=ErrorKind.LOST, results={"try": "late"}))
    await drained(h)
    again = await get(h, job_id)
    assert [(a.attempt, a.results) for a in again.attempts] == [(1, {"try": "1"}), (2, {"try": "2"})]


async def test_nul_characters_in_results_are_replaced_not_lost(h: Harness) -> None:
    job_id = new_id()
    await h.bus.publisher.dispatch([message(job_id)])
    await publish(h, event(job_id, Status.PROCESSED, exit_code=0, results={"k\x00": "v\x00"}))
    job = await job_when(h, job_id, lambda j: j.status is Status.PROCESSED)
    assert job.attempts[0].results == {"k\ufffd": "v\ufffd"}


async def test_the_migration_fills_results_of_attempts_recorded_before_it(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE jetjobs_migrations (version integer PRIMARY KEY, name text NOT NULL)"
        )
        for step in [m for m in migrations() if m.version < 6]:
            await conn.execute(step.sql)
            await conn.execute("INSERT INTO jetjobs_migrations VALUES ($1, $2)", step.version, step.name)
        await conn.execute(
            "INSERT INTO job (id, company, status, attempt) VALUES ('old', 'acme', 'processed', 2);"
            "INSERT INTO job_attempt (job_id, attempt, status) VALUES ('old', 1, 'error'), ('old', 2, 'processed');"
        )
        payloads = [
            (1, "error", {"results": {"try": "1"}}),
            (2, "started", {"results": {}}),
            (2, "processed", {"results": {"try": "2"}}),
        ]
        for attempt, status, payload in payloads:
            await conn.execute(
                "INSERT INTO job_event (job_id, attempt, status, at, payload) VALUES ('old', $1, $2, now(), $3)",
                attempt,
                status,
                json.dumps(payload),
            )
        assert await migrate(database_url) == [m.version for m in migrations() if m.version >= 6]
        found = await conn.fetch("SELECT attempt, results::text FROM job_attempt ORDER BY attempt")
        assert [(r["attempt"], json.loads(r["results"])) for r in found] == [
            (1, {"try": "1"}),
            (2, {"try": "2"}),
        ]
    finally:
        await conn.close()
