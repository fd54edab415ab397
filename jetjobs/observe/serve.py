"""Serving a process's telemetry on its metrics port for as long as its services run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from bus.telemetry import Telemetry

from ..settings import Settings
from .http import MetricsServer

STORE_PORT = 9464
SCHEDULER_PORT = 9465
EXECUTOR_PORT = 9466
"""Default ports, so the three services can share a host without configuration."""


def telemetry_for(settings: Settings) -> Telemetry:
    """A fresh registry with the operator's label choice."""
    return Telemetry(company_labels=settings.company_labels)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, default_port: int, telemetry: Telemetry | None = None
) -> AsyncIterator[tuple[Telemetry, MetricsServer | None]]:
    """A telemetry, served on `metrics_port` (or `default_port`) unless the port is 0."""
    telemetry = telemetry or telemetry_for(settings)
    port = default_port if settings.metrics_port is None else settings.metrics_port
    if port == 0:
        yield telemetry, None
        return
    server = MetricsServer(telemetry, settings.metrics_host, port)
    await server.start()
    try:
        yield telemetry, server
    finally:
        await server.stop()
