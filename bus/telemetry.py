"""What a process tells Prometheus and its probes: one registry, readiness checks,
and the state of every NATS connection the services in it hold.

A `Telemetry` is made by whoever starts the services (one per process, or one
per service in tests) and handed to each service, which registers its own metrics
in it; nothing is global, so two services of a kind can share a process."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypeVar

from nats.aio.client import Client
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from .connection import ConnectionStats, answering
from .session import Bus

W = TypeVar("W", bound=MetricWrapperBase)

Check = Callable[[], Awaitable[bool]]
"""A readiness check: True when the dependency it names is usable."""

Refresh = Callable[[], Awaitable[None]]
"""Work done just before a scrape (e.g. asking JetStream for consumer lag)."""

CHECK_TIMEOUT = 2.0
"""Seconds a readiness check or refresh may take before it counts as failed."""


def version() -> str:
    """The installed jetjobs version, for build info and the API service."""
    try:
        return metadata.version("jetjobs")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(eq=False)
class _Bounded:
    """A check or refresh run once at a time and waited for at most CHECK_TIMEOUT from
    its start, never cancelled: cancelling can hang in turn (asyncpg first cancels the
    query on its server), and a second run beside a stuck one would only pile up."""

    work: Callable[[], Awaitable[Any]]
    ok: bool = True
    """The outcome of the latest run: False when it failed, or still runs past its bound."""
    _task: asyncio.Task[Any] | None = None
    _started: float = 0.0

    async def run(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(_call(self.work))
            self._task.add_done_callback(_settle)
            self._started = loop.time()
        task = self._task
        left = self._started + CHECK_TIMEOUT - loop.time()
        if left > 0:
            await asyncio.wait({task}, timeout=left)
        self.ok = (
            task.done() and not task.cancelled() and task.exception() is None and task.result() is not False
        )
        return self.ok


async def _call(work: Callable[[], Awaitable[Any]]) -> Any:
    return await work()


def _settle(task: asyncio.Task[Any]) -> None:
    """Retrieve the outcome of a run that nobody waits for any more."""
    if not task.cancelled():
        task.exception()


@dataclass(eq=False)
class _Connections(Collector):
    """Reports, at scrape time, whether each service's NATS connection is up: connected,
    and its server answered the ping of this scrape."""

    sources: dict[str, tuple[Callable[[], ConnectionStats | None], _Bounded]] = field(default_factory=dict)

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "jetjobs_nats_connected",
            "1 while the service's NATS connection is up and its server answers",
            labels=["service"],
        )
        reconnects = CounterMetricFamily(
            "jetjobs_nats_reconnects", "times the NATS connection came back", labels=["service"]
        )
        disconnects = CounterMetricFamily(
            "jetjobs_nats_disconnects", "times the NATS connection was lost", labels=["service"]
        )
        for service, (source, ping) in sorted(self.sources.items()):
            stats = source()
            up = stats is not None and stats.connected and ping.ok
            connected.add_metric([service], 1.0 if up else 0.0)
            reconnects.add_metric([service], float(stats.reconnects if stats else 0))
            disconnects.add_metric([service], float(stats.disconnects if stats else 0))
        yield from (connected, reconnects, disconnects)


@dataclass(eq=False)
class _Leaving(Collector):
    """A registry's metrics without the families named in `stale`."""

    registry: CollectorRegistry
    stale: frozenset[str]

    def collect(self) -> Iterator[Metric]:
        return (family for family in self.registry.collect() if family.name not in self.stale)


class Telemetry:
    """One process's metrics registry and readiness checks."""

    def __init__(self, *, company_labels: bool = False, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.company_labels = company_labels
        self._checks: dict[str, _Bounded] = {}
        self._refreshes: list[tuple[_Bounded, frozenset[str]]] = []
        self._connections = _Connections()
        self.registry.register(self._connections)
        build = Gauge(
            "jetjobs_build_info",
            "jetjobs version and Python running it (always 1)",
            ["version", "python"],
            registry=self.registry,
        )
        build.labels(version(), platform.python_version()).set(1)

    def company(self, names: list[str]) -> list[str]:
        """Label names, with `company` added only when the operator turned it on."""
        return [*names, "company"] if self.company_labels else names

    def values(self, company: str, **labels: str) -> dict[str, str]:
        """Label values matching `company(...)`."""
        return {**labels, "company": company} if self.company_labels else labels

    def labelled(self, metric: W, company: str, **labels: str) -> W:
        """The child of `metric` for these labels (and the company, when turned on)."""
        values = self.values(company, **labels)
        return metric.labels(**values) if values else metric

    def watch_bus(self, service: str, bus: Callable[[], Bus | None]) -> None:
        """Report the connection of the bus `bus()` returns, and be ready only while its
        server answers a ping (checked on each probe and scrape)."""
        ping = _Bounded(lambda: answering(_client(bus())))
        self._connections.sources[service] = (lambda: _stats(bus()), ping)
        self._checks[f"{service}.nats"] = ping
        self._refreshes.append((ping, frozenset()))

    def readiness(self, name: str, check: Check) -> None:
        """Add a check `/readyz` runs; the process is ready when all pass."""
        self._checks[name] = _Bounded(check)

    def before_scrape(self, refresh: Refresh, *metrics: MetricWrapperBase) -> None:
        """Run `refresh` before each scrape, to update `metrics`, gauges that need a round
        trip. A scrape it fails or outlasts `CHECK_TIMEOUT` for leaves `metrics` out, so an
        old value is never taken for a fresh one (a stale 0 would hide a growing lag)."""
        names = frozenset(family.name for metric in metrics for family in metric.describe())
        self._refreshes.append((_Bounded(refresh), names))

    async def ready(self) -> dict[str, bool]:
        """The result of every readiness check (a check that fails or hangs is False)."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._checks[n].run() for n in names))
        return dict(zip(names, results, strict=True))

    async def scrape(self) -> bytes:
        """The metrics in Prometheus' text format, after bringing scrape-time gauges up to
        date; within about `CHECK_TIMEOUT` whatever hangs."""
        results = await asyncio.gather(*(refresh.run() for refresh, _ in self._refreshes))
        stale = frozenset().union(
            *(names for (_, names), ok in zip(self._refreshes, results, strict=True) if not ok)
        )
        return generate_latest(_Leaving(self.registry, stale))


def _stats(bus: Bus | None) -> ConnectionStats | None:
    return bus.stats if bus is not None else None


def _client(bus: Bus | None) -> Client | None:
    return bus.nc if bus is not None else None
