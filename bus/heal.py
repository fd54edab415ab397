"""Making again what jetjobs needs when it is found gone: a consumer an operator
deleted, or every stream after a NATS server came back with its storage wiped.

Whoever notices (a pull the server says has no consumer, a publish no stream
answers, a lookup that finds nothing) asks its connection's `Healer`, which checks
what is missing, makes it again as provisioned and says so in one warning. Only
error paths reach it, so nothing here costs anything per job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import datetime
from weakref import WeakKeyDictionary

import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StorageType
from nats.js.errors import NoStreamResponseError, NotFoundError

from .infra import Layout, ensure_consumer, provision

log = structlog.get_logger("jetjobs.bus")

MISSING = (NotFoundError, NoStreamResponseError)
"""What a request raises when a stream, consumer or bucket it names is gone: what a
caller outside `bus` catches to ask its `Healer` to make it again."""

NO_RESPONDERS = "503"
"""The pull status that says nobody serves the consumer: it, or its stream, is gone
(or a cluster is electing its leader)."""

CONSUMER_DELETED = "Consumer Deleted"
"""The description of the 409 that ends the pull requests of a deleted consumer."""

PAUSE = 1.0
"""Seconds after one check before the next: every puller of a wiped server notices
at once, and a consumer nobody may make again is asked for again and again."""

FAILURE_NOTICE_EVERY = 30.0
"""Seconds between warnings that what is missing could not be made again."""

REMADE_CHECK = 2.0
"""Seconds between two looks at whether a watched stream or bucket was made again."""


def consumer_gone(status: str, description: str | None) -> bool:
    """Whether a pull request's closing status says its consumer may be gone."""
    return status == NO_RESPONDERS or (status == "409" and description == CONSUMER_DELETED)


def status_gist(status: str, description: str | None) -> str:
    """A pull status's description fit for a log line (a 503's carries headers)."""
    return "No Responders" if status == NO_RESPONDERS else (description or "")


