"""Test-side adapters for servers the suite does not start itself.

When `JETJOBS_TEST_DATABASE_URL` / `JETJOBS_TEST_NATS_URL` point at existing
servers (CI services, a developer's long-running stack), these classes give
them the same small surface the fixtures expose for embedded servers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import urllib.parse
from collections.abc import Sequence

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jetjobs.embedded import NatsServer, PostgresServer, run_psql

JETJOBS_STREAM_PREFIXES: tuple[str, ...] = ("JETJOBS_", "KV_jetjobs_")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ExternalPostgres:
    """A PostgreSQL server given by URL; databases are managed with the bundled psql."""

    def __init__(self, url: str) -> None:
        self.url = url

    def dsn(self, database: str) -> str:
        """The admin URL with its database path swapped for `database`."""
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))

    def create_database(self, name: str, template: str | None = None) -> None:
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        run_psql(self.url, sql)

    def drop_database(self, name: str) -> None:
        run_psql(self.url, f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


async def _stream_names(js: JetStreamContext) -> list[str]:
    """All stream names, following the API's pagination."""
    names: list[str] = []
    while page := await js.streams_info(offset=len(names)):
        names += [info.config.name or "" for info in page]
    return names


async def delete_streams(url: str, prefixes: Sequence[str] = JETJOBS_STREAM_PREFIXES) -> list[str]:
    """Delete every stream whose name starts with one of `prefixes`; return their names."""
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        doomed = [name for name in await _stream_names(js) if name.startswith(tuple(prefixes))]
        for name in doomed:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()
    return doomed


class ExternalNats:
    """A shared NATS server given by URL.

    Tests using it share one server, so jetjobs' own streams (and KV buckets)
    are deleted before and after every test to give each test a clean slate.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> list[str]:
        """Delete jetjobs streams, on a private loop in a worker thread.

        A fresh thread keeps `asyncio.run` from disturbing the event loop
        pytest-asyncio manages for the test itself.
        """
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(lambda: asyncio.run(delete_streams(self.url)))
            return future.result(timeout=60)


def _force_kill(server: NatsServer | PostgresServer) -> None:
    """Last resort when a graceful stop failed: kill, and if even that fails, by pid."""
    try:
        server.kill()
    except Exception:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(server.pid, signal.SIGKILL)


def shutdown(server: NatsServer | PostgresServer) -> None:
    """Stop a server at teardown no matter what, then let the original error surface."""
    try:
        server.stop()
    except BaseException:
        _force_kill(server)
        raise
