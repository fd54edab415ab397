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

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from .connection import ConnectionStats
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
class _Connections(Collector):
    """Reports, at scrape time, whether each service's NATS connection is up."""

    sources: dict[str, Callable[[], ConnectionStats | None]] = field(default_factory=dict)

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "jetjobs_nats_connected", "1 while the service's NATS connection is up", labels=["service"]
        )
        reconnects = CounterMetricFamily(
            "jetjobs_nats_reconnects", "times the NATS connection came back", labels=["service"]
        )
        disconnects = CounterMetricFamily(
            "jetjobs_nats_disconnects", "times the NATS connection was lost", labels=["service"]
        )
        for service, source in sorted(self.sources.items()):
            stats = source()
            connected.add_metric([service], 1.0 if stats is not None and stats.connected else 0.0)
            reconnects.add_metric([service], float(stats.reconnects if stats else 0))
            disconnects.add_metric([service], float(stats.disconnects if stats else 0))
        yield from (connected, reconnects, disconnects)


class Telemetry:
    """One process's metrics registry and readiness checks."""

    def __init__(self, *, company_labels: bool = False, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.company_labels = company_labels
        self._checks: dict[str, Check] = {}
        self._refreshes: list[Refresh] = []
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

    def watch_connection(self, service: str, stats: Callable[[], ConnectionStats | None]) -> None:
        """Report the NATS connection `stats()` returns (None while not connected)."""
        self._connections.sources[service] = stats

    def watch_bus(self, service: str, bus: Callable[[], Bus | None]) -> None:
        """Report the connection of the bus `bus()` returns, and be ready only while it is up."""
        self.watch_connection(service, lambda: _stats(bus()))
        self.readiness(f"{service}.nats", lambda: _connected(bus()))

    def readiness(self, name: str, check: Check) -> None:
        """Add a check `/readyz` runs; the process is ready when all pass."""
        self._checks[name] = check

    def before_scrape(self, refresh: Refresh) -> None:
        """Run `refresh` before each scrape, to update gauges that need a round trip."""
        self._refreshes.append(refresh)

    async def ready(self) -> dict[str, bool]:
        """The result of every readiness check (a check that fails or hangs is False)."""
        names = list(self._checks)
        results = await asyncio.gather(*(_bounded(self._checks[n]()) for n in names))
        return dict(zip(names, results, strict=True))

    async def refresh(self) -> None:
        """Bring scrape-time gauges up to date; a failed refresh leaves old values."""
        await asyncio.gather(*(_bounded(r()) for r in self._refreshes))


async def _bounded(work: Awaitable[Any]) -> bool:
    try:
        result = await asyncio.wait_for(work, CHECK_TIMEOUT)
    except Exception:
        return False
    return result is not False


def _stats(bus: Bus | None) -> ConnectionStats | None:
    return bus.stats if bus is not None else None


async def _connected(bus: Bus | None) -> bool:
    return bus is not None and bus.stats.connected
