"""Newest-first logs whose entries can be large: dead letters, each with the whole
message it could not run, and audit entries. `dlq.list` gives summaries (`dlq.get`
and `jetjobs dlq show` give the message), both logs page older entries with
`before`, and a page is cut where the next entry would pass max_payload. Ten
dead letters of 300 kB, or thirty audit entries of 50 kB, used to be a 413 error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts import api
from contracts import tenants as t
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRecord, DeadLetterRef
from contracts.messages import DeadLetter
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, eventually, running_stack


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


def _message(i: int) -> str:
    return json.dumps({"job_id": f"job-{i}", "company": "acme", "junk": "x" * 300_000})


async def _bury(stack: Stack, count: int) -> list[int]:
    """Publish `count` dead letters of 300 kB, oldest first; their ids, newest first."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(count):
        letter = DeadLetter(
            company="acme",
            job_id=f"job-{i}",
            reason=f"letter {i}",
            subject="jetjobs.dispatch.acme.default",
            payload=_message(i),
            at=start + timedelta(seconds=i),
        )
        await stack.bus.publisher.dead(letter, f"letter-{i}")

    async def recorded() -> list[int] | None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = await conn.fetch("SELECT id FROM dead_letter ORDER BY at DESC, id DESC")
        finally:
            await conn.close()
        return [r["id"] for r in rows] if len(rows) == count else None

    return await eventually(recorded, what="the dead letters recorded")


async def test_dead_letters_with_large_messages_list_as_summaries(stack: Stack) -> None:
    await stack.company("acme")
    ids = await _bury(stack, 10)
    listed = await stack.client.call("dlq.list", DeadLetterQuery(company="acme"), DeadLetterList)
    assert [d.id for d in listed.dead_letters] == ids and not listed.more
    assert all(d.size == len(_message(0)) for d in listed.dead_letters)
    shown = await stack.client.call("dlq.get", DeadLetterRef(id=ids[0]), DeadLetterRecord)
    assert (shown.payload, shown.reason) == (_message(9), "letter 9")

    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    table = await jetjobs("dlq", "list", "--company", "acme", env=env)
    assert table.code == 0 and "letter 0" in table.out and "letter 9" in table.out, table.err
    as_json = await jetjobs("--json", "dlq", "list", env=env)
    assert as_json.code == 0, as_json.err
    entries = json.loads(as_json.out)
    assert [e["id"] for e in entries] == ids and "payload" not in entries[0]
    show = await jetjobs("dlq", "show", str(ids[0]), env=env)
    assert show.code == 0 and '"job_id": "job-9"' in show.out and "letter 9" in show.out, show.err
    unknown = await jetjobs("dlq", "show", "999999", env=env)
    assert (unknown.code, unknown.err.strip()) == (
        1,
        "jetjobs: error: unknown dead letter 999999: see `jetjobs dlq list`",
    )


async def test_dead_letters_page_older_ones_with_before(stack: Stack) -> None:
    await stack.company("acme")
    ids = await _bury(stack, 5)

    async def page(limit: int, before: int | None = None) -> tuple[list[int], bool]:
        query = DeadLetterQuery(company="acme", limit=limit, before=before)
        reply = await stack.client.call("dlq.list", query, DeadLetterList)
        return [d.id for d in reply.dead_letters], reply.more

    assert await page(5) == (ids, False)
    assert await page(4) == (ids[:4], True)
    assert await page(4, before=ids[3]) == (ids[4:], False)
    assert await page(2, before=ids[1]) == (ids[2:4], True)
    cut = await page(1000)
    assert cut == (ids, False)
    limited = await jetjobs(
        "--json", "dlq", "list", "--limit", "3", env=clean_env(JETJOBS_NATS_URL=stack.nats_url)
    )
    assert [e["id"] for e in json.loads(limited.out)] == ids[:3], limited.err


async def test_a_large_audit_log_is_read_page_by_page(stack: Stack) -> None:
    document = {"name": "audited", "executable": "true"}
    for i in range(30):  # the audit entry keeps the request's source: 50 kB each here
        source = f"{i:02}" + "s" * 50_000
        await stack.client.call(
            "app.import", api.AppImport(document=document, source=source), api.AppImported
        )
    first = await stack.client.call("audit.list", t.AuditQuery(), t.AuditList)
    assert first.more and 5 < len(first.entries) < 30, "a page is cut where the next entry would not fit"
    assert first.entries[0].detail["source"].startswith("29")
    older = await stack.client.call("audit.list", t.AuditQuery(before=first.entries[-1].id), t.AuditList)
    assert older.entries[0].id < first.entries[-1].id
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    listed = await jetjobs("--json", "audit", env=env)
    assert listed.code == 0, listed.err
    sources = [e["detail"]["source"][:2] for e in json.loads(listed.out)]
    assert sources == [f"{i:02}" for i in reversed(range(30))]
    limited = await jetjobs("--json", "audit", "--limit", "25", env=env)
    assert len(json.loads(limited.out)) == 25, limited.err
    table = await jetjobs("audit", env=env)
    assert table.code == 0 and table.out.count("app.import") == 30, table.err
