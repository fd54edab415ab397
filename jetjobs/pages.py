"""Reading a list the store answers a page at a time, as no answer may pass the
NATS server's `max_payload`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Fetch = Callable[[list[T]], Awaitable[tuple[list[T], bool]]]
"""One page, asked for after the items read so far: its items and whether more follow."""

FetchAfter = Callable[[str | None], Awaitable[tuple[list[T], str | None]]]
"""One page of a catalog, asked for after a cursor (None: the first page): its items
and the cursor of the page that follows (None: this is the last)."""


async def every_page(fetch: Fetch[T], limit: int | None = None) -> list[T]:
    """The items of every page, up to `limit` of them when given."""
    items: list[T] = []
    while limit is None or len(items) < limit:
        page, more = await fetch(items)
        items += page
        if not (more and page):
            break
    return items


async def every_page_after(fetch: FetchAfter[T]) -> list[T]:
    """The items of every page of a catalog, each page asked for after the cursor the
    one before gave: an item added or removed meanwhile moves no other in or out."""
    items: list[T] = []
    after: str | None = None
    while True:
        page, after = await fetch(after)
        items += page
        if after is None or not page:
            return items
