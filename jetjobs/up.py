"""`jetjobs up`: real servers from the wheels, the three services, optionally a demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from bus import ApiClient, Bus
from executor.config import ExecutorConfig
from store.credentials import new_key

from . import demo, logs, services
from .embedded import NatsServer, PostgresServer, free_port
from .observe.serve import STORE_PORT, serving
from .settings import ENDPOINTS_FILE, Settings, SettingsError, make_folder

SECRET_KEY_FILE = "secret.key"
LOG_FILE = "jetjobs.log"

PREFERRED_NATS_PORT = 14222
PREFERRED_PG_PORT = 15432
DATABASE = "jetjobs"


@dataclass
class Servers:
    """The embedded servers this `up` started (None where a URL was configured)."""

    nats: NatsServer | None = None
    postgres: PostgresServer | None = None

    def stop(self) -> None:
        for server in (self.nats, self.postgres):
            if server is not None:
                server.stop()


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


def _check_not_running(home: Path) -> None:
    try:
        pid = int(json.loads((home / ENDPOINTS_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 0)
        raise SettingsError(f"jetjobs up is already running for {home} (pid {pid}); stop it or use --home")


def home_key(home: Path) -> Path:
    """The key that encrypts the credentials of the embedded database, kept beside it
    (made on first use, readable by this user only), so credentials work from the
    first `jetjobs up`; a key of your own (JETJOBS_SECRET_KEY_FILE) replaces it."""
    path = home / SECRET_KEY_FILE
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(new_key() + "\n")
    return path


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
async def embedded(settings: Settings) -> AsyncIterator[Settings]:
    """Servers up and announced in `home/endpoints.json` for the length of the block."""
    home = settings.home.resolve()
    make_folder(home, "--home (JETJOBS_HOME)")
    _check_not_running(home)
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
        yield settings
    finally:
        endpoints.unlink(missing_ok=True)
        await asyncio.to_thread(servers.stop)


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
            "  try         jetjobs job list    ·    nats --server "
            f"{settings.nats_url} sub 'jetjobs.events.>'",
            "  stop        Ctrl-C",
        ]
    )


async def _with_demo(settings: Settings, stop: asyncio.Event) -> None:
    bus = await Bus.attach(settings.require_nats(), "jetjobs-demo")
    printer: asyncio.Task[None] | None = None
    try:
        client = ApiClient(bus.nc, token=settings.api_token)
        installed = await demo.install(client)
        printer = asyncio.create_task(demo.print_outcomes(bus))
        print(await demo.announce(client, installed), flush=True)
        await services.until_set(stop)
    finally:
        if printer is not None:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)
        await bus.close()


async def up(settings: Settings, *, with_demo: bool) -> None:
    """Run the whole system in this process until Ctrl-C."""
    metrics_port = settings.metrics_port
    if metrics_port is None:
        metrics_port = _port_or_none(STORE_PORT, settings.metrics_host) or free_port(settings.metrics_host)
    async with (
        embedded(settings) as settings,
        serving(replace(settings, metrics_port=metrics_port), STORE_PORT) as (telemetry, metrics),
    ):
        running = await services.start_all(
            [
                services.store(settings, telemetry),
                services.scheduler(settings, telemetry),
                services.executor(settings, telemetry),
            ]
        )
        try:
            with services.stop_signals() as stop:
                print(banner(settings, metrics.url if metrics else None), flush=True)
                if with_demo:
                    await _with_demo(settings, stop)
                else:
                    await services.until_set(stop)
            print(
                f"stopping: running jobs get up to {ExecutorConfig.drain_timeout:g} s to finish", flush=True
            )
        finally:
            await services.stop_all(running)
    print("jetjobs stopped", flush=True)