class Healer:
    """Checks for, and makes again, the streams and buckets of the layout and the
    consumers declared to it. One check at a time per connection, at most one per
    `PAUSE`; concurrent callers share it. A passive healer (a connection that may
    not provision) only lets callers retry."""

    def __init__(
        self, js: JetStreamContext, layout: Layout, *, store: bool = False, active: bool = True
    ) -> None:
        self._js = js
        self._layout = layout
        self._store = store
        self._active = active
        self._consumers: dict[tuple[str, str], ConsumerConfig] = {}
        if store:
            for stream, config in layout.store_consumers():
                self.declare(stream, config)
        self._check: asyncio.Task[bool] | None = None
        self._next_check = 0.0
        self._next_failure_notice = 0.0
        self.generation = 0
        """Moves whenever what exists may have changed (a reconnect; something made
        again): a cache of what exists is stale once it moves."""

    def declare(self, stream: str, config: ConsumerConfig) -> None:
        """Make this consumer again too whenever it is found missing."""
        self._consumers[(stream, str(config.durable_name))] = config

    async def restore(self, noticed: str, *, quiet: bool = False) -> bool:
        """Make again whatever is missing (`noticed` says what gave it away); True when
        everything is there now, False when it could not be checked or made, or was
        checked a moment ago (the caller then waits before it tries again). A `quiet`
        check that fails says so only at info: nothing was seen missing yet."""
        if not self._active:
            return False
        if self._check is None:
            loop = asyncio.get_running_loop()
            if loop.time() < self._next_check:
                return False
            self._next_check = loop.time() + PAUSE
            self._check = asyncio.ensure_future(self._checked(noticed, quiet))
            self._check.add_done_callback(self._checked_done)
        return await asyncio.shield(self._check)

    def _checked_done(self, _: asyncio.Task[bool]) -> None:
        self._check = None

    def check_soon(self) -> None:
        """Check in the background (after a reconnect: the server may have lost its storage)."""
        self.generation += 1
        if self._active:
            check = self.restore("NATS connection came back", quiet=True)
            asyncio.ensure_future(check).add_done_callback(_settle)

    def close(self) -> None:
        """Stop a check still running (the connection is closing)."""
        if self._check is not None:
            self._check.cancel()

    async def _checked(self, noticed: str, quiet: bool) -> bool:
        try:
            missing = await self._missing()
            if missing:
                await self._make(missing)
                self.generation += 1
                self._said_remade(missing, noticed)
        except Exception as error:
            if quiet:
                log.info("bus.check_failed", noticed=noticed, error=str(error) or type(error).__name__)
            else:
                self._failed(noticed, error)
            return False
        return True

    def _said_remade(self, missing: list[str], noticed: str) -> None:
        """A warning, but at info when only buckets kept in memory were missing: every
        NATS restart loses those, so their loss alone is nothing to act on."""
        in_memory = {f"KV_{b.bucket}" for b in self._layout.buckets() if b.storage == StorageType.MEMORY}
        say = log.info if set(missing) <= in_memory else log.warning
        say("bus.remade", missing=missing, noticed=noticed, done="made again as provisioned")

    async def _missing(self) -> list[str]:
        """What is gone: streams and buckets by name, consumers as `stream/name`."""
        streams = [str(c.name) for c in self._layout.streams()]
        streams += [f"KV_{b.bucket}" for b in self._layout.buckets()]
        missing = [name for name in streams if not await self._exists(self._js.stream_info(name))]
        for stream, name in self._consumers:
            if not await self._exists(self._js.consumer_info(stream, name)):
                missing.append(f"{stream}/{name}")
        return missing

    @staticmethod
    async def _exists(lookup: Awaitable[object]) -> bool:
        try:
            await lookup
        except NotFoundError:
            return False
        return True

    async def _make(self, missing: list[str]) -> None:
        """Streams and buckets as at start (`provision`, safe to race with other
        services doing the same), then the declared consumers that were missing."""
        if any("/" not in name for name in missing):
            await provision(self._js, self._layout, store=self._store)
        for (stream, name), config in self._consumers.items():
            if f"{stream}/{name}" in missing:
                await ensure_consumer(self._js, stream, config)

    def _failed(self, noticed: str, error: Exception) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_failure_notice:
            return
        self._next_failure_notice = now + FAILURE_NOTICE_EVERY
        log.warning(
            "bus.remake_failed",
            noticed=noticed,
            error=str(error) or type(error).__name__,
            retry="when it is noticed again",
        )


async def until_remade(js: JetStreamContext, stream: str, every: float = REMADE_CHECK) -> None:
    """Return once `stream` (a bucket's: `KV_<bucket>`) has been deleted and made
    again since this began, by whichever service: what watches or fills it must start
    over, since an ordered consumer resumes at a sequence the new stream may never
    reach. One stream lookup every `every` seconds, nothing per message; found gone,
    it asks this connection's healer to make it again."""
    known = await _created(js, stream)
    while True:
        await asyncio.sleep(every)
        created = await _created(js, stream)
        if created is None:
            continue
        if known is not None and created != known:
            return
        known = created


async def _created(js: JetStreamContext, stream: str) -> datetime | None:
    """When the server made `stream`; None when it is gone or could not be asked."""
    try:
        return (await js.stream_info(stream)).created
    except NotFoundError:
        healer = healer_of(js)
        if healer is not None:
            await healer.restore(f"{stream} is gone")
    except (NatsError, TimeoutError):
        pass
    return None


def _settle(task: asyncio.Future[bool]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()


_healers: WeakKeyDictionary[Client | JetStreamContext, Healer] = WeakKeyDictionary()


def register(nc: Client, js: JetStreamContext, healer: Healer) -> None:
    """Let pullers made from the connection or its JetStream context find its healer."""
    _healers[nc] = healer
    _healers[js] = healer


def healer_of(handle: Client | JetStreamContext) -> Healer | None:
    """The healer of the bus `handle` belongs to; None for a connection not opened as a `Bus`."""
    return _healers.get(handle)
