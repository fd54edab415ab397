"""The executor's Prometheus metrics: what it took, ran and how it ended.

Labels are bounded: pool, status and error kind; the company only when the
operator turned company labels on. That company is the one a job message names:
the executor does not know the store's companies, so NATS permissions, which
confine who may publish for a company, are what bound it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from bus import Bus
from bus.telemetry import Telemetry
from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent, JobMessage

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)


class ExecutorMetrics:
    """Counters and histograms of one executor, registered in its telemetry."""

    def __init__(self, telemetry: Telemetry, pool: str) -> None:
        self._t = telemetry
        self._pool = pool
        self._children: dict[tuple[str, ...], Any] = {}
        registry, company = telemetry.registry, telemetry.company
        self._acknowledged = Counter(
            "jetjobs_executor_jobs_acknowledged",
            "job attempts this executor took",
            company(["pool"]),
            registry=registry,
        )
        self._started = Counter(
            "jetjobs_executor_jobs_started",
            "job processes started",
            company(["pool"]),
            registry=registry,
        )
        self._finished = Counter(
            "jetjobs_executor_jobs_finished",
            "job attempts ended, by status (processed, error) and error kind",
            company(["pool", "status", "kind"]),
            registry=registry,
        )
        self._retries = Counter(
            "jetjobs_executor_job_retries",
            "failed attempts that will be retried",
            company(["pool"]),
            registry=registry,
        )
        self._escaped = Counter(
            "jetjobs_executor_escaped_killed",
            "processes a finished job left running, killed before its working directory served "
            "again, by how they were found (workdir: working in it, session: in the job's session)",
            ["pool", "found"],
            registry=registry,
        )
        self._lag = Histogram(
            "jetjobs_executor_dispatch_lag_seconds",
            "how long a job message waited to be taken: from its dispatch (dispatched_at) to its "
            "acknowledgement on first delivery; retries and redeliveries are not measured",
            ["pool"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._run = Histogram(
            "jetjobs_executor_job_run_seconds",
            "run time of job processes",
            ["pool"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        for found in ("workdir", "session"):
            self._escaped.labels(pool, found)
        self._lag_child = self._lag.labels(pool)
        self._run_child = self._run.labels(pool)
        if not telemetry.company_labels:
            self._known(pool)
        self._gauges = {
            name: Gauge(name, text, ["pool"], registry=registry)
            for name, text in (
                ("jetjobs_executor_running_jobs", "jobs running on this executor now"),
                ("jetjobs_executor_slots", "jobs this executor may run at once"),
                ("jetjobs_executor_free_slots", "slots free for more jobs"),
                (
                    "jetjobs_executor_clock_offset_seconds",
                    "how far this host's clock is ahead of the NATS server's (negative: behind), "
                    "as last measured from a heartbeat",
                ),
            )
        }

    def _known(self, pool: str) -> None:
        """Every series whose labels are known up front, at 0: a panel reads 0 after a
        restart, not "No data"."""
        for counter in (self._acknowledged, self._started, self._retries):
            counter.labels(pool)
        self._finished.labels(pool, Status.PROCESSED.value, "")
        for kind in ErrorKind:
            self._finished.labels(pool, Status.ERROR.value, kind.value)

    def occupancy(self, slots: int, running: Callable[[], int]) -> None:
        """Report running jobs and free slots from `running()` at scrape time."""
        self._gauges["jetjobs_executor_slots"].labels(self._pool).set(slots)
        self._gauges["jetjobs_executor_running_jobs"].labels(self._pool).set_function(lambda: running())
        self._gauges["jetjobs_executor_free_slots"].labels(self._pool).set_function(
            lambda: max(slots - running(), 0)
        )

    def _child(self, name: str, metric: Any, company: str, **labels: str) -> Any:
        """The labelled child, looked up once per label set (`labels()` takes a lock)."""
        key = (name, company, *labels.values())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._t.labelled(metric, company, pool=self._pool, **labels)
        return child

    def acknowledged(self, message: JobMessage, at: datetime, delivered: int) -> None:
        """An attempt was taken. Only a message's first delivery measures dispatch lag:
        JetStream does not say when a redelivery (a retry after its backoff, a hand-back,
        a lost executor's job) became due, and from dispatch it would count the backoff
        and the earlier attempts' run time."""
        self._child("acknowledged", self._acknowledged, message.company).inc()
        if delivered == 1:
            self._lag_child.observe(max((at - message.dispatched_at).total_seconds(), 0.0))

    def started(self, message: JobMessage) -> None:
        """A process started."""
        self._child("started", self._started, message.company).inc()

    def finished(self, event: JobEvent) -> None:
        """An attempt ended: count its outcome, run time and any retry to come."""
        kind = event.kind.value if event.kind else ""
        self._child("finished", self._finished, event.company, status=event.status.value, kind=kind).inc()
        if event.begin is not None and event.end is not None:
            self._run_child.observe(max((event.end - event.begin).total_seconds(), 0.0))
        if event.retry_in is not None and not event.final:
            self._child("retries", self._retries, event.company).inc()

    def clock_offset(self, seconds: float) -> None:
        """This host's clock against the NATS server's, as `bus.clock` measured it."""
        self._gauges["jetjobs_executor_clock_offset_seconds"].labels(self._pool).set(seconds)

    def escaped_killed(self, found: str) -> None:
        """A process a job left running was killed; `found` says how it was told the job's."""
        self._escaped.labels(self._pool, found).inc()


def unobserved() -> ExecutorMetrics:
    """Metrics nobody scrapes, for a runtime built without telemetry."""
    return ExecutorMetrics(Telemetry(), "default")


def instrument(
    telemetry: Telemetry | None,
    pool: str,
    slots: int,
    bus: Callable[[], Bus | None],
    running: Callable[[], int],
) -> ExecutorMetrics:
    """Register an executor's metrics, NATS connection and readiness (connected to NATS)."""
    telemetry = telemetry or Telemetry()
    metrics = ExecutorMetrics(telemetry, pool)
    metrics.occupancy(slots, running)
    telemetry.watch_bus(f"executor-{pool}", bus)
    return metrics
