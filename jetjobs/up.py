"""`jetjobs up`: real servers from the wheels, the three services, optionally a demo."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from bus import ApiClient, Bus
from executor import ExecutorService
from executor.config import ExecutorConfig

from . import demo, heap, logs, services
from .embedded import NatsServer, PostgresServer, free_port
from .errors import EmbeddedError
from .home import home_key, lock_home
from .observe.serve import STORE_PORT, serving
from .settings import ENDPOINTS_FILE, Settings, SettingsError, make_folder

log = structlog.get_logger("jetjobs")

LOG_FILE = "jetjobs.log"

PREFERRED_NATS_PORT = 14222
PREFERRED_PG_PORT = 15432
DATABASE = "jetjobs"
SERVER_CHECK_INTERVAL = 0.5
"""Seconds between looks at whether the servers `up` started still run."""


@dataclass
class Servers:
    """The embedded servers this `up` started (None where a URL was configured)."""

    nats: NatsServer | None = None
    postgres: PostgresServer | None = None

    def stop(self) -> None:
        for server in (self.nats, self.postgres):
            if server is not None:
                server.stop()

    def exited(self) -> str | None:
        """Which server ended by itself, how, and where it said why; None while both run."""
        for name, server in (("nats-server", self.nats), ("PostgreSQL", self.postgres)):
            if server is not None and (code := server.returncode) is not None:
                return f"{name} (pid {server.pid}) exited, {_how(code)}; its log: {server.log_path}"
        return None


def _how(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _port_or_none(port: int, host: str) -> int | None:
    """The metrics port when it is free, so dashboards find it from run to run;
    otherwise None (the servers move off their preferred ports by themselves). The
    probe binds as the server will (SO_REUSEADDR): the last run's scrapes leave the
    port in TIME_WAIT for a minute, which does not keep the server from it, while a
    server listening there still does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return None
    return port


def _ensure_database(postgres: PostgresServer) -> None:
    exists = postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'").strip()
    if not exists:
        postgres.create_database(DATABASE)


def start_servers(settings: Settings, home: Path) -> tuple[Servers, Settings]:
    """Start what is not configured; return the servers and the settings pointing at them."""
    servers = Servers()
    try:
        if not settings.nats_url:
            servers.nats = NatsServer.start(home / "nats", preferred_port=PREFERRED_NATS_PORT)
            settings = replace(settings, nats_url=servers.nats.url)
        if not settings.database_url:
            servers.postgres = PostgresServer.start(home / "postgres", preferred_port=PREFERRED_PG_PORT)
            _ensure_database(servers.postgres)
            settings = replace(settings, database_url=servers.postgres.dsn(DATABASE))
    except BaseException:
        servers.stop()
        raise
    return servers, settings


def _log_to_home(settings: Settings, home: Path) -> None:
    """The services' log lines go to `home/jetjobs.log` (JSON, at the level asked for,
    `warning` by default), beside the servers' own logs: the terminal keeps the banner
    and the demo's job outcomes, without warnings written between them."""
    path = home / LOG_FILE
    try:
        logs.configure(settings.log_level or "warning", file=path)
    except OSError as error:
        raise SettingsError(f"cannot write the log {path}: {error.strerror}") from None


@contextlib.asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[tuple[Settings, Servers]]:
    """Servers up and announced in `home/endpoints.json` for the length of the block,
    the home locked against a second `up` from before they start to after they stop."""
    home = settings.home.resolve()
    make_folder(home, "--home (JETJOBS_HOME)")
    with lock_home(home):
        _log_to_home(settings, home)
        if not (settings.database_url or settings.secret_key or settings.secret_key_file):
            settings = replace(settings, secret_key_file=str(home_key(home)))
        servers, settings = await asyncio.to_thread(start_servers, settings, home)
        endpoints = home / ENDPOINTS_FILE
        try:
            endpoints.write_text(
                json.dumps(
                    {"nats_url": settings.nats_url, "database_url": settings.database_url, "pid": os.getpid()}
                )
            )
            yield settings, servers
        finally:
            endpoints.unlink(missing_ok=True)
            await asyncio.to_thread(servers.stop)


@contextlib.asynccontextmanager
async def _watched(servers: Servers) -> AsyncIterator[asyncio.Event]:
    """An event set once a server `up` started has exited by itself: nothing would
    bring it back, so `up` must stop rather than run on without it."""
    exited = asyncio.Event()

    async def watch() -> None:  # a look now and then: no asyncio event tells of a Popen child's exit
        while not exited.is_set():
            await asyncio.sleep(SERVER_CHECK_INTERVAL)
            if servers.exited() is not None:
                exited.set()

    watcher = asyncio.create_task(watch())
    try:
        yield exited
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


