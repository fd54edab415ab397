"""Catalogs that grow without bound (applications, companies, API tokens, a job's
artifacts) are answered a page at a time, each page cut where the next item would
pass the server's max_payload; the CLI reads every page. Each of these lists used
to come in one NATS message, and a large catalog ended in a 413 error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from store.tokens import bootstrap_token
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


def _big_app(i: int) -> dict[str, Any]:
    """A MultiFlexi app declaring 60 variables with long descriptions: about 25 kB listed."""
    environment = {
        f"VAR_{n:02}": {"type": "string", "description": f"{i}/{n} " + "d" * 380, "defval": "x" * 20}
        for n in range(60)
    }
    return {"name": f"app-{i:04}", "executable": "sh", "cmdparams": "-c true", "environment": environment}


async def _sql(stack: Stack, statement: str) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_catalog_of_large_applications_lists_page_by_page(stack: Stack) -> None:
    for start in range(0, 120, 20):
        await asyncio.gather(
            *(
                stack.client.call("app.import", api.AppImport(document=_big_app(i)), api.AppImported)
                for i in range(start, start + 20)
            )
        )
    first = await stack.client.call("app.list", api.AppQuery(), api.AppList)
    assert first.more and 20 < len(first.apps) < 120, "a page is cut where the next app would not fit"
    assert len(first.apps[0].model_dump_json()) > 20_000
    rest = await stack.client.call("app.list", api.AppQuery(offset=len(first.apps)), api.AppList)
    assert rest.apps[0].name == f"app-{len(first.apps):04}"
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    listed = await jetjobs("--json", "app", "list", env=env)
    assert listed.code == 0, listed.err
    assert [a["name"] for a in json.loads(listed.out)] == [f"app-{i:04}" for i in range(120)]
    table = await jetjobs("app", "list", env=env)
    assert table.code == 0 and "app-0000" in table.out and "app-0119" in table.out, table.err


async def test_applications_page_at_exactly_the_limit(stack: Stack) -> None:
    for i in range(5):
        document = {"name": f"small-{i}", "executable": "true"}
        await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)

    async def page(offset: int, limit: int) -> tuple[list[str], bool]:
        reply = await stack.client.call("app.list", api.AppQuery(offset=offset, limit=limit), api.AppList)
        return [a.name for a in reply.apps], reply.more

    assert await page(0, 5) == ([f"small-{i}" for i in range(5)], False)
    assert await page(0, 4) == ([f"small-{i}" for i in range(4)], True)
    assert await page(4, 4) == (["small-4"], False)
    assert await page(5, 4) == ([], False)


async def test_thousands_of_companies_list_page_by_page(stack: Stack) -> None:
    await _sql(
        stack,
        "INSERT INTO company (code, name) "
        "SELECT 'c' || lpad(i::text, 4, '0'), repeat('n', 400) FROM generate_series(0, 2999) AS i",
    )
    first = await stack.client.call("company.list", api.CompanyQuery(), api.CompanyList)
    assert (len(first.companies), first.more) == (500, True)
    last = await stack.client.call("company.list", api.CompanyQuery(offset=2500, limit=500), api.CompanyList)
    assert (last.companies[-1].code, last.more) == ("c2999", False)
    listed = await jetjobs("--json", "company", "list", env=clean_env(JETJOBS_NATS_URL=stack.nats_url))
    assert listed.code == 0, listed.err
    assert [c["code"] for c in json.loads(listed.out)] == [f"c{i:04}" for i in range(3000)]


async def test_thousands_of_api_tokens_list_page_by_page(stack: Stack) -> None:
    root = await bootstrap_token(stack.database_url, t.TokenCreate(actor="root", admin=True))
    await _sql(
        stack,
        "INSERT INTO actor_token (actor, token_hash, note, created_by) "
        "SELECT 'svc-' || i, sha256(i::text::bytea), repeat('n', 200), 'root' FROM generate_series(1, 3500) AS i",
    )
    as_root = ApiClient(stack.bus.nc, token=root.token)
    first = await as_root.call("token.list", t.TokenFilter(), t.TokenList)
    assert (len(first.tokens), first.more, first.tokens[0].actor) == (500, True, "svc-3500")
    last = await as_root.call("token.list", t.TokenFilter(offset=3000, limit=501), t.TokenList)
    assert (len(last.tokens), last.more, last.tokens[-1].actor) == (501, False, "root")
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url, JETJOBS_API_TOKEN=root.token)
    listed = await jetjobs("--json", "actor", "token", "list", env=env)
    assert listed.code == 0, listed.err
    assert len(json.loads(listed.out)) == 3501


async def test_a_job_with_thousands_of_artifacts_lists_them_all(stack: Stack) -> None:
    await stack.company("acme")
    job = "job-many-files"
    await _sql(
        stack,
        "INSERT INTO job (id, company, status, attempt) VALUES ('job-many-files', 'acme', 'processed', 1);"
        "INSERT INTO artifact (job_id, attempt, name, content_type, size, sha256, over_limit, note) "
        "SELECT 'job-many-files', 1, 'invoice-' || lpad(i::text, 4, '0') || '.pdf', 'application/pdf', "
        "10, '', true, repeat('over its limit ', 40) FROM generate_series(0, 1999) AS i",
    )
    first = await stack.client.call("artifact.list", t.ArtifactQuery(id=job), t.ArtifactList)
    assert (len(first.artifacts), first.more) == (500, True)
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    listed = await jetjobs("--json", "job", "artifacts", job, env=env)
    assert listed.code == 0, listed.err
    assert [a["name"] for a in json.loads(listed.out)] == [f"invoice-{i:04}.pdf" for i in range(2000)]
