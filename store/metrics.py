"""The store's Prometheus metrics: what it projected, how fast, and how far behind it is.

Lag is what the store's own durable consumers have not settled (not yet delivered,
or delivered and not yet written), asked from JetStream just before each scrape;
the flow inbox is counted in Postgres then too."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from bus import Bus, Delivery
from bus.overview import consumer_lag
from bus.telemetry import Telemetry
from contracts.messages import DeadLetter, JobEvent, JobMessage
from contracts.retention import PruneCounts

from .flow_queries import FlowQueries
from .projection import Feed

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


Counted = tuple[Counter, str, tuple[tuple[str, str], ...]]
"""A counter, the company, and the counter's other labels."""


class StoreMetrics:
    """Counters of projected messages and gauges of consumer lag."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry
        registry = telemetry.registry
        self._ingested = Counter(
            "jetjobs_store_messages_ingested",
            "messages written to Postgres, by feed (consumer)",
            ["feed"],
            registry=registry,
        )
        self._batch = Histogram(
            "jetjobs_store_batch_seconds",
            "time to write and commit one batch",
            ["feed"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._pending = Gauge(
            "jetjobs_store_pending_messages",
            "messages the store has not yet written, by feed: waiting on its consumer, or delivered "
            "and held until Postgres has them (its lag)",
            ["feed"],
            registry=registry,
        )
        self._dispatched = Counter(
            "jetjobs_store_jobs_dispatched",
            "job messages recorded (scheduled, run now, retried)",
            telemetry.company([]),
            registry=registry,
        )
        self._outcomes = Counter(
            "jetjobs_store_job_outcomes",
            "final outcomes recorded, by status and error kind",
            telemetry.company(["status", "kind"]),
            registry=registry,
        )
        self._inbox = Gauge(
            "jetjobs_store_flow_outcomes",
            "outcomes of flow nodes' jobs in the flow inbox: waiting for their step, or deferred after it failed",
            ["state"],
            registry=registry,
        )
        self._dead = Counter(
            "jetjobs_store_dead_letters",
            "dead letters recorded",
            telemetry.company([]),
            registry=registry,
        )
        self._pruned = Counter(
            "jetjobs_store_pruned_rows",
            "rows of final history removed by retention (background or `jetjobs prune`), by kind",
            ["kind"],
            registry=registry,
        )

    def committed(self, feed: str, batch: Sequence[Delivery[Any]], seconds: float) -> None:
        """One batch is in Postgres: each counter moves once per batch, not once per message."""
        self._ingested.labels(feed).inc(len(batch))
        self._batch.labels(feed).observe(seconds)
        tally = Tally(key for delivery in batch if (key := self._counted(delivery.payload)) is not None)
        for (metric, company, labels), count in tally.items():
            self._t.labelled(metric, company, **dict(labels)).inc(count)

    def pruned(self, counts: PruneCounts) -> None:
        """One batch of retention is committed."""
        for kind, rows in counts:
            if rows:
                self._pruned.labels(kind).inc(rows)

    def _counted(self, payload: Any) -> Counted | None:
        """The counter a stored message moves, with its company and other labels."""
        match payload:
            case JobMessage(company=company):
                return self._dispatched, company, ()
            case JobEvent(final=True, company=company) as event:
                kind = event.kind.value if event.kind else ""
                return self._outcomes, company, (("status", event.status.value), ("kind", kind))
            case DeadLetter(company=company):
                return self._dead, company, ()
        return None

    async def lag(self, bus: Bus | None, feeds: Sequence[Feed[Any]]) -> None:
        """Ask JetStream how many messages each of the store's consumers has not yet settled."""
        if bus is None:
            return
        for feed in feeds:
            self._pending.labels(feed.durable).set(await consumer_lag(bus.js, feed.stream, feed.durable))

    async def inbox(self, pool: Any) -> None:
        """Ask Postgres how many flow outcomes wait, and how many failed their step."""
        if pool is None:
            return
        waiting, deferred = await FlowQueries(pool).inbox_counts()
        self._inbox.labels("waiting").set(waiting)
        self._inbox.labels("deferred").set(deferred)


def instrument(
    telemetry: Telemetry | None,
    bus: Callable[[], Bus | None],
    database: Callable[[], Any],
    feeds: Sequence[Feed[Any]],
) -> StoreMetrics:
    """Register the store's metrics, NATS connection and readiness (NATS and Postgres)."""
    telemetry = telemetry or Telemetry()
    metrics = StoreMetrics(telemetry)
    telemetry.watch_bus("store", bus)
    telemetry.readiness("store.postgres", lambda: _database_ok(database()))
    telemetry.before_scrape(lambda: metrics.lag(bus(), feeds))
    telemetry.before_scrape(lambda: metrics.inbox(database()))
    return metrics


async def _database_ok(pool: Any) -> bool:
    if pool is None:
        return False
    async with pool.acquire(timeout=1.0) as conn:
        return bool(await conn.fetchval("SELECT 1") == 1)
