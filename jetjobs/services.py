"""Running long-lived services until the process is told to stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import Protocol

from bus import Layout
from executor import ExecutorConfig, ExecutorService
from scheduler import SchedulerConfig, SchedulerService
from store import StoreConfig, StoreService

from .settings import Settings


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def layout_for(settings: Settings) -> Layout:
    """The bus layout an operator configured (stream replicas)."""
    return Layout(replicas=settings.replicas)


def store(settings: Settings) -> StoreService:
    config = StoreConfig(nats_url=settings.require_nats(), database_url=settings.require_database())
    return StoreService(config, layout_for(settings))


def scheduler(settings: Settings) -> SchedulerService:
    return SchedulerService(SchedulerConfig(nats_url=settings.require_nats()), layout_for(settings))


def executor(settings: Settings) -> ExecutorService:
    config = ExecutorConfig(nats_url=settings.require_nats(), pool=settings.pool, slots=settings.slots)
    return ExecutorService(config, layout_for(settings))


async def until_signalled() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C, systemd stop, docker stop)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def start_all(services: Sequence[Service]) -> list[Service]:
    """Start in order; if one fails, stop the ones already running and re-raise."""
    started: list[Service] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
    except BaseException:
        await stop_all(started)
        raise
    return started


async def stop_all(services: Sequence[Service]) -> None:
    """Stop in reverse order of start."""
    for service in reversed(services):
        await service.stop()


async def run(services: Sequence[Service]) -> None:
    """Start the services, run until signalled, stop them cleanly."""
    started = await start_all(services)
    try:
        await until_signalled()
    finally:
        await stop_all(started)
