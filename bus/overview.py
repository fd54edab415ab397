"""What `jetjobs status` reads straight from JetStream: queues, lag, leader, runners."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from contracts import subjects as s
from contracts.flows import FLOWS_STREAM
from contracts.lifecycle import RunnerInfo

from .boards import RunnerBoard
from .flows import FLOW_STARTS_CONSUMER

STORE_CONSUMERS = (
    (s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER),
    (s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER),
    (s.DEAD_STREAM, s.STORE_DEAD_CONSUMER),
    (s.SLOTS_STREAM, s.STORE_SLOTS_CONSUMER),
    (FLOWS_STREAM, FLOW_STARTS_CONSUMER),
)
"""Every durable consumer of the store: its lag in `jetjobs status` and in its metrics."""


@dataclass(frozen=True)
class PoolDepth:
    """A pool's queue: messages no executor has taken yet, and those being worked on."""

    pool: str
    waiting: int
    in_flight: int


async def pool_depths(js: JetStreamContext) -> list[PoolDepth]:
    """Every executor pool's queue depth, from its shared consumer."""
    prefix = s.pool_consumer("")
    depths = [
        PoolDepth(info.name[len(prefix) :], int(info.num_pending or 0), int(info.num_ack_pending or 0))
        for info in await js.consumers_info(s.DISPATCH_STREAM)
        if info.name.startswith(prefix)
    ]
    return sorted(depths, key=lambda d: d.pool)


async def consumer_lag(js: JetStreamContext, stream: str, durable: str) -> int:
    """Messages a durable consumer has not settled: not yet delivered, or delivered and
    not yet acknowledged (the store holds a batch unacknowledged until Postgres has it)."""
    info = await js.consumer_info(stream, durable)
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def store_lag(js: JetStreamContext) -> dict[str, int]:
    """Messages each store consumer has not written yet (missing consumers left out)."""
    lag: dict[str, int] = {}
    for stream, durable in STORE_CONSUMERS:
        try:
            lag[durable] = await consumer_lag(js, stream, durable)
        except NotFoundError:
            continue
    return lag


async def scheduler_leader(js: JetStreamContext) -> str | None:
    """The holder of the scheduler lease, None when no scheduler leads."""
    try:
        kv = await js.key_value(s.LEASES_BUCKET)
        entry = await kv.get(s.SCHEDULER_LEASE_KEY)
    except (NotFoundError, APIError):
        return None
    return entry.value.decode(errors="replace") if entry.value else None


async def live_runners(js: JetStreamContext) -> list[RunnerInfo]:
    """Executors whose heartbeat is current."""
    try:
        board = await RunnerBoard.open(js)
    except (NotFoundError, APIError):
        return []
    return await board.live()
