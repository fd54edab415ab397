"""Running long-lived services until the process is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Sequence
from typing import Protocol

import structlog

from bus import Layout
from bus.tasks import stop_tasks
from bus.telemetry import Telemetry
from executor import ExecutorConfig, ExecutorService
from executor.config import ExecutorConfigError
from scheduler import SchedulerConfig, SchedulerService
from scheduler.metrics import SchedulerMetrics
from store import StoreConfig, StoreService
from store.credentials import Keyring, SecretKeyError
from store.retention import Retention, RetentionError

from . import heap
from .settings import Settings, SettingsError

log = structlog.get_logger("jetjobs")


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def layout_for(settings: Settings) -> Layout:
    """The bus layout an operator configured (stream replicas)."""
    return Layout(replicas=settings.replicas, ack_wait=settings.ack_wait)


def store_keyring(settings: Settings) -> Keyring | None:
    """The store's credential keys, or a settings error naming the bad one."""
    try:
        return Keyring.load(settings.secret_key, settings.secret_key_file)
    except SecretKeyError as error:
        raise SettingsError(str(error)) from None


def store_retention(settings: Settings) -> Retention:
    """How long the store keeps history, or a settings error naming the bad value."""
    try:
        return Retention(days=settings.retention_days, audit_days=settings.audit_retention_days)
    except RetentionError as error:
        raise SettingsError(str(error)) from None


def store(settings: Settings, telemetry: Telemetry | None = None) -> StoreService:
    config = StoreConfig(
        nats_url=settings.require_nats(),
        database_url=settings.require_database(),
        keyring=store_keyring(settings),
        require_tokens=settings.require_tokens,
        retention=store_retention(settings),
    )
    return StoreService(config, layout_for(settings), telemetry)


def scheduler(settings: Settings, telemetry: Telemetry | None = None) -> SchedulerService:
    config = SchedulerConfig(nats_url=settings.require_nats())
    if telemetry is None:
        return SchedulerService(config, layout_for(settings))
    service = SchedulerService(config, layout_for(settings), SchedulerMetrics(telemetry.registry))
    telemetry.watch_bus("scheduler", lambda: service.bus)
    return service


def executor(settings: Settings, telemetry: Telemetry | None = None) -> ExecutorService:
    try:
        config = ExecutorConfig(
            nats_url=settings.require_nats(),
            pool=settings.pool,
            slots=settings.slots,
            memory_limit_mb=settings.memory_limit_mb or None,
            actor=settings.executor_actor,
            runner=settings.runner,  # type: ignore[arg-type]  # checked by ExecutorConfig
            container_engine=settings.container_engine,
            company=settings.executor_company,
            bind_only=settings.bind_only,
            api_token=settings.api_token,
            live_output_limit=settings.live_output_mb * 1024 * 1024,
        )
    except ExecutorConfigError as error:
        raise SettingsError(str(error)) from None
    return ExecutorService(config, layout_for(settings), telemetry)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, systemd or docker stop, the terminal closed: each asks for an orderly stop."""


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by a stop signal from here to the end of the block: enter it
    before telling anyone the system is up, so no signal finds it unprepared."""
    loop = asyncio.get_running_loop()
    caught = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, caught.set)
    try:
        yield caught
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def until_set(*events: asyncio.Event) -> None:
    """Return once one of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def until_signalled(*exits: asyncio.Event) -> None:
    """Return on a stop signal, or when one of `exits` is set (a service that decided
    to stop, e.g. at its memory ceiling)."""
    with stop_signals() as caught:
        await until_set(caught, *exits)


async def start_all(services: Sequence[Service]) -> list[Service]:
    """Start in order; if one fails, stop the ones already running and re-raise.
    Once all run, the collector is set for a long-lived process (`heap.settle`)."""
    started: list[Service] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
    except BaseException:
        await stop_all(started)
        raise
    heap.settle()
    return started


async def stop_all(services: Sequence[Service], hurry_on: asyncio.Event | None = None) -> None:
    """Stop in reverse order of start; one that fails to stop is logged and does not
    keep the others running. With `hurry_on` (the stop signals' event), another stop
    signal meanwhile hurries them: an executor hands its running jobs back at once
    instead of waiting for them, and the process stays to see that through."""
    hurrying = None
    if hurry_on is not None:
        hurry_on.clear()
        hurrying = asyncio.create_task(_hurry_when(hurry_on, services))
    try:
        for service in reversed(services):
            try:
                await service.stop()
            except Exception:
                log.exception("service.stop_failed", service=type(service).__name__)
    finally:
        if hurrying is not None:
            await stop_tasks([hurrying])


async def _hurry_when(again: asyncio.Event, services: Sequence[Service]) -> None:
    await again.wait()
    log.warning("service.hurried", reason="stop signal while stopping: running jobs are handed back now")
    for service in services:
        hurry = getattr(service, "hurry", None)
        if callable(hurry):
            hurry()


def exhaustion(service: Service) -> asyncio.Event | None:
    """The event a service sets when it stops by itself (an executor at its memory limit)."""
    event = getattr(service, "exhausted", None)
    return event if isinstance(event, asyncio.Event) else None


async def run(services: Sequence[Service]) -> bool:
    """Start the services, run until signalled or one stops by itself, stop them
    cleanly; True when one stopped by itself, for the process to exit as failed."""
    with stop_signals() as caught:  # from the start: a signal while starting stops once started
        started = await start_all(services)
        exits = [e for s in started if (e := exhaustion(s)) is not None]
        try:
            await until_set(caught, *exits)
        finally:
            await stop_all(started, hurry_on=caught)
    return any(e.is_set() for e in exits)