@dataclass
class _Restarts:
    """Starts `up`'s executor again each time it stops at its memory limit: nothing
    else would, and `up` promised a working system. `failed` is set, with `why`, when
    it cannot start again (the rest of the process already fills the limit)."""

    executor: ExecutorService
    failed: asyncio.Event
    why: str | None = None

    async def keep(self, done: asyncio.Event) -> None:
        """Restart the executor whenever it is exhausted, until `done` or a failure."""
        while True:
            await services.until_set(self.executor.exhausted, done)
            if done.is_set():
                return
            log.warning("up.executor_restarting", reason="memory limit")
            try:
                if not await self._restart(done):
                    return
            except Exception as error:
                self.why = f"its executor stopped at its memory limit and could not start again: {error}"
                self.failed.set()
                return
            log.warning("up.executor_restarted", reason="memory limit")

    async def _restart(self, done: asyncio.Event) -> bool:
        """Drain and stop the executor, then start it afresh unless `up` is stopping."""
        await self.executor.stop()
        gc.unfreeze()  # what it held was frozen at start: the next start's collection frees it
        if done.is_set():
            return False
        await self.executor.start()
        heap.settle()
        return True


@contextlib.asynccontextmanager
async def _restarted(executor: ExecutorService) -> AsyncIterator[_Restarts]:
    """The executor restarted at its memory limit for the length of the block. The
    end waits for a restart under way, which stops cleanly only once it is done."""
    restarts = _Restarts(executor, asyncio.Event())
    done = asyncio.Event()
    keeper = asyncio.create_task(restarts.keep(done))
    try:
        yield restarts
    finally:
        done.set()
        await asyncio.gather(keeper, return_exceptions=True)


def _failure(servers: Servers, restarts: _Restarts) -> str | None:
    """Why `up` must stop and fail (logged), or None when it was asked to stop."""
    if gone := servers.exited():
        log.error("up.server_exited", server=gone)
        return gone
    if restarts.why:
        log.error("up.executor_failed", why=restarts.why)
    return restarts.why


def client_command(settings: Settings) -> str:
    """How to call the commands that find this `up` by its home: bare from the
    folder of the default home, with `--home` for any other."""
    if not settings.home_named:
        return "jetjobs"
    return f"jetjobs --home {shlex.quote(str(settings.home.resolve()))}"


def banner(settings: Settings, metrics_url: str | None = None) -> str:
    """What a new user needs to know to look around."""
    return "\n".join(
        [
            "jetjobs is up",
            f"  NATS        {settings.nats_url}",
            f"  PostgreSQL  {settings.database_url}",
            f"  metrics     {metrics_url}/metrics (also /healthz, /readyz)"
            if metrics_url
            else "  metrics     off",
            f"  data        {settings.home.resolve()}",
            f"  logs        {settings.home.resolve() / LOG_FILE}",
            f"  try         {client_command(settings)} job list    ·    nats --server "
            f"{settings.nats_url} sub 'jetjobs.events.>'",
            "  stop        Ctrl-C",
        ]
    )


async def _with_demo(settings: Settings, *until: asyncio.Event) -> None:
    bus = await Bus.attach(settings.require_nats(), "jetjobs-demo")
    printer: asyncio.Task[None] | None = None
    try:
        client = ApiClient(bus.nc, token=settings.api_token)
        installed = await demo.install(client)
        announced = asyncio.Event()
        printer = asyncio.create_task(demo.print_outcomes(bus, announced))
        print(await demo.announce(client, installed), flush=True)
        announced.set()
        await services.until_set(*until)
    finally:
        if printer is not None:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)
        await bus.close()


async def up(settings: Settings, *, with_demo: bool) -> None:
    """Run the whole system in this process until Ctrl-C, or until a server it
    started exits or its executor cannot start again after stopping at its memory
    limit (then it stops the rest and fails, so a supervisor sees it)."""
    metrics_port = settings.metrics_port
    if metrics_port is None:
        metrics_port = _port_or_none(STORE_PORT, settings.metrics_host) or free_port(settings.metrics_host)
    async with (
        embedded(settings) as (settings, servers),
        serving(replace(settings, metrics_port=metrics_port), STORE_PORT) as (telemetry, metrics),
    ):
        executor = services.executor(settings, telemetry)
        gone: str | None = None
        with services.stop_signals() as stop:
            running = await services.start_all(
                [services.store(settings, telemetry), services.scheduler(settings, telemetry), executor]
            )
            try:
                async with _watched(servers) as exited, _restarted(executor) as restarts:
                    print(banner(settings, metrics.url if metrics else None), flush=True)
                    if with_demo:
                        await _with_demo(settings, stop, exited, restarts.failed)
                    else:
                        await services.until_set(stop, exited, restarts.failed)
                if gone := _failure(servers, restarts):
                    print(gone, file=sys.stderr, flush=True)
                print(
                    f"stopping: running jobs get up to {ExecutorConfig.drain_timeout:g} s to finish "
                    "(Ctrl-C again hands them back now)",
                    flush=True,
                )
            finally:
                await services.stop_all(running, hurry_on=stop)
    if gone:
        raise EmbeddedError(f"jetjobs up stopped because {gone}")
    print("jetjobs stopped", flush=True)
