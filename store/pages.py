"""Pages of lists that fit in one NATS message: a page is cut at its `limit` or
where its items would pass the server's `max_payload`, whichever comes first.

A catalog's next page starts after the key of the last item a page gave (its
`next` cursor), not at a count of items: a count moves when an item before it is
added or removed meanwhile, and the next page then skips or repeats one."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from bus.api import reply_room
from contracts.api import ApiFailure
from contracts.base import INT8_MAX

M = TypeVar("M", bound=BaseModel)

MARGIN = 4096
"""Bytes kept for what a reply holds besides its items (its field names, `more`, `next`)."""

Key = tuple[str | int, ...]
"""The values a list is ordered by, unique per item: what a cursor holds."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def fit(items: Sequence[M], limit: int) -> tuple[list[M], bool]:
    """The first of `items` (read with one more than `limit`) that one reply holds,
    at most `limit`, and whether any is left for the next page. The first item is
    always given: alone too large, the bus answers 413 for it."""
    room = reply_room.get() - MARGIN
    page: list[M] = []
    for item in items[:limit]:
        room -= len(_as_answered(item)) + 1
        if page and room < 0:
            return page, True
        page.append(item)
    return page, len(items) > limit


def _as_answered(item: BaseModel) -> bytes:
    """An item as the answer holds it: with its empty (None) fields, which the bus's
    `encode` leaves out; without them a page of jobs measured a tenth short."""
    return item.__pydantic_serializer__.to_json(item)


class Page(NamedTuple, Generic[M]):
    items: list[M]
    more: bool
    next: str | None
    """The cursor of the page that follows, when `more`."""


def keyed_page(items: Sequence[M], limit: int, key: Callable[[M], Key]) -> Page[M]:
    """`fit`, with the cursor of the page that follows: the `key` of the last item given."""
    page, more = fit(items, limit)
    return Page(page, more, cursor(key(page[-1])) if more else None)


def cursor(key: Key) -> str:
    """An opaque cursor: clients send it back as it is and need not know the key."""
    text = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def cursor_key(op: str, after: str | None, *shape: type[str] | type[int]) -> Any:
    """The key in cursor `after` (None for the first page), checked to be one of this
    list's: its values of the types `shape` gives, in order."""
    if after is None:
        return None
    try:
        padded = after + "=" * (-len(after) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (UnicodeError, binascii.Error, ValueError):
        values = None
    if not _shaped(values, shape):
        raise _not_a_cursor(op, after)
    return tuple(values)


def instant_value(at: datetime) -> int:
    """An instant as a cursor holds it: whole microseconds since the Unix epoch
    (JSON has no timestamp, and a float would lose a microsecond)."""
    return (at - _EPOCH) // _MICROSECOND


def cursor_instant(op: str, after: str, value: int) -> datetime:
    """The instant `instant_value` gave, read back from cursor `after`."""
    try:
        return _EPOCH + value * _MICROSECOND
    except OverflowError:
        raise _not_a_cursor(op, after) from None


def _not_a_cursor(op: str, after: str) -> ApiFailure:
    return ApiFailure(
        400,
        f"{op}: `after` {after[:40]!r} is not a cursor of this list: send the `next` of its "
        "previous page unchanged, or leave `after` out to start from the first page",
    )


def _shaped(values: object, shape: Sequence[type]) -> bool:
    if not isinstance(values, list) or len(values) != len(shape):
        return False
    return all(_fits(value, kind) for value, kind in zip(values, shape, strict=True))


def _fits(value: object, kind: type) -> bool:
    """Whether `value` is of `kind` and Postgres takes it (a `bool` is no `int` here)."""
    if type(value) is not kind:
        return False
    if isinstance(value, int):
        return -INT8_MAX - 1 <= value <= INT8_MAX
    return not (isinstance(value, str) and "\x00" in value)
