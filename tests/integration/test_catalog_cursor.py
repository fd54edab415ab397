"""Catalogs are read a page at a time by a key cursor (`after`, the `next` of the
page before): an item added before the cursor, or removed from a page already
read, moves no other item into or out of the pages that follow. Each test first
reads the same catalog by `offset`, as clients did before, and shows the change
skip or repeat an item there."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from bus import ApiClient
from bus.api import ERROR_CODE_HEADER
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.models import RunTemplate
from contracts.subjects import api_subject
from store.pages import cursor
from store.tokens import bootstrap_token
from tests.stack import Stack, running_stack

LIMIT = 4
"""Items a page holds: ten items make three pages."""


@dataclass(frozen=True)
class Read:
    """One page as a test sees it: its items' names, whether more follow, its cursor."""

    names: list[str]
    more: bool
    next: str | None


ReadPage = Callable[[str | None, int], Awaitable[Read]]
"""One page, from a cursor (None: the first) or from an offset."""

Change = Callable[[list[str]], Awaitable[object]]
"""What another client does once the first page (these names) was read."""


@pytest.fixture
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def by_cursor(read: ReadPage, change: Change) -> list[str]:
    """Every item, each page asked for after the `next` of the one before."""
    first = await read(None, 0)
    await change(first.names)
    names, after = list(first.names), first.next
    while after is not None:
        page = await read(after, 0)
        names += page.names
        after = page.next
    return names


async def by_offset(read: ReadPage, change: Change) -> list[str]:
    """Every item, each page asked for at the number of items read so far."""
    first = await read(None, 0)
    await change(first.names)
    names, more = list(first.names), first.more
    while more:
        page = await read(None, len(names))
        names += page.names
        more = page.more
    return names


def repeated(names: list[str]) -> list[str]:
    return sorted({name for name in names if names.count(name) > 1})


async def test_a_company_created_before_the_cursor_repeats_none(stack: Stack) -> None:
    codes = [f"c{i:02}" for i in range(10)]
    for code in codes:
        await stack.company(code)

    async def read(after: str | None, offset: int) -> Read:
        query = api.CompanyQuery(after=after, offset=offset, limit=LIMIT)
        reply = await stack.client.call("company.list", query, api.CompanyList)
        return Read([c.code for c in reply.companies], reply.more, reply.next)

    assert repeated(await by_offset(read, lambda _: stack.company("b00"))) == ["c03"]
    assert await by_cursor(read, lambda _: stack.company("a00")) == ["b00", *codes]


async def test_an_application_imported_before_the_cursor_repeats_none(stack: Stack) -> None:
    names = [f"app-c{i:02}" for i in range(10)]

    async def add(name: str) -> None:
        document = {"name": name, "executable": "true"}
        await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)

    for name in names:
        await add(name)

    async def read(after: str | None, offset: int) -> Read:
        reply = await stack.client.call(
            "app.list", api.AppQuery(after=after, offset=offset, limit=LIMIT), api.AppList
        )
        return Read([a.name for a in reply.apps], reply.more, reply.next)

    assert repeated(await by_offset(read, lambda _: add("app-b00"))) == ["app-c03"]
    assert await by_cursor(read, lambda _: add("app-a00")) == ["app-b00", *names]


async def _templates(stack: Stack, names: list[str]) -> dict[str, RunTemplate]:
    app = await stack.app("-c true")
    made = [await stack.template(name=name, app=str(app.app.id), company="acme") for name in names]
    return {template.name: template for template in made}


async def _delete(stack: Stack, template: RunTemplate) -> None:
    await stack.client.call("template.delete", api.TemplateRef(id=template.id), RunTemplate)


def _template_pages(stack: Stack, deleted: bool) -> ReadPage:
    async def read(after: str | None, offset: int) -> Read:
        query = api.TemplateQuery(after=after, offset=offset, limit=LIMIT, deleted=deleted)
        reply = await stack.client.call("template.list", query, api.TemplateList)
        return Read([x.name for x in reply.templates], reply.more, reply.next)

    return read


async def test_a_template_deleted_from_a_page_read_skips_none(stack: Stack) -> None:
    await stack.company("acme")
    names = [f"t{i:02}" for i in range(10)]
    made = await _templates(stack, names)
    read = _template_pages(stack, deleted=False)

    skipped = await by_offset(read, lambda page: _delete(stack, made[page[1]]))
    assert skipped == [name for name in names if name != "t04"], "by offset, t01 removed, t04 is skipped"

    live = [name for name in names if name != "t01"]
    assert await by_cursor(read, lambda page: _delete(stack, made[page[-1]])) == live, (
        "removing the cursor's own item moves nothing either"
    )


