"""The store's Prometheus metrics: what it projected, how fast, and how far behind it is.

Lag is what the store's own durable consumers have not settled (not yet delivered,
or delivered and not yet written), and the pools' queues what no executor has
taken yet, both asked from JetStream just before each scrape; the flow inbox is
counted in Postgres then too. The job counters count what a batch added to the
record, so a redelivered or repeated message counts once."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from bus import Bus
from bus.overview import pool_depths, store_lag
from bus.telemetry import Telemetry
from contracts.enums import ErrorKind, Status
from contracts.retention import PruneCounts

from .flow_queries import FlowQueries
from .lifecycle import Outcome
from .projection import Feed
from .recorded import PerCompany, Recorded

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class StoreMetrics:
    """Counters of projected messages, gauges of consumer lag and of the pools' queues."""

    def __init__(self, telemetry: Telemetry, feeds: Iterable[str] = ()) -> None:
        self._t = telemetry
        self._pools: set[str] = set()
        registry = telemetry.registry
        self._ingested = Counter(
            "jetjobs_store_messages_ingested",
            "messages written to Postgres, by feed (consumer): every delivery, redeliveries included",
            ["feed"],
            registry=registry,
        )
        self._clock_offset = Gauge(
            "jetjobs_store_clock_offset_seconds",
            "how far this host's clock is ahead of the NATS server's (negative: behind), "
            "as last measured from a job message it dispatched",
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
            "messages the store has not yet taken in, by feed (its durable consumers, as `jetjobs status` "
            "shows them): waiting on the consumer, or delivered and held until Postgres has them (its lag)",
            ["feed"],
            registry=registry,
        )
        self._dispatched = Counter(
            "jetjobs_store_jobs_dispatched",
            "jobs recorded, once each (scheduled, run now, backfilled, flow nodes): a retry or a replay "
            "of a job is not counted again; per attempt, see jetjobs_executor_jobs_acknowledged",
            telemetry.company([]),
            registry=registry,
        )
        self._outcomes = Counter(
            "jetjobs_store_job_outcomes",
            "jobs' final outcomes recorded (the attempt that ended the job), by status and error kind, "
            "each once however often its event was delivered (company `unknown` for a company the store "
            "does not have)",
            telemetry.company(["status", "kind"]),
            registry=registry,
        )
        self._attempts = Counter(
            "jetjobs_store_attempt_outcomes",
            "outcomes of every attempt recorded, by status and error kind, each once however often its "
            "event was delivered: also those a retry or a redelivery follows, such as an attempt whose "
            "executor was lost (company `unknown` for a company the store does not have)",
            telemetry.company(["status", "kind"]),
            registry=registry,
        )
        self._companies: frozenset[str] = frozenset()
        self._inbox = Gauge(
            "jetjobs_store_flow_outcomes",
            "outcomes of flow nodes' jobs in the flow inbox: waiting for their step, or deferred after it failed",
            ["state"],
            registry=registry,
        )
        self._dead = Counter(
            "jetjobs_store_dead_letters",
            "dead letters recorded, each once (company `unknown` for a company the store does not have)",
            telemetry.company([]),
            registry=registry,
        )
        self._pruned = Counter(
            "jetjobs_store_pruned_rows",
            "rows of final history removed by retention (background or `jetjobs prune`), by kind",
            ["kind"],
            registry=registry,
        )
        self._of_pruned = Counter(
            "jetjobs_store_pruned_job_messages",
            "late messages (events, job messages) of jobs retention had removed, dropped instead of "
            "recording the job again, by feed",
            ["feed"],
            registry=registry,
        )
        self._waiting = Gauge(
            "jetjobs_pool_waiting_jobs",
            "job messages in a pool's queue that no executor has taken yet (a company's own consumer "
            "shows as pool <pool>__<company>, as in `jetjobs status`)",
            ["pool"],
            registry=registry,
        )
        self._in_flight = Gauge(
            "jetjobs_pool_in_flight_jobs",
            "job messages of a pool's queue that an executor holds (running, or waiting for a retry)",
            ["pool"],
            registry=registry,
        )
        self._known(feeds)

    def _known(self, feeds: Iterable[str]) -> None:
        """Every series whose labels are known up front, at 0: a panel reads 0 after a
        restart, not "No data"."""
        for feed in feeds:
            self._ingested.labels(feed)
            self._batch.labels(feed)
        if not self._t.company_labels:
            for counter in (self._outcomes, self._attempts):
                counter.labels(Status.PROCESSED.value, "")
                for kind in ErrorKind:
                    counter.labels(Status.ERROR.value, kind.value)

    def committed(self, feed: str, written: int, recorded: Recorded, seconds: float) -> None:
        """One batch is in Postgres: each counter moves once per batch, not once per message."""
        self._ingested.labels(feed).inc(written)
        self._batch.labels(feed).observe(seconds)
        self._per_company(self._dispatched, recorded.jobs)
        if recorded.of_pruned_jobs:
            self._of_pruned.labels(feed).inc(recorded.of_pruned_jobs)
        self._per_company(self._dead, recorded.dead_letters)
        if recorded.outcomes:
            self._count_outcomes(recorded.outcomes)

    def _count_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        """Every attempt's outcome, and those that ended their job once more as the job's."""
        tally = Tally(
            (self._known_company(o.company), o.status.value, o.kind.value if o.kind else "", o.job_ended)
            for o in outcomes
        )
        for (company, status, kind, job_ended), count in tally.items():
            self._t.labelled(self._attempts, company, status=status, kind=kind).inc(count)
            if job_ended:
                self._t.labelled(self._outcomes, company, status=status, kind=kind).inc(count)

    def _known_company(self, code: str) -> str:
        """`code`, or `unknown` for a company the store does not have: an event names
        whatever company its publisher wrote, and each made-up one would be a series."""
        if not self._t.company_labels or code in self._companies:
            return code
        return "unknown"

    def clock_offset(self, seconds: float) -> None:
        """This host's clock against the NATS server's, as `bus.clock` measured it."""
        self._clock_offset.set(seconds)

    def company_created(self, code: str) -> None:
        """A company this store just created: its outcomes count under its code at once."""
        self._companies |= {code}

    async def companies(self, pool: Any) -> None:
        """Load the codes of the store's companies (only when outcomes are labelled by
        company): at start, and before each scrape, for one another store created.
        Companies are never removed, so a load adds to what `company_created` added."""
        if pool is None or not self._t.company_labels:
            return
        self._companies |= {row["code"] for row in await pool.fetch("SELECT code FROM company")}

    def _per_company(self, counter: Counter, counts: PerCompany) -> None:
        for company, count in counts:
            self._t.labelled(counter, company).inc(count)

    def pruned(self, counts: PruneCounts) -> None:
        """One batch of retention is committed."""
        for kind, rows in counts:
            if rows:
                self._pruned.labels(kind).inc(rows)

    async def lag(self, bus: Bus | None) -> None:
        """Ask JetStream how many messages each of the store's consumers has not yet settled."""
        if bus is None:
            return
        for durable, pending in (await store_lag(bus.js)).items():
            self._pending.labels(durable).set(pending)

    async def pools(self, bus: Bus | None) -> None:
        """Ask JetStream how deep each pool's queue is; a pool whose consumer is gone goes too."""
        if bus is None:
            return
        depths = await pool_depths(bus.js)
        shown = {d.pool for d in depths}
        for pool in self._pools - shown:
            self._waiting.remove(pool)
            self._in_flight.remove(pool)
        self._pools = shown
        for depth in depths:
            self._waiting.labels(depth.pool).set(depth.waiting)
            self._in_flight.labels(depth.pool).set(depth.in_flight)

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
    metrics = StoreMetrics(telemetry, [feed.durable for feed in feeds])
    telemetry.watch_bus("store", bus)
    telemetry.readiness("store.postgres", lambda: _database_ok(database()))
    telemetry.before_scrape(lambda: metrics.lag(bus()), metrics._pending)
    telemetry.before_scrape(lambda: metrics.pools(bus()), metrics._waiting, metrics._in_flight)
    telemetry.before_scrape(lambda: metrics.inbox(database()), metrics._inbox)
    telemetry.before_scrape(lambda: metrics.companies(database()))
    return metrics


async def _database_ok(pool: Any) -> bool:
    if pool is None:
        return False
    async with pool.acquire(timeout=1.0) as conn:
        return bool(await conn.fetchval("SELECT 1") == 1)
