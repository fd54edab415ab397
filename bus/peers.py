"""The stores serving the API right now, and the schema each announces: a store
never starts beside one of an older schema, which would go on answering from a
database it no longer understands (secrets it cannot find, a templates board
rebuilt from what it misreads)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import Header
from nats.micro.service import ServiceVerb, control_subject

from contracts import subjects as s

from .api import SCHEMA_METADATA
from .connection import connect
from .infra import InfrastructureDrift

FIRST_ANSWER = 2.0
"""Seconds to wait for a first answer. With no store running NATS says so at once."""

STRAGGLERS = 0.25
"""Seconds the other stores get, once one has answered."""

NO_RESPONDERS = "503"


class OlderStoreRunning(InfrastructureDrift):
    """A store of an older schema serves the API on this NATS; the message names it."""


@dataclass(frozen=True)
class RunningStore:
    """One store as its `$SRV.INFO` answer describes it."""

    instance: str
    version: str
    schema: int | None
    """None: a store of a version from before stores announced their schema."""

    def describe(self) -> str:
        schema = "no schema announced" if self.schema is None else f"schema {self.schema}"
        return f"{self.instance} (version {self.version}, {schema})"


def running_store(data: bytes) -> RunningStore | None:
    """The store an answer describes; None for an answer that is not a service's info."""
    try:
        info = json.loads(data)
        metadata = info.get("metadata") or {}
        announced = str(metadata.get(SCHEMA_METADATA, ""))
        return RunningStore(
            instance=str(info["id"]),
            version=str(info.get("version", "?")),
            schema=int(announced) if announced.isdigit() else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


async def running_stores(nc: Client) -> list[RunningStore]:
    """Every store that answers `$SRV.INFO` for the API. None running: NATS says at
    once that nobody listens; some: the others get `STRAGGLERS` seconds to answer."""
    inbox = nc.new_inbox()
    answers = await nc.subscribe(inbox)
    try:
        await nc.publish(control_subject(ServiceVerb.INFO, s.API_SERVICE), reply=inbox)
        loop = asyncio.get_running_loop()
        found: list[RunningStore] = []
        until = loop.time() + FIRST_ANSWER
        while (left := until - loop.time()) > 0:
            try:
                msg = await answers.next_msg(timeout=left)
            except NatsTimeout:
                break
            if (msg.headers or {}).get(Header.STATUS) == NO_RESPONDERS:
                break
            if (store := running_store(msg.data)) is not None:
                found.append(store)
            until = min(until, loop.time() + STRAGGLERS)
        return found
    finally:
        await answers.unsubscribe()


async def refuse_beside_older_stores(url: str, name: str, schema: int) -> None:
    """Raise `OlderStoreRunning` if a store of a schema older than `schema`, or of a
    version that announces none, serves the API: checked before anything changes."""
    nc = await connect(url, name)
    try:
        older = [store for store in await running_stores(nc) if store.schema is None or store.schema < schema]
    finally:
        await nc.close()
    if older:
        raise OlderStoreRunning(
            f"a store of an older schema serves this NATS: {', '.join(store.describe() for store in older)}; "
            f"this store's schema is {schema}: stop every store of an older version before starting "
            "this one (README: Upgrading)"
        )
