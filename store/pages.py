"""Pages of lists that fit in one NATS message: a page is cut at its `limit` or
where its items would pass the server's `max_payload`, whichever comes first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel

from bus import encode
from bus.api import reply_room

M = TypeVar("M", bound=BaseModel)

MARGIN = 4096
"""Bytes kept for what a reply holds besides its items (its field names, `more`)."""


def fit(items: Sequence[M], limit: int) -> tuple[list[M], bool]:
    """The first of `items` (read with one more than `limit`) that one reply holds,
    at most `limit`, and whether any is left for the next page. The first item is
    always given: alone too large, the bus answers 413 for it."""
    room = reply_room.get() - MARGIN
    page: list[M] = []
    for item in items[:limit]:
        room -= len(encode(item)) + 1
        if page and room < 0:
            return page, True
        page.append(item)
    return page, len(items) > limit
