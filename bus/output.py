"""Live job output over JetStream: publishing chunks as they are written, and
reading them back (history, then following until the job ends)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from contracts import subjects as s
from contracts.output import LogChunk

from .watch import RESUME_HEARTBEAT

log = structlog.get_logger("jetjobs.bus")

STALL = 5.0
"""Seconds a chunk may wait for room among unacknowledged publishes before it is dropped."""


class OutputPublisher:
    """Publishes one attempt's output chunks without waiting for each ack: the
    acks are collected at `close()`. Output is best effort (the result event
    carries the captured output too), so a failed chunk is logged, not retried."""

    def __init__(self, js: JetStreamContext, subject: str, msg_prefix: str) -> None:
        self._js = js
        self._subject = subject
        self._prefix = msg_prefix
        self._pending: list[asyncio.Future[Any]] = []
        self.dropped = 0

    async def write(self, chunk: LogChunk) -> None:
        """Send one chunk; returns once it is on the wire, not when it is stored."""
        msg_id = f"{self._prefix}.{chunk.stream}.{chunk.seq}"
        try:
            future = await self._js.publish_async(
                self._subject,
                chunk.model_dump_json().encode(),
                wait_stall=STALL,
                headers={"Nats-Msg-Id": msg_id},
            )
        except Exception as error:
            self._drop(error)
            return
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(future)

    async def close(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout` s) until every chunk sent is stored."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for future in late:
            future.cancel()
        for future in pending:
            if future.cancelled() or future.exception() is not None:
                self._drop(future.exception() if not future.cancelled() else TimeoutError())

    def _drop(self, error: BaseException | None) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.warning("job.output_dropped", subject=self._subject, error=repr(error))


async def _last_sequence(js: JetStreamContext, subject: str) -> int:
    """Stream sequence of the newest message on `subject`, 0 when there is none."""
    try:
        return int((await js.get_last_msg(s.LOGS_STREAM, subject)).seq or 0)
    except NotFoundError:
        return 0


async def oldest_output(js: JetStreamContext) -> datetime:
    """When the oldest chunk the logs stream still holds was stored (now, when it holds
    none): whatever was printed before is gone, whichever job printed it."""
    state = (await js.stream_info(s.LOGS_STREAM)).state
    if state.messages:
        with contextlib.suppress(NotFoundError):
            stored = (await js.get_msg(s.LOGS_STREAM, seq=state.first_seq)).time
            if stored is not None:
                return stored
    return datetime.now(UTC)


async def job_output(
    js: JetStreamContext, company: str, job_id: str, ended: asyncio.Future[Any] | None = None
) -> AsyncIterator[LogChunk]:
    """A job's output chunks from the oldest the logs stream still holds (it drops
    the oldest first, by age and size: a reader tells what is gone by each
    attempt's `seq`, numbered from 0 per stream). Without `ended`, stops at the
    newest chunk stored now; with it, follows until `ended` is done and then
    until the newest chunk stored at that moment. A connection closed meanwhile
    raises nats-py's `ConnectionClosedError`; after an outage it rides out (see
    `watch.following`), reading resumes at the chunk after the last one read."""
    subject = s.logs_subject(company, job_id)
    end = None if ended is not None else await _last_sequence(js, subject)
    seen = 0
    sub = await js.subscribe(
        subject,
        stream=s.LOGS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        idle_heartbeat=RESUME_HEARTBEAT,
    )
    try:
        while True:
            if end is None and ended is not None and ended.done():
                end = await _last_sequence(js, subject)
            if end is not None and seen >= end:
                return
            try:
                msg = await sub.next_msg(timeout=0.2)
            except (NatsTimeout, TimeoutError):
                continue
            seen = int(msg.metadata.sequence.stream)
            with contextlib.suppress(ValidationError):
                yield LogChunk.model_validate_json(msg.data)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
