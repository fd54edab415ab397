"""The runners and cancels buckets: who is alive, and which jobs must stop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from contracts import subjects as s
from contracts.lifecycle import RunnerInfo
from contracts.messages import JobEvent

log = structlog.get_logger("jetjobs.bus")


class RunnerBoard:
    """Executors put their heartbeat here; the bucket's TTL forgets the silent ones."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> RunnerBoard:
        """Bind to the bucket (provisioned by `bus.infra.provision`)."""
        return cls(await js.key_value(s.RUNNERS_BUCKET))

    async def beat(self, info: RunnerInfo) -> None:
        """Announce (again) that this runner is alive; each put restarts its TTL."""
        await self._kv.put(s.runner_key(info.pool, info.id), info.model_dump_json().encode())

    async def leave(self, info: RunnerInfo) -> None:
        """Say goodbye on a clean stop, so nobody waits for the TTL."""
        with contextlib.suppress(Exception):
            await self._kv.delete(s.runner_key(info.pool, info.id))

    async def live(self) -> list[RunnerInfo]:
        """Every runner whose last heartbeat is younger than the bucket's TTL."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        runners: list[RunnerInfo] = []
        for key in keys:
            info = await self._get(key)
            if info is not None:
                runners.append(info)
        return sorted(runners, key=lambda r: (r.pool, r.id))

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

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> CancelBoard:
        """Bind to the bucket (provisioned by `bus.infra.provision`)."""
        return cls(await js.key_value(s.CANCELS_BUCKET))

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

    async def watch(self, ready: Callable[[], None] | None = None) -> AsyncIterator[tuple[str, str]]:
        """Each cancel marked from now on, as (job id, reason); `ready` is called once
        the watch is set up."""
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


async def delete_dispatch(js: JetStreamContext, sequence: int) -> bool:
    """Remove a job message from the dispatch stream, so it can never run late;
    False when it was already gone."""
    try:
        return bool(await js.delete_msg(s.DISPATCH_STREAM, sequence))
    except (NotFoundError, APIError):
        return False


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
