"""Test helpers for the observability tests: a stack sharing one telemetry served
over HTTP, and a scraper that reads the Prometheus text back."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bus import ApiClient, Bus, Layout
from bus.telemetry import Telemetry
from executor import ExecutorConfig, ExecutorService
from jetjobs.observe.http import MetricsServer
from scheduler import SchedulerConfig, SchedulerService
from scheduler.metrics import SchedulerMetrics
from store import StoreConfig, StoreService
from tests.stack import Stack


@dataclass
class Scrape:
    """One scrape: every sample by (name, sorted labels)."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode()


async def http_get(url: str) -> tuple[int, str]:
    """GET without blocking the loop the services run on."""
    return await asyncio.to_thread(_get, url)


async def scrape(base_url: str) -> Scrape:
    status, text = await http_get(f"{base_url}/metrics")
    assert status == 200, text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return Scrape(samples)


@asynccontextmanager
async def observed_stack(
    nats_url: str, database_url: str, *, slots: int = 4, **telemetry: Any
) -> AsyncIterator[tuple[Stack, MetricsServer]]:
    """Store, executor and scheduler sharing one telemetry served on a free port."""
    shared = Telemetry(**telemetry)
    server = MetricsServer(shared, "127.0.0.1", 0)
    await server.start()
    services: list[Any] = [
        StoreService(StoreConfig(nats_url=nats_url, database_url=database_url), Layout(), shared),
        ExecutorService(ExecutorConfig(nats_url=nats_url, slots=slots), Layout(), shared),
        SchedulerService(SchedulerConfig(nats_url=nats_url), Layout(), SchedulerMetrics(shared.registry)),
    ]
    shared.watch_bus("scheduler", lambda: services[2]._bus)
    started: list[Any] = []
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        for service in services:
            await service.start()
            started.append(service)
        yield Stack(nats_url, database_url, ApiClient(bus.nc), bus, started), server
    finally:
        for service in reversed(started):
            await service.stop()
        await bus.nc.close()
        await server.stop()
