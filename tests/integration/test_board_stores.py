"""Stores sharing one database keep the templates board equal to Postgres: a store
that resyncs the whole board while another changes templates never undoes those
changes (a store started beside running ones resyncs as it starts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from bus import TemplateBoard
from contracts import subjects as s
from contracts.api import TemplateRef
from contracts.models import ActiveTemplate, RunTemplate
from store.board import BoardKeeper
from store.db import open_pool
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(90)


class HeldBoard(TemplateBoard):
    """The board of a store that has read its templates and not yet written them."""

    def __init__(self, board: TemplateBoard) -> None:
        super().__init__(board._kv, board._js)  # the same bucket, its writes held back
        self.read = asyncio.Event()
        self.release = asyncio.Event()

    async def put_all(self, templates: Sequence[ActiveTemplate]) -> None:
        self.read.set()
        await self.release.wait()
        await super().put_all(templates)


@pytest.fixture
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company()
        yield running


async def test_a_store_resyncing_the_board_keeps_what_another_store_changed_meanwhile(stack: Stack) -> None:
    app = str((await stack.app("-c true")).app.id)
    every = {"app": app, "company": "acme", "interv": "c", "cron": "0 * * * *"}
    doomed = await stack.template(name="doomed", **every)
    paused = await stack.template(name="paused", **every)
    board = await TemplateBoard.open(stack.bus.js)
    assert {doomed.id, paused.id} <= await board.ids()

    held = HeldBoard(board)
    pool = await open_pool(stack.database_url, 2)
    try:
        resync = asyncio.create_task(BoardKeeper(pool, held).resync())  # a second store starting
        await asyncio.wait_for(held.read.wait(), 10)
        changes = asyncio.gather(
            stack.template(name="born", **every),
            stack.client.call("template.delete", TemplateRef(id=doomed.id), RunTemplate),
            stack.client.call("template.pause", TemplateRef(id=paused.id), RunTemplate),
        )
        await asyncio.sleep(0.5)  # the running store's changes are committed by now
        held.release.set()
        await resync
        born, _, _ = await changes
    finally:
        held.release.set()
        await pool.close()

    async def settled() -> bool:
        on_board = await board.ids()
        return born.id in on_board and doomed.id not in on_board

    await eventually(settled, 10, "the board to hold the new template and not the deleted one")
    kv = await stack.bus.js.key_value(s.TEMPLATES_BUCKET)
    entry = await kv.get(s.template_key(paused.id))
    assert entry.value is not None and ActiveTemplate.model_validate_json(entry.value).paused


async def test_a_store_slow_to_write_a_template_never_overwrites_a_later_change_by_another(
    stack: Stack,
) -> None:
    """Two stores answering changes to one template close together: the one that read
    the template first and writes it last (a slow link, a stalled loop) must not
    leave its older view on the board."""
    app = str((await stack.app("-c true")).app.id)
    doomed = await stack.template(name="doomed", app=app, company="acme", interv="c", cron="0 * * * *")
    board = await TemplateBoard.open(stack.bus.js)
    held = HeldBoard(board)
    pool = await open_pool(stack.database_url, 2)
    try:
        slow = asyncio.create_task(BoardKeeper(pool, held).refresh([doomed.id]))
        await asyncio.wait_for(held.read.wait(), 10)  # it has read the template, still scheduled
        deleting = asyncio.create_task(
            stack.client.call("template.delete", TemplateRef(id=doomed.id), RunTemplate)
        )
        await asyncio.sleep(0.5)
        held.release.set()
        await slow
        await deleting
    finally:
        held.release.set()
        await pool.close()
    await asyncio.sleep(0.5)
    assert doomed.id not in await board.ids(), "a deleted template is back on the board"
