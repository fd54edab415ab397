"""Following lifecycle events as a client: history first, then live, riding out a
short NATS outage."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

from nats.aio.client import Client
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from contracts import subjects as s
from contracts.messages import JobEvent

from .connection import BusUnavailable, redacted

FOLLOW_PATIENCE = 30.0
"""Seconds a follower's connection keeps trying to get NATS back before it gives up:
a restart of nats-server is ridden out (JetStream keeps the streams, and followers
resume where they were), a server that stays away ends the command."""

RESUME_HEARTBEAT = 1.0
"""Seconds between the idle heartbeats of a follower's ordered consumer. The consumer
lives in the server's memory, so a restarted server has lost it; nats-py re-creates
it, from the message after the last one seen, once two heartbeats are missed: with
this, about 2 s after NATS is back instead of 10-20 s with its default of 5 s."""


@contextlib.contextmanager
def following(nc: Client, patience: float = FOLLOW_PATIENCE) -> Iterator[None]:
    """Follow on `nc` (a command's connection, which gives NATS up at once) for as long
    as it takes: an outage of up to about `patience` seconds is ridden out; a longer
    one ends the block with one clear `BusUnavailable` instead of nats-py's error."""
    servers = [nc.connected_url] if nc.connected_url is not None else nc.servers
    url = redacted(",".join(server.geturl() for server in servers))
    wait = max(float(nc.options["reconnect_time_wait"]), 0.1)
    nc.options["max_reconnect_attempts"] = max(1, math.ceil(patience / wait))
    try:
        yield
    except (NatsError, TimeoutError):
        if not nc.is_closed:
            raise
        raise BusUnavailable(
            f"lost NATS at {url}: it did not come back within {patience:g} s; "
            "run the command again once NATS is back"
        ) from None


async def _decoded(sub: Any) -> AsyncIterator[JobEvent]:
    """The valid events of a subscription (others skipped), unsubscribing when the
    caller stops. Its messages end by themselves only when the connection closes: that
    is raised (as nats-py's `next_msg` does), not passed off as the end of the events."""
    try:
        async for msg in sub.messages:
            try:
                event = JobEvent.model_validate_json(msg.data)
            except ValidationError:
                continue
            yield event
    finally:
        with contextlib.suppress(NatsError):  # a closed connection has nothing left to remove
            await sub.unsubscribe()
    raise ConnectionClosedError


async def job_events(js: JetStreamContext, subject: str) -> AsyncIterator[JobEvent]:
    """Every event on `subject` (e.g. one job's), from the stream's start, as it
    arrives. Uses one short-lived ordered consumer, removed when iteration ends, that
    resumes where it was after NATS comes back (see `RESUME_HEARTBEAT`)."""
    sub = await js.subscribe(
        subject,
        stream=s.EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        idle_heartbeat=RESUME_HEARTBEAT,
    )
    async for event in _decoded(sub):
        yield event


async def live_events(nc: Client, subject: str) -> AsyncIterator[JobEvent]:
    """Events on `subject` from now on (no history), over a plain subscription, which
    the client subscribes again after NATS comes back."""
    async for event in _decoded(await nc.subscribe(subject)):
        yield event