async def test_deleted_templates_list_by_cursor_while_more_are_deleted(stack: Stack) -> None:
    await stack.company("acme")
    names = [f"d{i:02}" for i in range(10)]
    made = await _templates(stack, ["a00", "b00", *names])
    for name in names:
        await _delete(stack, made[name])
    read = _template_pages(stack, deleted=True)

    assert repeated(await by_offset(read, lambda _: _delete(stack, made["b00"]))) == ["d03"]
    assert await by_cursor(read, lambda _: _delete(stack, made["a00"])) == ["b00", *names]


async def test_a_token_issued_during_a_listing_repeats_none(stack: Stack) -> None:
    root = await bootstrap_token(stack.database_url, t.TokenCreate(actor="root", admin=True))
    as_root = ApiClient(stack.bus.nc, token=root.token)

    async def issue(note: str) -> None:
        await as_root.call("token.create", t.TokenCreate(actor="svc", note=note), t.TokenIssued)

    for i in range(10):
        await issue(f"n{i:02}")

    async def read(after: str | None, offset: int) -> Read:
        query = t.TokenFilter(actor="svc", after=after, offset=offset, limit=LIMIT)
        reply = await as_root.call("token.list", query, t.TokenList)
        return Read([x.note for x in reply.tokens], reply.more, reply.next)

    assert repeated(await by_offset(read, lambda _: issue("n10"))) == ["n06"], (
        "newest first: a new one comes before"
    )
    assert await by_cursor(read, lambda _: issue("n11")) == [f"n{i:02}" for i in range(10, -1, -1)]


async def test_an_artifact_stored_before_the_cursor_repeats_none(stack: Stack) -> None:
    await stack.company("acme")
    job = "job-with-files"
    conn = await asyncpg.connect(stack.database_url)
    try:  # artifacts are taken only for a job whose dispatch is recorded
        await conn.execute(
            "INSERT INTO job (id, company, status, attempt, dispatched_at) "
            "VALUES ($1, 'acme', 'dispatched', 1, now())",
            job,
        )
    finally:
        await conn.close()

    async def put(name: str) -> None:
        content = name.encode()
        upload = t.ArtifactUpload(
            job_id=job,
            company="acme",
            attempt=1,
            name=name,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=base64.b64encode(content).decode(),
        )
        await stack.client.call("artifact.put", upload, t.ArtifactInfo)

    names = [f"f{i:02}.txt" for i in range(10)]
    for name in names:
        await put(name)

    async def read(after: str | None, offset: int) -> Read:
        query = t.ArtifactQuery(id=job, after=after, offset=offset, limit=LIMIT)
        reply = await stack.client.call("artifact.list", query, t.ArtifactList)
        return Read([x.name for x in reply.artifacts], reply.more, reply.next)

    assert repeated(await by_offset(read, lambda _: put("e00.txt"))) == ["f03.txt"]
    assert await by_cursor(read, lambda _: put("d00.txt")) == ["e00.txt", *names]


async def test_a_cursor_that_is_not_one_of_the_list_is_refused_clearly(stack: Stack) -> None:
    await stack.company("acme")
    await stack.company("beta")
    first = await stack.client.call("company.list", api.CompanyQuery(limit=1), api.CompanyList)
    assert first.more and first.next is not None
    with pytest.raises(ApiFailure) as foreign:
        await stack.client.call("template.list", api.TemplateQuery(after=first.next), api.TemplateList)
    assert foreign.value.code == 400
    assert (
        "is not a cursor of this list: send the `next` of its previous page unchanged"
        in foreign.value.message
    )
    with pytest.raises(ApiFailure) as garbled:
        await stack.client.call("company.list", api.CompanyQuery(after="not-a-cursor"), api.CompanyList)
    assert garbled.value.code == 400 and garbled.value.message.startswith(
        "company.list: `after` 'not-a-cursor'"
    )
    last = await stack.client.call("company.list", api.CompanyQuery(after=first.next), api.CompanyList)
    assert ([c.code for c in last.companies], last.more, last.next) == (["beta"], False, None)


async def test_a_page_asked_for_by_both_cursor_and_offset_is_refused(stack: Stack) -> None:
    request = json.dumps({"after": cursor(("acme",)), "offset": 1}).encode()
    refused = await stack.bus.nc.request(api_subject("company.list"), request, timeout=10)
    assert (refused.headers or {}).get(ERROR_CODE_HEADER) == "400"
    assert (
        "give `after` (the cursor of the previous page) or `offset`, not both"
        in json.loads(refused.data)["error"]
    )
