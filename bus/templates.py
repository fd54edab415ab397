"""The templates KV: the store writes active templates, schedulers watch them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue
from pydantic import ValidationError

from contracts import subjects as s
from contracts.errors import describe
from contracts.models import ActiveTemplate

from .heal import until_remade

log = structlog.get_logger("jetjobs.bus")


@dataclass(frozen=True)
class Removed:
    """A template is no longer scheduled (deleted, paused or made manual-only)."""

    template_id: int


@dataclass(frozen=True)
class Loaded:
    """Every template that existed when the watch began has been delivered."""


@dataclass(frozen=True, slots=True)
class Posted:
    """A template on the board, with the bytes it was put as (compact to keep)."""

    template: ActiveTemplate
    raw: bytes


@dataclass(frozen=True)
class Unreadable:
    """A board entry that is not a template (written by hand, or by a newer store): the
    template it names is not scheduled until the store writes it again."""

    template_id: int


BoardChange = Posted | Removed | Unreadable | Loaded


def _template_id(key: str) -> int | None:
    prefix, _, number = key.partition(".")
    return int(number) if prefix == "t" and number.isdigit() else None


WINDOW = 256
"""Board writes in flight at once (each a JetStream publish waiting for its ack)."""
IDS_WAIT = 5.0
"""Seconds `ids` waits for the next key before it gives up (raising a timeout)."""


class TemplateBoard:
    """Typed access to the `jetjobs_templates` bucket."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    @classmethod
    async def open(cls, js: JetStreamContext) -> TemplateBoard:
        """Bind to the bucket (provisioned by `bus.infra.provision`)."""
        return cls(await js.key_value(s.TEMPLATES_BUCKET), js)

    async def put(self, template: ActiveTemplate) -> None:
        """Publish the scheduler's view of one template."""
        await self._kv.put(s.template_key(template.id), template.model_dump_json().encode())

    async def remove(self, template_id: int) -> None:
        """Stop scheduling a template."""
        await self._kv.delete(s.template_key(template_id))

    async def put_all(self, templates: Sequence[ActiveTemplate]) -> None:
        """`put` many, `WINDOW` at a time: 10,000 written one by one took the store four
        seconds of round trips at start, and as long after each change to an
        application they share."""
        for start in range(0, len(templates), WINDOW):
            await asyncio.gather(*(self.put(t) for t in templates[start : start + WINDOW]))

    async def remove_all(self, template_ids: Sequence[int]) -> None:
        """`remove` many, `WINDOW` at a time."""
        for start in range(0, len(template_ids), WINDOW):
            await asyncio.gather(*(self.remove(i) for i in template_ids[start : start + WINDOW]))

    async def remade(self) -> None:
        """Return once the bucket was deleted and made again (NATS lost its storage,
        an operator deleted it): it is empty, so the store must fill it again and a
        `follow` begun before then must begin again (see `until_remade`)."""
        await until_remade(self._js, f"KV_{s.TEMPLATES_BUCKET}")

    async def ids(self) -> set[int]:
        """Ids of every template currently on the board, read to the last key. (nats-py's
        `keys` reports none when the server has handed it every key before it read the
        first: a store resyncing then left deleted templates on the board.)"""
        stream = f"KV_{s.TEMPLATES_BUCKET}"
        found: set[int] = set()
        if not (await self._js.stream_info(stream)).state.messages:
            return found
        sub = await self._js.subscribe(
            f"$KV.{s.TEMPLATES_BUCKET}.>",
            stream=stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=True,
            inactive_threshold=300,
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=IDS_WAIT)
                template_id = _template_id(msg.subject.removeprefix(f"$KV.{s.TEMPLATES_BUCKET}."))
                if template_id is not None and (msg.headers or {}).get(KV_OP) not in (KV_DEL, KV_PURGE):
                    found.add(template_id)
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    async def follow(self) -> AsyncIterator[list[BoardChange]]:
        """Current templates, then `Loaded`, then every change as it happens, in bulk
        and with each template's bytes: every step yields all changes that arrived
        since the previous one (thousands at once while the board is first read), so
        a large board costs one hop per batch rather than several per template."""
        batch: list[BoardChange] = []
        ready = asyncio.Event()
        loaded = False

        async def take(msg: Msg) -> None:
            nonlocal loaded
            change = _posted(msg)
            if change is not None:
                batch.append(change)
            if not loaded and msg.metadata.num_pending == 0:
                loaded = True
                batch.append(Loaded())
            ready.set()

        sub = await self._js.subscribe(
            f"$KV.{s.TEMPLATES_BUCKET}.>",
            stream=f"KV_{s.TEMPLATES_BUCKET}",
            cb=take,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=300,
        )
        try:
            info = await sub.consumer_info()
            delivered = 0 if info.delivered is None else info.delivered.stream_seq or 0
            if not loaded and not info.num_pending and not delivered:
                loaded = True
                batch.append(Loaded())
            while True:
                if not batch:
                    ready.clear()
                    await ready.wait()
                out = batch[:]
                batch.clear()
                yield out
        finally:
            await sub.unsubscribe()


def _posted(msg: Msg) -> Posted | Removed | Unreadable | None:
    template_id = _template_id(msg.subject.removeprefix(f"$KV.{s.TEMPLATES_BUCKET}."))
    if template_id is None:
        log.warning("templates.unknown_key", subject=msg.subject)
        return None
    operation = (msg.headers or {}).get(KV_OP)
    if operation in (KV_DEL, KV_PURGE) or not msg.data:
        return Removed(template_id)
    try:
        return Posted(ActiveTemplate.model_validate_json(msg.data), msg.data)
    except ValidationError as error:  # its last good version is no longer what was asked: stop it
        log.error("templates.invalid", subject=msg.subject, template_id=template_id, reason=describe(error))
        return Unreadable(template_id)
