"""`jetjobs template list` reads every page by the cursor each page gives (through
`commands.every_template`, which the demo reads templates with too), so a template
someone else deletes while it reads leaves no other out. Its pages are cut by size
here (each template is large), not at their limit: the cursor is the last template
a page actually held."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from nats.aio.client import Client
from pydantic import BaseModel

from bus import ApiClient
from contracts import api
from contracts.models import RunTemplate
from jetjobs import commands
from tests.stack import Stack, running_stack

R = TypeVar("R", bound=BaseModel)

BLOB = "x" * 100_000
"""A template environment value: about ten such templates fill a NATS message."""


class ChangingClient(ApiClient):
    """A real API client that, once the first reply to `op` is in, makes `change`: what
    another user does while a command reads a list."""

    def __init__(self, nc: Client, op: str, change: Callable[[BaseModel], Awaitable[object]]) -> None:
        super().__init__(nc)
        self._op = op
        self._change: Callable[[BaseModel], Awaitable[object]] | None = change

    async def call(self, op: str, request: BaseModel, reply: type[R]) -> R:
        got = await super().call(op, request, reply)
        if op == self._op and self._change is not None:
            change, self._change = self._change, None
            await change(got)
        return got


@pytest.fixture
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def test_template_list_leaves_none_out_when_one_is_deleted_meanwhile(stack: Stack) -> None:
    await stack.company("acme")
    app = await stack.app("-c true")
    names = [f"t{i:02}" for i in range(30)]
    for name in names:
        await stack.template(name=name, app=str(app.app.id), company="acme", env={"BLOB": BLOB})
    first_pages: list[int] = []

    async def delete_first_of(page: BaseModel) -> None:
        assert isinstance(page, api.TemplateList) and page.more
        first_pages.append(len(page.templates))
        doomed = api.TemplateRef(id=page.templates[0].id)
        await stack.client.call("template.delete", doomed, RunTemplate)

    client = ChangingClient(stack.bus.nc, "template.list", delete_first_of)
    listed = [template.name for template in await commands.every_template(client, None, deleted=False)]
    assert first_pages and first_pages[0] < 30, "the first page was cut by size"
    assert listed == names, "each template once: the deleted one was read before it went"
