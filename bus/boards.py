"""The runners and cancels buckets: who is alive, and which jobs must stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import NamedTuple

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import APIError, KeyNotFoundError, NoStreamResponseError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from contracts import subjects as s
from contracts.lifecycle import RunnerInfo
from contracts.messages import JobEvent

from .heal import until_remade
from .infra import Layout, ensure_bucket
from .letters import job_id_of

log = structlog.get_logger("jetjobs.bus")

GOODBYE_WAIT = 2.0
"""Seconds a stopping runner tries to take itself off the board: with NATS away its
key lapses by the bucket's TTL all the same, and a stop should not wait on it."""


class RunnerBoard:
    """Executors put their heartbeat here; the bucket's TTL forgets the silent ones.

    The bucket is kept in memory, so a NATS restart loses it: a board opened with
    the service's layout makes it again when it finds it missing, and goes on."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, config: KeyValueConfig | None) -> None:
        self._js = js
        self._kv = kv
        self._config = config

    @classmethod
    async def open(cls, js: JetStreamContext, layout: Layout | None = None) -> RunnerBoard:
        """Bind to the bucket (provisioned by `bus.infra.provision`); with a `layout`,
        make it first if it is missing, and again whenever it goes missing."""
        config = None if layout is None else layout.runners_bucket()
        if config is not None:
            await ensure_bucket(js, config)
        return cls(js, await js.key_value(s.RUNNERS_BUCKET), config)

    async def _restore(self, error: Exception) -> None:
        """Make the lost bucket again as it was provisioned; re-raise `error` when this
        board may not (opened without a layout: a read-only look)."""
        if self._config is None:
            raise error
        if await ensure_bucket(self._js, self._config):
            log.warning("runners.bucket_recreated", bucket=self._config.bucket, error=repr(error))

    STREAM = f"KV_{s.RUNNERS_BUCKET}"
    """The stream under the bucket, where a heartbeat's stored time can be read."""

    async def beat(self, info: RunnerInfo) -> int:
        """Announce (again) that this runner is alive; each put restarts its TTL.
        Returns the heartbeat's sequence in `STREAM`."""
        key, value = s.runner_key(info.pool, info.id), info.model_dump_json().encode()
        try:
            return await self._kv.put(key, value)
        except NoStreamResponseError as error:
            await self._restore(error)
            return await self._kv.put(key, value)

    async def leave(self, info: RunnerInfo) -> None:
        """Say goodbye on a clean stop, so nobody waits for the TTL."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GOODBYE_WAIT):
                await self._kv.delete(s.runner_key(info.pool, info.id))

    async def live(self) -> list[RunnerInfo]:
        """Every runner whose last heartbeat is younger than the bucket's TTL. The keys
        come from the stream's subjects: `KeyValue.keys` makes a consumer each time,
        which the server keeps for five minutes after (about 30 stood at all times
        for the store's reaper alone)."""
        try:
            keys = await self._keys()
        except NotFoundError as error:  # the bucket itself: nobody has announced since it was lost
            await self._restore(error)
            return []
        runners: list[RunnerInfo] = []
        for key in keys:
            info = await self._get(key)
            if info is not None:
                runners.append(info)
        return sorted(runners, key=lambda r: (r.pool, r.id))

    async def _keys(self) -> list[str]:
        prefix = f"$KV.{s.RUNNERS_BUCKET}."
        info = await self._js.stream_info(f"KV_{s.RUNNERS_BUCKET}", subjects_filter=f"{prefix}>")
        return [subject.removeprefix(prefix) for subject in info.state.subjects or {}]

    async def made(self) -> datetime | None:
        """When the server made the bucket (None: just made again here). A new value
        means it was lost and made again: for one TTL it may miss live runners."""
        try:
            info = await self._js.stream_info(f"KV_{s.RUNNERS_BUCKET}")
        except NotFoundError as error:
            await self._restore(error)
            return None
        return info.created

    async def _get(self, key: str) -> RunnerInfo | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, NotFoundError):
            return None
        if not entry.value:
            return None
        try:
            return RunnerInfo.model_validate_json(entry.value)
        except ValidationError:
            log.warning("runners.invalid", key=key)
            return None


