"""The templates KV: the store writes active templates, schedulers watch them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from contracts import subjects as s
from contracts.errors import describe
from contracts.models import ActiveTemplate

log = structlog.get_logger("jetjobs.bus")


@dataclass(frozen=True)
class Removed:
    """A template is no longer scheduled (deleted, paused or made manual-only)."""

    template_id: int


@dataclass(frozen=True)
class Loaded:
    """Every template that existed when the watch began has been delivered."""


TemplateChange = ActiveTemplate | Removed | Loaded


def _template_id(key: str) -> int | None:
    prefix, _, number = key.partition(".")
    return int(number) if prefix == "t" and number.isdigit() else None


class TemplateBoard:
    """Typed access to the `jetjobs_templates` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> TemplateBoard:
        """Bind to the bucket (provisioned by `bus.infra.provision`)."""
        return cls(await js.key_value(s.TEMPLATES_BUCKET))

    async def put(self, template: ActiveTemplate) -> None:
        """Publish the scheduler's view of one template."""
        await self._kv.put(s.template_key(template.id), template.model_dump_json().encode())

    async def remove(self, template_id: int) -> None:
        """Stop scheduling a template."""
        await self._kv.delete(s.template_key(template_id))

    async def ids(self) -> set[int]:
        """Ids of every template currently on the board."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return set()
        return {i for i in map(_template_id, keys) if i is not None}

    async def watch(self) -> AsyncIterator[TemplateChange]:
        """Current templates, then `Loaded`, then every change as it happens."""
        watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                change = _change(entry)
                if change is not None:
                    yield change
        finally:
            await watcher.stop()


def _change(entry: KeyValue.Entry | None) -> TemplateChange | None:
    if entry is None:
        return Loaded()
    template_id = _template_id(entry.key)
    if template_id is None:
        log.warning("templates.unknown_key", key=entry.key)
        return None
    if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
        return Removed(template_id)
    try:
        return ActiveTemplate.model_validate_json(entry.value)
    except ValidationError as error:
        log.error("templates.invalid", key=entry.key, reason=describe(error))
        return None