class CancelBoard:
    """Cancelled job ids: the store marks them, executors check and watch them."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    @classmethod
    async def open(cls, js: JetStreamContext) -> CancelBoard:
        """Bind to the bucket (provisioned by `bus.infra.provision`)."""
        return cls(await js.key_value(s.CANCELS_BUCKET), js)

    async def mark(self, job_id: str, reason: str) -> None:
        """Ask every executor to stop `job_id` (before or while it runs)."""
        await self._kv.put(job_id, reason.encode())

    async def reason(self, job_id: str) -> str | None:
        """Why `job_id` was cancelled, or None when it was not."""
        try:
            entry = await self._kv.get(job_id)
        except (KeyNotFoundError, NotFoundError):
            return None
        return entry.value.decode(errors="replace") if entry.value else None

    async def remade(self) -> None:
        """Return once the bucket was deleted and made again: a `watch` begun before
        then must begin again, or it may miss cancels (see `until_remade`)."""
        await until_remade(self._js, f"KV_{s.CANCELS_BUCKET}")

    async def watch(self, ready: Callable[[], None] | None = None) -> AsyncIterator[tuple[str, str]]:
        """Each cancel on the board (those marked before first), as (job id, reason);
        `ready` is called once the watch is set up."""
        watcher = await self._kv.watchall(include_history=False)
        if ready is not None:
            ready()
        try:
            async for entry in watcher:
                if entry is None or entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    continue
                yield entry.key, entry.value.decode(errors="replace")
        finally:
            await watcher.stop()


class CancelFeed:
    """Cancels as they are marked, from a plain subscription to the cancels bucket's
    subjects: for a NATS user that may not create consumers (a bind-only executor).
    Unlike a KV watch it misses the cancels marked while it is disconnected."""

    PREFIX = f"$KV.{s.CANCELS_BUCKET}."

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    async def remade(self) -> None:
        """Never returns: a plain subscription outlives its bucket being made again."""
        await asyncio.Future()

    async def watch(self, ready: Callable[[], None] | None = None) -> AsyncIterator[tuple[str, str]]:
        """Each cancel marked from now on, as (job id, reason); `ready` is called once
        the subscription is set up."""
        sub = await self._nc.subscribe(self.PREFIX + ">")
        if ready is not None:
            ready()
        try:
            async for msg in sub.messages:
                if (msg.headers or {}).get("KV-Operation") or not msg.data:
                    continue
                yield msg.subject.removeprefix(self.PREFIX), msg.data.decode(errors="replace")
        finally:
            await sub.unsubscribe()


async def delete_dispatch(js: JetStreamContext, sequence: int, job_id: str) -> bool:
    """Remove job `job_id`'s message from the dispatch stream, so it can never run
    late; False when it was already gone. A stream made again (NATS lost its storage)
    numbers messages from 1 anew, so another job's message left at `sequence` stays."""
    stored = await dispatch_message(js, sequence)
    if stored is None or job_id_of(stored.data) != job_id:
        return False
    try:
        return bool(await js.delete_msg(s.DISPATCH_STREAM, sequence))
    except (NotFoundError, APIError):
        return False


class StoredMessage(NamedTuple):
    """A message as a stream holds it."""

    subject: str
    data: bytes
    headers: dict[str, str]


async def dispatch_message(js: JetStreamContext, sequence: int) -> StoredMessage | None:
    """The job message at `sequence` of the dispatch stream, as it was published; None
    when nothing is left there."""
    try:
        raw = await js.get_msg(s.DISPATCH_STREAM, sequence)
    except NotFoundError:
        return None
    return StoredMessage(raw.subject or "", raw.data or b"", dict(raw.headers or {}))


async def last_event(js: JetStreamContext, company: str, job_id: str) -> JobEvent | None:
    """The latest lifecycle event of a job, straight from the events stream; None if none."""
    try:
        raw = await js.get_last_msg(s.EVENTS_STREAM, s.events_subject(company, job_id))
    except (NotFoundError, APIError):
        return None
    try:
        return JobEvent.model_validate_json(raw.data or b"")
    except ValidationError:
        return None


async def store_backlog(js: JetStreamContext) -> int:
    """Job messages and events the store has not yet projected: while any are left,
    its record may be behind what executors already reported."""
    backlog = 0
    for stream, durable in (
        (s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER),
        (s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER),
    ):
        info = await js.consumer_info(stream, durable)
        backlog += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    return backlog
